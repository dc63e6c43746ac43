//! The `ferrsync` command: rsync's command line on top of the library.
//!
//! `ferrsync [OPTIONS] SRC... DEST` copies locally (both sides in this
//! process) or through a remote shell (`host:path`, `-e`), and
//! `ferrsync --server ...` serves real rsync clients on stdin/stdout (use it
//! with rsync's `--rsync-path`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use ferrsync::engine::options::{ClientArgs, DaemonArgs, parse_client_args};
use ferrsync::engine::{Event, Hooks, Options, parse_server_args, run_server};
use ferrsync::transport::daemon::DaemonUrl;
use ferrsync::{Error, RemoteCommand, Report, Transfer};

const USAGE: &str = "\
ferrsync: a Rust implementation of the rsync protocol

Usage: ferrsync [OPTION]... SRC [SRC]... DEST
  or   ferrsync [OPTION]... SRC [SRC]... [USER@]HOST:DEST
  or   ferrsync [OPTION]... [USER@]HOST:SRC [DEST]
  or   ferrsync [OPTION]... SRC [SRC]... rsync://[USER@]HOST[:PORT]/MODULE[/DEST]
  or   ferrsync [OPTION]... rsync://[USER@]HOST[:PORT]/MODULE[/SRC] [DEST]
  or   ferrsync [OPTION]... [USER@]HOST::MODULE[/SRC] [DEST]
  or   ferrsync --daemon [--config=FILE] [--port=PORT] [--address=ADDR] [--no-detach]
  or   ferrsync [OPTION]... SRC [SRC]... ssh://[USER@]HOST[:PORT]/DEST
  or   ferrsync [OPTION]... ssh://[USER@]HOST[:PORT]/SRC [DEST]
  or   ferrsync --ssh-server --listen ADDR:PORT --host-key FILE --authorized-keys FILE --root DIR

