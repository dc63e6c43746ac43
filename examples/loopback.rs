//! Copies a small generated tree with both sides of the protocol in this
//! process (no network, no external rsync), then prints the statistics.
//!
//! Run: `cargo run --example loopback`

use std::fs;

use ferrsync::{Options, Transfer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("ferrsync-loopback-{}", std::process::id()));
    let src = tmp.join("src");
    let dst = tmp.join("dst");
    fs::create_dir_all(src.join("sub"))?;
    fs::write(src.join("hello.txt"), b"hello, rsync protocol\n")?;
    fs::write(src.join("sub/data.bin"), vec![7u8; 100_000])?;
    std::os::unix::fs::symlink("hello.txt", src.join("link"))?;

    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(
        Transfer::new(Options::archive()).local(&[format!("{}/", src.display()).into()], &dst),
    )?;
    println!(
        "copied {} entries ({} bytes of file data), exit code {}",
        report.stats.num_files,
        report.stats.total_size,
        report.exit_code().code()
    );
    assert_eq!(fs::read(dst.join("sub/data.bin"))?, vec![7u8; 100_000]);
    fs::remove_dir_all(&tmp)?;
    Ok(())
}
