//! The crate's top error type and rsync's exit codes.
//!
//! Layer: top. Joins every layer's error type; maps each to the exit code
//! upstream rsync uses for the same failure (upstream errcode.h).

use std::io;
use std::path::PathBuf;

use crate::wire::DecodeError;

/// rsync's process exit codes (upstream errcode.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ExitCode {
    /// 0: success.
    Ok,
    /// 1: syntax or usage error.
    Syntax,
    /// 2: protocol incompatibility.
    Protocol,
    /// 3: errors selecting input/output files, dirs.
    FileSelect,
    /// 4: requested action not supported.
    Unsupported,
    /// 5: error starting client-server protocol.
    StartClient,
    /// 10: error in socket I/O.
    SocketIo,
    /// 11: error in file I/O.
    FileIo,
    /// 12: error in rsync protocol data stream.
    StreamIo,
    /// 20: received SIGUSR1 or SIGINT (also used for cancellation).
    Signal,
    /// 23: some files/attrs were not transferred.
    Partial,
    /// 24: some files vanished before they could be transferred.
    Vanished,
    /// 25: the --max-delete limit stopped deletions.
    DelLimit,
    /// 30: timeout in data send/receive.
    Timeout,
    /// Any other code, e.g. a remote shell's status.
    Other(i32),
}

impl ExitCode {
    /// The numeric process exit status.
    #[must_use]
    pub fn code(self) -> i32 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Syntax => 1,
            ExitCode::Protocol => 2,
            ExitCode::FileSelect => 3,
            ExitCode::Unsupported => 4,
            ExitCode::StartClient => 5,
            ExitCode::SocketIo => 10,
            ExitCode::FileIo => 11,
            ExitCode::StreamIo => 12,
            ExitCode::Signal => 20,
            ExitCode::Partial => 23,
            ExitCode::Vanished => 24,
            ExitCode::DelLimit => 25,
            ExitCode::Timeout => 30,
            ExitCode::Other(n) => n,
        }
    }

    /// The code for a numeric status.
    #[must_use]
    pub fn from_code(n: i32) -> Self {
        match n {
            0 => ExitCode::Ok,
            1 => ExitCode::Syntax,
            2 => ExitCode::Protocol,
            3 => ExitCode::FileSelect,
            4 => ExitCode::Unsupported,
            5 => ExitCode::StartClient,
            10 => ExitCode::SocketIo,
            11 => ExitCode::FileIo,
            12 => ExitCode::StreamIo,
            20 => ExitCode::Signal,
            23 => ExitCode::Partial,
            24 => ExitCode::Vanished,
            25 => ExitCode::DelLimit,
            30 => ExitCode::Timeout,
            n => ExitCode::Other(n),
        }
    }

    /// rsync's text for the code (upstream log.c `rerr_names`).
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            ExitCode::Ok => "success",
            ExitCode::Syntax => "syntax or usage error",
            ExitCode::Protocol => "protocol incompatibility",
            ExitCode::FileSelect => "errors selecting input/output files, dirs",
            ExitCode::Unsupported => "requested action not supported",
            ExitCode::StartClient => "error starting client-server protocol",
            ExitCode::SocketIo => "error in socket IO",
            ExitCode::FileIo => "error in file IO",
            ExitCode::StreamIo => "error in rsync protocol data stream",
            ExitCode::Signal => "received SIGINT, SIGTERM, or SIGHUP",
            ExitCode::Partial => "some files/attrs were not transferred (see previous errors)",
            ExitCode::Vanished => "some files vanished before they could be transferred",
            ExitCode::DelLimit => "the --max-delete limit stopped deletions",
            ExitCode::Timeout => "timeout in data send/receive",
            ExitCode::Other(_) => "remote command failed",
        }
    }
}

/// Everything that can stop a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent bytes we cannot decode.
    #[error("malformed data from peer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer broke the sequence of the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The protocol versions cannot work together.
    #[error("{0}")]
    Version(String),
    /// The connection ended before the session did.
    #[error("connection unexpectedly closed ({0} bytes received so far)")]
    UnexpectedEof(u64),
    /// Reading or writing the connection failed.
    #[error("error on the connection: {0}")]
    Connection(#[source] io::Error),
    /// A local file operation failed in a way that stops the session.
    #[error("{op} {}: {source}", .path.display())]
    Local {
        /// What we were doing.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The peer reported a fatal error and exit code.
    #[error("remote error (code {code}): {message}")]
    Remote {
        /// The peer's exit code.
        code: i32,
        /// The peer's last error text, if any.
        message: String,
    },
    /// Checksum or compression negotiation failed, or an option is refused.
    #[error("{0}")]
    Unsupported(String),
    /// Bad command line or options.
    #[error("{0}")]
    Syntax(String),
    /// Errors selecting input/output files or dirs.
    #[error("{0}")]
    FileSelect(String),
    /// Starting the remote side failed.
    #[error("{0}")]
    Start(String),
    /// No data moved for longer than the I/O timeout.
    #[error("timeout in data send/receive")]
    Timeout,
    /// The session was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// An rsync daemon refused the request with an `@ERROR` line (the text
    /// after `@ERROR: `, e.g. `auth failed on module pub`).
    #[error("@ERROR: {0}")]
    DaemonRefused(String),
    /// The SSH connection failed: refused, unknown or changed host key,
    /// failed login, timeout.
    #[error(transparent)]
    Ssh(#[from] crate::transport::ssh::SshError),
}

impl Error {
    /// The rsync exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Decode(_) | Error::Protocol(_) | Error::UnexpectedEof(_) => ExitCode::StreamIo,
            Error::Version(_) => ExitCode::Protocol,
            Error::Connection(_) => ExitCode::StreamIo,
            Error::Local { .. } => ExitCode::FileIo,
            Error::Remote { code, .. } => ExitCode::from_code(*code),
            Error::Unsupported(_) => ExitCode::Unsupported,
            Error::Syntax(_) => ExitCode::Syntax,
            Error::FileSelect(_) => ExitCode::FileSelect,
            Error::Start(_) => ExitCode::StartClient,
            Error::Timeout => ExitCode::Timeout,
            Error::Cancelled => ExitCode::Signal,
            Error::DaemonRefused(_) => ExitCode::StartClient,
            // What rsync reports when its ssh fails to connect or log in.
            Error::Ssh(_) => ExitCode::Other(255),
        }
    }

    pub(crate) fn local(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Local {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