Options (as rsync's):
 -v, --verbose            increase verbosity
 -q, --quiet              suppress non-error messages
 -a, --archive            archive mode is -rlptgoD
 -r, --recursive          recurse into directories
 -d, --dirs               transfer directories without recursing
 -l, --links              copy symlinks as symlinks
 -p, --perms              preserve permissions
 -t, --times              preserve modification times
 -g, --group              preserve group
 -o, --owner              preserve owner (super-user only)
 -D                       same as --devices --specials
 -O, --omit-dir-times     omit directories from --times
 -n, --dry-run            perform a trial run with no changes made
 -z, --compress           compress file data during the transfer
     --compress-choice=STR  choose the compression algorithm (aka --zc)
     --compress-level=NUM explicitly set compression level
 -W, --whole-file         copy files whole (w/o delta-xfer algorithm)
     --chmod=CHMOD        affect file and/or directory permissions
     --delay-updates      put all updated files into place at end
 -u, --update             skip files that are newer on the receiver
     --existing           skip creating new files on receiver
     --ignore-existing    skip updating files that exist on receiver
     --max-size=SIZE      don't transfer any file larger than SIZE
     --min-size=SIZE      don't transfer any file smaller than SIZE
     --modify-window=NUM  set the accuracy for mod-time comparisons
 -b, --backup             make backups (see --suffix & --backup-dir)
     --backup-dir=DIR     make backups into hierarchy based in DIR
     --suffix=SUFFIX      backup suffix (default ~ w/o --backup-dir)
 -x, --one-file-system    don't cross filesystem boundaries
     --partial            keep partially transferred files
     --inplace            update destination files in-place
 -H, --hard-links         preserve hard links
 -A, --acls               preserve ACLs (implies --perms)
 -X, --xattrs             preserve extended attributes
     --safe-links         ignore symlinks that point outside the tree
     --munge-links        munge symlinks to make them safe & unusable
     --max-delete=NUM     don't delete more than NUM files
     --force              force deletion of directories even if not empty
     --partial-dir=DIR    put a partially transferred file into DIR
 -P                       same as --partial --progress
     --no-whole-file      always use the delta-xfer algorithm
 -c, --checksum           skip based on checksum, not mod-time & size
     --size-only          skip files that match in size
 -I, --ignore-times       don't skip files that match size and time
     --delete             delete extraneous files from dest dirs
     --delete-before|--delete-during|--delete-delay|--delete-after
     --delete-excluded    also delete excluded files from dest dirs
 -C, --cvs-exclude        auto-ignore files in the same way CVS does
 -f, --filter=RULE        add a file-filtering RULE
 -F                       same as --filter='dir-merge /.rsync-filter'
                          repeated: --filter='- .rsync-filter'
     --exclude=PATTERN    exclude files matching PATTERN
     --exclude-from=FILE  read exclude patterns from FILE
     --include=PATTERN    don't exclude files matching PATTERN
     --include-from=FILE  read include patterns from FILE
     --numeric-ids        don't map uid/gid values by user/group name
 -B, --block-size=SIZE    force a fixed checksum block-size
     --checksum-choice=STR  choose the checksum algorithm (aka --cc)
     --checksum-seed=NUM  set block/file checksum seed
     --protocol=NUM       force an older protocol version to be used
 -e, --rsh=COMMAND        specify the remote shell to use
     --rsync-path=PROGRAM specify the rsync to run on the remote machine
     --timeout=SECONDS    set I/O timeout in seconds
     --bwlimit=RATE       limit socket I/O bandwidth (KiB/s, or with K/M/G)
     --ignore-errors      delete even if there are I/O errors
 -i, --itemize-changes    output a change-summary for all updates
     --stats              give some file-transfer stats
     --progress           show progress during transfer
     --password-file=FILE read daemon-access password from FILE
     --no-motd            suppress daemon-mode MOTD
     --daemon             run as an rsync daemon
     --config=FILE        specify alternate rsyncd.conf file (daemon)
     --port=PORT          specify alternate port number (daemon)
     --address=ADDRESS    bind address for the daemon
     --no-detach          do not detach from the parent (daemon)
     --log-file=FILE      the daemon's log file
     --server             run as the remote side (used by rsync)
Built-in SSH (ssh:// URLs):
     --ssh-key=FILE       private key (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa, agent)
     --ssh-passphrase-file=FILE  passphrase of an encrypted --ssh-key
     --known-hosts=FILE   known hosts file (default ~/.ssh/known_hosts)
     --host-key-policy=P  strict (default), accept-new or insecure
     --ssh-server         serve rsync-over-SSH (with --listen, --host-key,
                          --authorized-keys, --root)
 -h, --help               show this help
     --version            print the version
";

fn syntax(msg: String) -> Error {
    Error::Syntax(msg)
}

/// Splits `host:path` (not `host::module`, not a path with `/` before the
/// colon).
fn split_remote(arg: &str) -> Option<(String, String)> {
    if arg.starts_with("rsync://") {
        return None;
    }
    let colon = arg.find(':')?;
    if arg[..colon].contains('/') || arg[colon + 1..].starts_with(':') {
        return None;
    }
    Some((arg[..colon].to_string(), arg[colon + 1..].to_string()))
}

/// The remote-shell command for `[user@]host` (rsync's `do_cmd`: the shell
/// words, `-l USER` when a user is given, then the host).
/// rsync's check in `start_client`: a host (after any `user@`) may not
/// start with `-`, where the remote shell would take it for an option.
fn check_host(host: &str) -> Result<(), Error> {
    let h = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if h.starts_with('-') {
        return Err(syntax(
            "Invalid remote host: hostnames may not start with '-'.".into(),
        ));
    }
    Ok(())
}

fn remote_command(rsh: &str, host: &str, rsync_path: &str) -> RemoteCommand {
    let mut shell = split_words(rsh);
    let host = match host.split_once('@') {
        Some((user, h)) => {
            shell.push("-l".into());
            shell.push(user.to_string());
            h
        }
        None => host,
    };
    shell.push(host.to_string());
    RemoteCommand {
        shell,
        rsync_path: rsync_path.to_string(),
    }
}

/// Splits a `-e` value into words as rsync does (quotes group words).
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// A file name as rsync prints it: valid UTF-8 as is, control characters
/// and bytes that are not UTF-8 as `\#ooo`.
fn escape_name(name: &[u8]) -> String {
    let mut s = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(v) => {
                push_escaped(&mut s, v);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_escaped(&mut s, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in &bad[..n] {
                    s.push_str(&format!("\\#{b:03o}"));
                }
                rest = &bad[n..];
            }
        }
    }
    s
}

fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        if (c as u32) < 0x20 || c as u32 == 0x7f {
            out.push_str(&format!("\\#{:03o}", c as u32));
        } else {
            out.push(c);
        }
    }
}

