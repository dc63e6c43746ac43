//! A spawned peer process whose stdin/stdout carry the protocol.
//!
//! Layer: transport. Uses tokio::process. Mirrors upstream main.c
//! `do_cmd` (how the remote command line is put together).

use std::process::Stdio;

use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::error::{Error, Result};

/// How to reach the remote side: the words of a remote shell (e.g.
/// `["ssh", "-p", "2222", "host"]`), or none to run the rsync program
/// directly as a local child (handy for tests and local servers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCommand {
    /// Remote-shell words before the rsync program; empty for a local child.
    pub shell: Vec<String>,
    /// The rsync program on the far side (`--rsync-path`).
    pub rsync_path: String,
}

impl RemoteCommand {
    /// Runs `program` as a local child, no remote shell.
    #[must_use]
    pub fn local(program: impl Into<String>) -> Self {
        RemoteCommand {
            shell: Vec::new(),
            rsync_path: program.into(),
        }
    }

    /// The full argument vector: shell words, rsync path, server args,
    /// `.`, paths.
    #[must_use]
    pub fn argv(&self, server_args: &[String], paths: &[String]) -> Vec<String> {
        let mut v = self.shell.clone();
        if self.shell.is_empty() {
            v.extend(self.rsync_path.split_whitespace().map(str::to_string));
        } else {
            v.push(self.rsync_path.clone());
        }
        let through_shell = !self.shell.is_empty();
        v.extend(server_args.iter().map(|a| {
            if through_shell {
                safe_option_arg(a)
            } else {
                a.clone()
            }
        }));
        v.push(".".into());
        v.extend(paths.iter().map(|p| {
            if p.is_empty() {
                ".".to_string()
            } else if through_shell {
                safe_path_arg(p)
            } else {
                p.clone()
            }
        }));
        v
    }

    /// Spawns the peer with its stdin/stdout piped to us.
    ///
    /// # Errors
    /// [`Error::Start`] when the program cannot be started.
    pub fn spawn(&self, server_args: &[String], paths: &[String]) -> Result<SpawnedPeer> {
        let argv = self.argv(server_args, paths);
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| Error::Start("empty remote command".into()))?;
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Start(format!("failed to exec {prog}: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Start("no stdin pipe".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Start("no stdout pipe".into()))?;
        Ok(SpawnedPeer {
            child,
            stdin: Some(stdin),
            stdout: Some(stdout),
        })
    }
}

/// A path word as rsync's client hands it to the remote shell (upstream
/// options.c `safe_arg` for a file name): a leading `-` gets `./` before
/// it (never an option to the remote rsync), and every character the
/// remote shell would act on gets a backslash (the shell removes it; a
/// backslash before a wildcard character is kept single, so the remote
/// side still expands wildcards as rsync does).
///
/// ```
/// use ferrsync::transport::pipe::safe_path_arg;
/// assert_eq!(safe_path_arg("dir/f.txt"), "dir/f.txt");
/// assert_eq!(safe_path_arg("-oProxy"), "./-oProxy");
/// assert_eq!(safe_path_arg("a b;$(id)"), "a\\ b\\;\\$\\(id\\)");
/// assert_eq!(safe_path_arg("*.txt"), "*.txt");
/// ```
#[must_use]
pub fn safe_path_arg(arg: &str) -> String {
    const SHELL_CHARS: &str = "!#$&;|<>(){}\"'` \t\n\r\\";
    const WILD_CHARS: &str = "*?[]";
    let mut out = String::with_capacity(arg.len() + 8);
    if arg.starts_with('-') {
        out.push_str("./");
    }
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if !chars.peek().is_some_and(|n| WILD_CHARS.contains(*n)) {
                out.push('\\');
            }
        } else if SHELL_CHARS.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A server option word as rsync's client hands it to the remote shell
/// (upstream options.c `safe_arg` for an option): in `--name=value` the
/// value, in any other word all of it, gets a backslash before every
/// character the remote shell would act on, wildcard characters
/// included (an option value is never expanded remotely). A newline,
/// which a backslash would turn into a line continuation (and which
/// rsync leaves as it is, splitting the remote command), is put in
/// single quotes so that it arrives as itself.
///
/// ```
/// use ferrsync::transport::pipe::safe_option_arg;
/// assert_eq!(safe_option_arg("-logDtpr"), "-logDtpr");
/// assert_eq!(safe_option_arg("--suffix=~"), "--suffix=~");
/// assert_eq!(safe_option_arg("--backup-dir=a b;$(id)"), "--backup-dir=a\\ b\\;\\$\\(id\\)");
/// assert_eq!(safe_option_arg("--usermap=*:u"), "--usermap=\\*:u");
/// assert_eq!(safe_option_arg("--suffix=a\nb"), "--suffix=a'\n'b");
/// ```
#[must_use]
pub fn safe_option_arg(word: &str) -> String {
    const ESCAPED: &str = "*?[]!#$&;|<>(){}\"'` \t\r\\";
    let (head, value) = match word.find('=') {
        Some(i) if word.starts_with("--") => word.split_at(i + 1),
        _ => ("", word),
    };
    let mut out = String::with_capacity(word.len() + 8);
    out.push_str(head);
    for c in value.chars() {
        if c == '\n' {
            out.push_str("'\n'");
            continue;
        }
        if ESCAPED.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A running peer process.
#[derive(Debug)]
pub struct SpawnedPeer {
    child: Child,
    /// Its standard input (our writing half); taken by the engine.
    pub stdin: Option<ChildStdin>,
    /// Its standard output (our reading half); taken by the engine.
    pub stdout: Option<ChildStdout>,
}

impl SpawnedPeer {
    /// Waits for the process and returns its exit status (rsync's
    /// convention: a signal-killed process counts as 125... per shells).
    ///
    /// # Errors
    /// Waiting failed.
    pub async fn wait(mut self) -> Result<i32> {
        drop(self.stdin.take());
        let st = self
            .child
            .wait()
            .await
            .map_err(|e| Error::Start(format!("waitpid failed: {e}")))?;
        Ok(st.code().unwrap_or(125))
    }

    /// Kills the process (used when the session failed).
    pub async fn kill(mut self) -> i32 {
        let _ = self.child.start_kill();
        self.child
            .wait()
            .await
            .ok()
            .and_then(|s| s.code())
            .unwrap_or(125)
    }
}
