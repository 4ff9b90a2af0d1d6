//! What can go wrong on the wire, and what a party that gives up tells its peer.

use std::io;
use std::time::{Duration, Instant};

/// Why a party gave up, as it tells its peer: a code with a fixed message, never the local
/// error text (which can carry paths or peer-supplied text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCode {
    /// The peer's message did not fit the protocol.
    Protocol,
    /// A time-out or deadline passed.
    Timeout,
    /// The plan cannot run on this side.
    Plan,
    /// This side's input (clip, weights, spool) failed.
    Input,
    /// Cryptographic material from the peer was refused.
    Crypto,
    /// An internal failure on this side.
    Internal,
    /// A code this build does not know.
    Unknown(u16),
}

impl AbortCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        match self {
            AbortCode::Protocol => 1,
            AbortCode::Timeout => 2,
            AbortCode::Plan => 3,
            AbortCode::Input => 4,
            AbortCode::Crypto => 5,
            AbortCode::Internal => 6,
            AbortCode::Unknown(c) => c,
        }
    }

    /// From the wire value.
    pub fn from_code(c: u16) -> Self {
        match c {
            1 => AbortCode::Protocol,
            2 => AbortCode::Timeout,
            3 => AbortCode::Plan,
            4 => AbortCode::Input,
            5 => AbortCode::Crypto,
            6 => AbortCode::Internal,
            c => AbortCode::Unknown(c),
        }
    }
}

impl std::fmt::Display for AbortCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortCode::Protocol => write!(f, "it refused a message of ours (protocol error)"),
            AbortCode::Timeout => write!(f, "it timed out"),
            AbortCode::Plan => write!(f, "its plan cannot run"),
            AbortCode::Input => write!(f, "its input failed"),
            AbortCode::Crypto => write!(f, "it refused our cryptographic material"),
            AbortCode::Internal => write!(f, "an internal error"),
            AbortCode::Unknown(c) => write!(f, "unknown reason (code {c})"),
        }
    }
}

/// Peer-supplied text made safe for a log line or a terminal: at most `max` characters,
/// control characters (escape sequences, newlines) and non-ASCII written as escapes.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// What can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer closed the connection (possibly in the middle of a frame).
    #[error("the peer closed the connection")]
    Closed,
    /// No data within the time-out.
    #[error("no message from the peer within {0:?}")]
    Timeout(Duration),
    /// The deadline of the current phase passed.
    #[error("the {0} deadline passed")]
    Deadline(String),
    /// A frame announced more bytes than allowed.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer gave up and said why.
    #[error("the peer stopped: {0}")]
    Aborted(AbortCode),
    /// A frame that does not fit the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The TLS layer failed (handshake, certificate, record).
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other I/O failure.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

/// Result alias for the transport.
pub type Result<T> = std::result::Result<T, TransportError>;

/// The transport error of a failed read or write: the deadline or the idle time-out when the
/// socket timed out, [`TransportError::Closed`] when the peer went away.
pub(super) fn io_err(
    e: io::Error,
    timeout: Option<Duration>,
    deadline: &Option<(Instant, String)>,
) -> TransportError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => match deadline {
            Some((d, phase)) if Instant::now() >= *d => TransportError::Deadline(phase.clone()),
            _ => TransportError::Timeout(timeout.unwrap_or_default()),
        },
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => TransportError::Closed,
        // rustls reports its failures (bad certificate, bad record) as InvalidData with the
        // rustls error inside.
        io::ErrorKind::InvalidData if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            TransportError::Tls(e.to_string())
        }
        _ => TransportError::Io(e),
    }
}