fn display_name(name: &[u8], dir: bool) -> String {
    let mut s = escape_name(name);
    if dir && s == "." {
        s = "./".into();
    } else if dir {
        s.push('/');
    }
    s
}

fn event_printer(opts: &Options) -> Option<ferrsync::engine::EventSink> {
    let itemize = opts.itemize > 0;
    let verbose = opts.verbose > 0;
    let progress = opts.progress;
    if (!itemize && !verbose && !progress) || opts.quiet {
        return None;
    }
    Some(Arc::new(move |ev: &Event| {
        let out = std::io::stdout();
        let mut out = out.lock();
        match ev {
            Event::Itemize {
                kind,
                name,
                extra,
                flags,
                ..
            } => {
                let dir = *kind == ferrsync::engine::ItemKind::Dir;
                let mut line = display_name(name, dir);
                if *kind == ferrsync::engine::ItemKind::Symlink {
                    if let Some(t) = extra {
                        line.push_str(" -> ");
                        line.push_str(&escape_name(t));
                    }
                }
                if itemize {
                    let _ = writeln!(out, "{} {line}", ev.itemize_string().unwrap_or_default());
                } else if !verbose && !progress {
                } else if flags & ferrsync::engine::report::item::TRANSFER != 0
                    || flags & ferrsync::engine::report::item::IS_NEW != 0
                {
                    let _ = writeln!(out, "{line}");
                }
            }
            Event::Deleted { name } => {
                let n = escape_name(name);
                if itemize {
                    let _ = writeln!(out, "*deleting   {n}");
                } else {
                    let _ = writeln!(out, "deleting {n}");
                }
            }
            Event::Progress { done, total, .. } => {
                let pct = if *total > 0 { done * 100 / total } else { 100 };
                let end = if done >= total { "\n" } else { "\r" };
                let _ = write!(out, "{:>15} {:>3}%{end}", commas(*done), pct.min(100));
                let _ = out.flush();
            }
            Event::Message { error, text } => {
                if *error {
                    eprintln!("{text}");
                } else {
                    let _ = writeln!(out, "{text}");
                }
            }
            _ => {}
        }
    }))
}

/// A number with thousands separators, as rsync prints it.
fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_stats(opts: &Options, r: &Report, secs: f64) {
    let s = &r.stats;
    if opts.stats {
        println!();
        println!("Number of files: {}", s.num_files);
        println!("Number of created files: {}", s.num_created_dirs);
        println!("Number of deleted files: {}", s.deleted);
        println!("Number of regular files transferred: {}", s.num_transferred);
        println!("Total file size: {} bytes", commas(s.total_size));
        println!(
            "Total transferred file size: {} bytes",
            commas(s.transferred_size)
        );
        println!("Literal data: {} bytes", commas(s.literal_data));
        println!("Matched data: {} bytes", commas(s.matched_data));
        println!("File list size: {}", commas(s.flist_size));
        println!("Total bytes sent: {}", commas(s.bytes_sent));
        println!("Total bytes received: {}", commas(s.bytes_received));
    }
    if opts.verbose > 0 || opts.stats {
        let total = (s.bytes_sent + s.bytes_received) as f64;
        println!();
        println!(
            "sent {} bytes  received {} bytes  {:.2} bytes/sec",
            commas(s.bytes_sent),
            commas(s.bytes_received),
            if secs > 0.0 { total / secs } else { total }
        );
        let speedup = if total > 0.0 {
            s.total_size as f64 / total
        } else {
            0.0
        };
        println!(
            "total size is {}  speedup is {:.2}{}",
            commas(s.total_size),
            speedup,
            if opts.dry_run { " (DRY RUN)" } else { "" }
        );
    }
}

