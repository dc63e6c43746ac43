//! Runs a sync task from a TOML file, now (`--once`) or on its schedule.
//!
//! ```text
//! cargo run --example task -- --once task.toml
//! cargo run --example task -- task.toml        # until Ctrl-C
//! ```
//!
//! The file holds one task with its fields at the top level, enum values
//! in lower case:
//!
//! ```toml
//! path = "/mnt/tank/data"
//! user = "root"
//! mode = "module"          # or "ssh"
//! direction = "push"       # or "pull"
//! remote_host = "backup.example.net"
//! remote_port = 873
//! remote_module = "tank"
//! schedule = "0 3 * * *"
//! delete = true
//! extra = ["--exclude=*.tmp"]
//! ```
//!
//! An SSH task names `remote_user`, `private_key_file`,
//! `known_hosts_file` (or `known_host_keys`) and `remote_path`; with
//! `validate_remote_path = true` the remote directory is checked first
//! (and created with `create_remote_path = true`).

use std::io::Write;

use ferrsync::task::{Progress, RemotePath, RunReport, Scheduler, SchedulerEvent, Task};

/// One line: the whole run's share done (once the file list is known),
/// files, bytes, rate and the whole run's ETA.
fn bar(p: &Progress) -> String {
    let width: usize = 30;
    let filled = p
        .fraction()
        .map_or(0, |f| (f * width as f64).round() as usize);
    let pct = p
        .fraction()
        .map_or_else(String::new, |f| format!(" {:3.0}%", f * 100.0));
    let eta = p
        .eta
        .map_or_else(String::new, |e| format!(" eta {}s", e.as_secs()));
    let total = p.total_files.map_or_else(String::new, |t| format!("/{t}"));
    format!(
        "\r[{}{}]{pct} {} files{total} ({} up to date) {:.1} MiB {:.1} MiB/s{eta} {}\x1b[K",
        "#".repeat(filled.min(width)),
        " ".repeat(width.saturating_sub(filled)),
        p.files,
        p.up_to_date,
        p.bytes as f64 / 1048576.0,
        p.rate / 1048576.0,
        p.current.as_deref().unwrap_or(""),
    )
}

fn summary(r: &RunReport) {
    println!();
    for line in &r.itemized {
        println!("{line}");
    }
    if let Some(s) = &r.stats {
        println!(
            "{} files, {} transferred, {} bytes sent, {} received",
            s.num_files, s.num_transferred, s.bytes_sent, s.bytes_received
        );
    }
    if let Some(e) = &r.error {
        eprintln!("error: {e}");
    }
    println!("status: {:?} (exit code {})", r.status, r.exit_code);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let Some(file) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: task [--once] TASK.toml");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(2);
    });
    let task = Task::from_toml(&text).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(2);
    });
    match task.validate_remote().await {
        Ok(RemotePath::Created) => println!("{}: created on the remote host", task.remote_path),
        Ok(_) => {}
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(2);
        }
    }
    if once {
        let handle = match task.run_now() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        };
        let mut rx = handle.progress();
        let cancel = handle.cancel_token();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        });
        let show = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                print!("{}", bar(&rx.borrow()));
                let _ = std::io::stdout().flush();
            }
        });
        let report = handle.wait().await;
        let _ = show.await;
        summary(&report);
        std::process::exit(if report.is_success() {
            0
        } else {
            report.exit_code
        });
    }
    let mut s = Scheduler::new();
    if let Err(e) = s.add(file.clone(), task.clone()) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    println!("{file}: running on \"{}\"; Ctrl-C stops", task.schedule);
    let handle = s.start();
    let mut events = handle.subscribe();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = events.recv() => match ev {
                Ok(SchedulerEvent::Started { due, .. }) => println!("run due {due} started"),
                Ok(SchedulerEvent::Skipped { due, .. }) => println!("run due {due} skipped: the last one is still going"),
                Ok(SchedulerEvent::Finished { entry, .. }) => {
                    println!("run due {} ended: {:?} (exit {:?})", entry.due, entry.status, entry.exit_code);
                }
                Ok(_) | Err(_) => {}
            },
        }
    }
    println!("stopping (waiting for a run in flight)...");
    handle.stop().await;
}