async fn run(argv: Vec<String>) -> Result<i32, Error> {
    let cli = parse_client_args(&argv)?;
    if cli.help {
        print!("{USAGE}");
        return Ok(0);
    }
    if cli.version {
        println!(
            "ferrsync version {}  protocol version 32",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    if cli.server {
        let mut sa = parse_server_args(&cli.args)?;
        if sa.secluded {
            // The real arguments follow on stdin: NUL-terminated words,
            // the first being argv[0], ending with an empty word.
            let mut words = read_secluded_args()?;
            if !words.is_empty() {
                words.remove(0);
            }
            let mut all = cli.args.clone();
            all.extend(words);
            sa = parse_server_args(&all)?;
            sa.secluded = false;
        }
        if sa.daemon {
            // A daemon over a remote shell: the connection is our stdio.
            set_blocking(&std::io::stdin());
            set_blocking(&std::io::stdout());
            let daemon = ferrsync::daemon::Daemon::new(load_config(&cli.daemon)?);
            let io = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
            let peer = ferrsync::daemon::PeerInfo {
                addr: None,
                host: None,
            };
            return match daemon.serve_connection(io, peer, false).await {
                Ok(()) => Ok(0),
                Err(e) => Ok(e.exit_code().code()),
            };
        }
        apply_env_lists(&mut sa.options);
        // The client may hand us a non-blocking pipe or socket; our stdio
        // is driven by blocking threads, so make it blocking again.
        set_blocking(&std::io::stdin());
        set_blocking(&std::io::stdout());
        let hooks = Hooks::default();
        let report = run_server(tokio::io::stdin(), tokio::io::stdout(), &sa, &hooks).await?;
        return Ok(report.exit_code().code());
    }
    if cli.daemon.run {
        return run_daemon(&cli.daemon).await;
    }
    let ssh = SshCli::from_args(&cli.ssh)?;
    if ssh.server {
        return ssh.serve().await;
    }
    let mut opts = cli.opts.clone();
    apply_env_lists(&mut opts);
    if cli.args.len() == 1 {
        if let Some(url) = DaemonUrl::parse(&cli.args[0]) {
            if url.module.is_empty() {
                return list_daemon(&cli, &url).await;
            }
        }
    }
    if cli.args.len() < 2 {
        print!("{USAGE}");
        return Err(syntax(
            "rsync error: syntax or usage error: need a source and a destination".into(),
        ));
    }
    let (srcs, dest) = cli.args.split_at(cli.args.len() - 1);
    let dest = &dest[0];
    let mut transfer = Transfer::new(opts.clone());
    if let Some(p) = event_printer(&opts) {
        transfer = transfer.with_events(p);
    }
    transfer = transfer.with_messages(Arc::new(|code, text: &[u8]| {
        if code == ferrsync::wire::MsgCode::Info {
            print!("{}", String::from_utf8_lossy(text));
        } else {
            eprint!("{}", String::from_utf8_lossy(text));
        }
    }));
    let rsh = cli
        .rsh
        .clone()
        .or_else(|| std::env::var("RSYNC_RSH").ok())
        .unwrap_or_else(|| "ssh".to_string());
    if !cli.daemon.no_motd {
        transfer = transfer.with_motd(Arc::new(|line: &str| println!("{line}")));
    }
    if let Some(pf) = &cli.daemon.password_file {
        transfer = transfer.with_password_file(pf);
    }
    let daemon_shell = |url: &DaemonUrl| -> Option<RemoteCommand> {
        cli.rsh.as_ref().map(|rsh| {
            let host = match &url.user {
                Some(u) => format!("{u}@{}", url.host),
                None => url.host.clone(),
            };
            remote_command(rsh, &host, &opts.rsync_path)
        })
    };
    let started = std::time::Instant::now();
    let report = if let Some(r) = ssh.transfer(&transfer, &opts, srcs, dest).await? {
        r
    } else if let Some(url) = DaemonUrl::parse(dest) {
        if srcs
            .iter()
            .any(|s| DaemonUrl::parse(s).is_some() || split_remote(s).is_some())
        {
            return Err(syntax(
                "The source and destination cannot both be remote.".into(),
            ));
        }
        if cli.rsh.is_some() {
            check_host(&url.host)?;
        }
        if let Some(cmd) = daemon_shell(&url) {
            transfer = transfer.with_daemon_shell(cmd);
        }
        let sources: Vec<PathBuf> = srcs.iter().map(PathBuf::from).collect();
        transfer.push_daemon(&sources, &url).await?
    } else if let Some(url) = DaemonUrl::parse(&srcs[0]) {
        if srcs.len() > 1 {
            return Err(syntax(
                "only one daemon source is supported per transfer".into(),
            ));
        }
        if cli.rsh.is_some() {
            check_host(&url.host)?;
        }
        if let Some(cmd) = daemon_shell(&url) {
            transfer = transfer.with_daemon_shell(cmd);
        }
        transfer
            .pull_daemon(&url, PathBuf::from(dest).as_path())
            .await?
    } else if let Some((host, path)) = split_remote(dest) {
        if srcs.iter().any(|s| split_remote(s).is_some()) {
            return Err(syntax(
                "The source and destination cannot both be remote.".into(),
            ));
        }
        same_files_from_host(&opts, &host)?;
        check_host(&host)?;
        let cmd = remote_command(&rsh, &host, &opts.rsync_path);
        let sources: Vec<PathBuf> = srcs.iter().map(PathBuf::from).collect();
        transfer.push(&cmd, &sources, &path).await?
    } else if let Some((host, first)) = split_remote(&srcs[0]) {
        same_files_from_host(&opts, &host)?;
        check_host(&host)?;
        let mut paths = vec![first];
        for s in &srcs[1..] {
            match split_remote(s) {
                Some((_, p)) => paths.push(p),
                None => paths.push(s.trim_start_matches(':').to_string()),
            }
        }
        let cmd = remote_command(&rsh, &host, &opts.rsync_path);
        transfer
            .pull(&cmd, &paths, PathBuf::from(dest).as_path())
            .await?
    } else {
        opts.rsync_path.clear();
        let sources: Vec<PathBuf> = srcs.iter().map(PathBuf::from).collect();
        transfer
            .local(&sources, PathBuf::from(dest).as_path())
            .await?
    };
    print_stats(&opts, &report, started.elapsed().as_secs_f64());
    for e in &report.errors {
        if !e.is_empty() {
            eprintln!("{e}");
        }
    }
    let code = report.exit_code();
    if code.code() != 0 {
        eprintln!("rsync error: {} (code {})", code.describe(), code.code());
    }
    Ok(code.code())
}

/// A `--files-from=HOST:FILE` must name the transfer's host (rsync's
/// check in `start_client`; `:FILE` means that host).
fn same_files_from_host(opts: &Options, host: &str) -> Result<(), Error> {
    let named = opts
        .files_from
        .as_deref()
        .and_then(split_remote)
        .map(|(h, _)| h)
        .filter(|h| !h.is_empty());
    match named {
        Some(h) if h != host => Err(syntax(
            "--files-from hostname is not the same as the transfer hostname".into(),
        )),
        _ => Ok(()),
    }
}

/// rsync's `RSYNC_CHECKSUM_LIST` and `RSYNC_COMPRESS_LIST`: our lists for
/// the name negotiation.
fn apply_env_lists(o: &mut Options) {
    if let Ok(v) = std::env::var("RSYNC_CHECKSUM_LIST") {
        o.checksum_list = Some(v);
    }
    if let Ok(v) = std::env::var("RSYNC_COMPRESS_LIST") {
        o.compress_list = Some(v);
    }
}

fn load_config(d: &DaemonArgs) -> Result<ferrsync::daemon::config::DaemonConfig, Error> {
    let path = d
        .config
        .clone()
        .unwrap_or_else(|| "/etc/rsyncd.conf".to_string());
    let (mut cfg, warnings) = ferrsync::daemon::config::DaemonConfig::load(path.as_ref())
        .map_err(|e| Error::Syntax(format!("{path}: {e}")))?;
    for w in warnings {
        eprintln!("{path}: {w}");
    }
    if let Some(p) = d.port {
        cfg.global.port = p;
    }
    if let Some(a) = &d.address {
        cfg.global.address = Some(a.clone());
    }
    if let Some(l) = &d.log_file {
        cfg.global.log_file = Some(PathBuf::from(l));
    }
    Ok(cfg)
}

/// `--daemon`: serve modules on TCP. Without `--no-detach` we start a
/// detached copy of ourselves (new session, no terminal) and return.
async fn run_daemon(d: &DaemonArgs) -> Result<i32, Error> {
    let cfg = load_config(d)?;
    if !d.no_detach {
        let exe = std::env::current_exe()
            .map_err(|e| Error::Start(format!("cannot find our own program: {e}")))?;
        let mut args: Vec<String> = std::env::args().skip(1).collect();
        args.push("--no-detach".into());
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Start(format!("cannot detach: {e}")))?;
        return Ok(0);
    }
    let pid_file = cfg.global.pid_file.clone();
    let daemon = ferrsync::daemon::Daemon::new(cfg);
    let listener = daemon.bind(&daemon.configured_address()).await?;
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| Error::Local {
            op: "write pid file",
            path: p.clone(),
            source: e,
        })?;
    }
    let stop = daemon.shutdown_handle();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        stop.shutdown();
    });
    daemon.serve(listener).await?;
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    Ok(0)
}

/// `ferrsync rsync://host/`: print the module list (and the MOTD).
async fn list_daemon(cli: &ClientArgs, url: &DaemonUrl) -> Result<i32, Error> {
    let mut t = Transfer::new(cli.opts.clone());
    if !cli.daemon.no_motd {
        t = t.with_motd(Arc::new(|line: &str| println!("{line}")));
    }
    if let Some(rsh) = &cli.rsh {
        let host = match &url.user {
            Some(u) => format!("{u}@{}", url.host),
            None => url.host.clone(),
        };
        t = t.with_daemon_shell(remote_command(rsh, &host, &cli.opts.rsync_path));
    }
    for m in t.list_modules(url).await? {
        println!("{:<15}\t{}", m.name, m.comment);
    }
    Ok(0)
}

fn set_blocking(fd: &impl std::os::fd::AsFd) {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    if let Ok(fl) = fcntl_getfl(fd) {
        if fl.contains(OFlags::NONBLOCK) {
            let _ = fcntl_setfl(fd, fl - OFlags::NONBLOCK);
        }
    }
}

fn read_secluded_args() -> Result<Vec<String>, Error> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut words = Vec::new();
    let mut total = 0usize;
    loop {
        let mut w = Vec::new();
        let n = lock.read_until(0, &mut w).map_err(Error::Connection)?;
        if n == 0 || w.last() != Some(&0) {
            return Err(Error::UnexpectedEof(total as u64));
        }
        total += n;
        w.pop();
        if w.is_empty() {
            return Ok(words);
        }
        if total > 1 << 20 || words.len() > 10_000 {
            return Err(Error::Protocol("secluded argument list too long".into()));
        }
        words.push(String::from_utf8_lossy(&w).into_owned());
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrsync: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    // The daemon handles SIGTERM itself (graceful shutdown); every other
    // mode stops on SIGTERM, SIGINT or SIGHUP as rsync does: the transfer
    // is dropped (a receiver's temporary file is removed by its guard)
    // and the exit code is 20.
    let daemon_mode = argv.iter().any(|a| a == "--daemon");
    let code = rt.block_on(async move {
        let work = async move {
            match run(argv).await {
                Ok(code) => code,
                Err(e) => {
                    let code = e.exit_code();
                    let text = e.to_string();
                    if text.starts_with("ERROR: ") {
                        // rsync prints its "ERROR: rejecting ..." lines bare.
                        eprintln!("{text}");
                    } else {
                        eprintln!("rsync: {text}");
                    }
                    eprintln!("rsync error: {} (code {})", code.describe(), code.code());
                    code.code()
                }
            }
        };
        if daemon_mode {
            return work.await;
        }
        tokio::select! {
            code = work => code,
            () = stop_signal() => {
                eprintln!("rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)");
                20
            }
        }
    });
    // Dropping the runtime drops every task still running, so their
    // guards clean up before the process ends.
    drop(rt);
    std::process::exit(code);
}

/// Waits for SIGTERM, SIGINT or SIGHUP (pending forever when the
/// handlers cannot be installed).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}

/// The built-in SSH client's and endpoint's options.
#[derive(Default)]
struct SshCli {
    key: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    policy: ferrsync::transport::ssh::HostKeyPolicy,
    server: bool,
    listen: Option<String>,
    host_key: Option<PathBuf>,
    authorized_keys: Option<PathBuf>,
    root: Option<PathBuf>,
}

impl SshCli {
    fn from_args(words: &[(String, String)]) -> Result<Self, Error> {
        let mut s = SshCli::default();
        for (n, v) in words {
            s.set(n, v.clone())?;
        }
        Ok(s)
    }

    fn set(&mut self, name: &str, v: String) -> Result<(), Error> {
        match name {
            "ssh-key" => self.key = Some(v.into()),
            "ssh-passphrase-file" => self.passphrase_file = Some(v.into()),
            "known-hosts" => self.known_hosts = Some(v.into()),
            "host-key-policy" => self.policy = v.parse().map_err(syntax)?,
            "ssh-server" => self.server = true,
            "listen" => self.listen = Some(v),
            "host-key" => self.host_key = Some(v.into()),
            "authorized-keys" => self.authorized_keys = Some(v.into()),
            _ => self.root = Some(v.into()),
        }
        Ok(())
    }

    fn options(&self, opts: &Options) -> Result<ferrsync::transport::ssh::SshOptions, Error> {
        use ferrsync::transport::ssh::{SshAuth, SshOptions};
        let mut o = SshOptions::default();
        if let Some(key) = &self.key {
            let passphrase = match &self.passphrase_file {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| Error::Local {
                            op: "read",
                            path: f.clone(),
                            source: e,
                        })?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                None => std::env::var("FERRSYNC_SSH_PASSPHRASE").ok(),
            };
            o.auth = SshAuth::KeyFile {
                path: key.clone(),
                passphrase,
            };
        }
        o.known_hosts.clone_from(&self.known_hosts);
        o.host_key_policy = self.policy;
        if !opts.rsync_path.is_empty() {
            o.rsync_path.clone_from(&opts.rsync_path);
        }
        if opts.timeout > 0 {
            o.io_timeout = Some(std::time::Duration::from_secs(u64::from(opts.timeout)));
        }
        Ok(o)
    }

    /// Runs the transfer when the source or the destination is an
    /// `ssh://` URL.
    async fn transfer(
        &self,
        t: &Transfer,
        opts: &Options,
        srcs: &[String],
        dest: &str,
    ) -> Result<Option<Report>, Error> {
        if let Some((target, path)) = parse_ssh_url(dest)? {
            if srcs
                .iter()
                .any(|s| s.starts_with("ssh://") || split_remote(s).is_some())
            {
                return Err(syntax(
                    "The source and destination cannot both be remote.".into(),
                ));
            }
            let sources: Vec<PathBuf> = srcs.iter().map(PathBuf::from).collect();
            return Ok(Some(
                t.push_ssh(&target, &self.options(opts)?, &sources, &path)
                    .await?,
            ));
        }
        let Some((target, first)) = parse_ssh_url(&srcs[0])? else {
            return Ok(None);
        };
        let mut paths = vec![first];
        for s in &srcs[1..] {
            match parse_ssh_url(s)? {
                Some((other, p)) if other == target => paths.push(p),
                Some(_) => return Err(syntax("all ssh:// sources must name the same host".into())),
                None => paths.push(s.clone()),
            }
        }
        Ok(Some(
            t.pull_ssh(
                &target,
                &self.options(opts)?,
                &paths,
                PathBuf::from(dest).as_path(),
            )
            .await?,
        ))
    }

    /// `--ssh-server`: the embedded rsync-over-SSH endpoint.
    async fn serve(&self) -> Result<i32, Error> {
        use ferrsync::sshd::{SshServer, SshServerConfig};
        let need = |v: &Option<PathBuf>, what: &str| {
            v.clone()
                .ok_or_else(|| syntax(format!("--ssh-server needs --{what}")))
        };
        let host_key = need(&self.host_key, "host-key")?;
        let authorized = need(&self.authorized_keys, "authorized-keys")?;
        let root = need(&self.root, "root")?;
        let key = ferrsync::transport::ssh::load_key(&host_key, None)?;
        let cfg = SshServerConfig::new(key).with_authorized_keys_file(&authorized, &root)?;
        let listen = self
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:2222".into());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Error::Start(format!("cannot listen on {listen}: {e}")))?;
        SshServer::new(cfg).serve(listener).await?;
        Ok(0)
    }
}

/// Splits `ssh://[user@]host[:port]/path` (the path keeps its leading
/// `/`; a bracketed IPv6 host is allowed). The user defaults to `$USER`.
fn parse_ssh_url(s: &str) -> Result<Option<(ferrsync::transport::ssh::SshTarget, String)>, Error> {
    let Some(rest) = s.strip_prefix("ssh://") else {
        return Ok(None);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, ".".to_string()),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h),
        None => (
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "root".into()),
            authority,
        ),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| syntax(format!("bad ssh URL: {s}")))?;
        (h, tail.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(syntax(format!("bad ssh URL (no host): {s}")));
    }
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| syntax(format!("invalid ssh port in {s}")))?,
        None => 22,
    };
    Ok(Some((
        ferrsync::transport::ssh::SshTarget::new(host, user).with_port(port),
        path,
    )))
}
