//! Why a session fails: the plan, the peer, this side's input, or a layer below (transport,
//! OT, HE, the linear protocol, Beaver material), each with its cause kept as the source.

use crate::field::BadModulus;
use crate::transport::{AbortCode, TransportError};

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The plan cannot run (unsupported shape or protocol, inconsistent entries).
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
    /// The two sides do not run the same protocol version, plan or backend.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The peer sent something the protocol does not allow.
    #[error("the peer misbehaved: {0}")]
    Peer(#[from] PeerMisbehaved),
    /// Bad input (clip, weights).
    #[error("input: {0}")]
    Input(String),
    /// The server's weights do not fit the plan.
    #[error("input: {0}")]
    Weights(#[source] c3d_ir::IrError),
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Oblivious transfer failed.
    #[error(transparent)]
    Ot(#[from] crate::ot::OtError),
    /// Homomorphic encryption failed.
    #[error(transparent)]
    He(#[from] crate::he::HeError),
    /// The offline linear protocol failed.
    #[error(transparent)]
    Linear(#[from] crate::linear::LinearError),
    /// Beaver material or openings failed.
    #[error(transparent)]
    Beaver(#[from] crate::beaver::BeaverError),
    /// The client's spool failed.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
    /// A bug: a panic inside the session, caught at its boundary.
    #[error("internal error: {0}")]
    Panic(String),
}

/// The transport failure inside a session error, if that is what it is.
fn transport_of(e: &SessionError) -> Option<&TransportError> {
    match e {
        SessionError::Transport(t) => Some(t),
        SessionError::Ot(crate::ot::OtError::Transport(t)) => Some(t),
        SessionError::Linear(crate::linear::LinearError::Transport(t)) => Some(t),
        SessionError::Beaver(crate::beaver::BeaverError::Transport(t)) => Some(t),
        _ => None,
    }
}

impl SessionError {
    /// Whether the peer should be told (it is still there and did not stop first).
    pub fn tells_peer(&self) -> bool {
        if matches!(self, SessionError::Handshake(_)) {
            return false;
        }
        !matches!(
            transport_of(self),
            Some(
                TransportError::Closed
                    | TransportError::Aborted(_)
                    | TransportError::Timeout(_)
                    | TransportError::Deadline(_)
                    | TransportError::Tls(_)
                    | TransportError::Io(_)
            )
        )
    }

    /// What the peer is told: a code, never this error's text (it can hold local paths or
    /// text the peer sent).
    pub fn abort_code(&self) -> AbortCode {
        match transport_of(self) {
            Some(TransportError::Timeout(_) | TransportError::Deadline(_)) => AbortCode::Timeout,
            Some(_) => AbortCode::Protocol,
            None => match self {
                SessionError::Plan(_) => AbortCode::Plan,
                SessionError::Input(_) | SessionError::Weights(_) | SessionError::Spool(_) => {
                    AbortCode::Input
                }
                SessionError::He(_)
                | SessionError::Ot(_)
                | SessionError::Linear(_)
                | SessionError::Beaver(_) => AbortCode::Crypto,
                SessionError::Panic(_) => AbortCode::Internal,
                _ => AbortCode::Protocol,
            },
        }
    }

    /// Whether the failure is the connection going away (a disconnect, not a protocol bug).
    pub fn is_disconnect(&self) -> bool {
        matches!(transport_of(self), Some(TransportError::Closed))
    }
}

/// Why a plan cannot run in a session.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The plan or its graph is inconsistent.
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
    /// The plan's prime is no field the runtime computes in.
    #[error(transparent)]
    Field(#[from] BadModulus),
    /// The plan's HE packing or flooding budget does not fit (public parameters only).
    #[error(transparent)]
    HeModel(#[from] c3d_ir::he_model::HeModelError),
    /// A linear layer's geometry cannot be read from the plan's graph.
    #[error(transparent)]
    Geometry(#[from] c3d_ir::packing::GeometryError),
    /// The runtime cannot run what the plan asks (what is named).
    #[error("{0}")]
    Unsupported(String),
}

impl From<c3d_ir::IrError> for SessionError {
    fn from(e: c3d_ir::IrError) -> Self {
        SessionError::Plan(e.into())
    }
}

impl From<c3d_ir::he_model::HeModelError> for SessionError {
    fn from(e: c3d_ir::he_model::HeModelError) -> Self {
        SessionError::Plan(e.into())
    }
}

impl From<BadModulus> for SessionError {
    fn from(e: BadModulus) -> Self {
        SessionError::Plan(e.into())
    }
}

/// What a peer did that the protocol does not allow, one variant per cause (so callers and
/// tests can tell them apart without reading the text).
#[derive(Debug, thiserror::Error)]
pub enum PeerMisbehaved {
    /// The server answered the hello with neither an acceptance nor a refusal.
    #[error("answer of tag {tag:#04x} to the handshake; is this a c3d-run server?")]
    HandshakeAnswer {
        /// The tag byte it answered with.
        tag: u8,
    },
    /// The client's first frame was no hello the server could read.
    #[error("no valid hello: {0}")]
    NoValidHello(#[source] TransportError),
    /// A value that must be a field element is not one.
    #[error("{what}: {value} is not an element of the field")]
    NotInField {
        /// What the value is.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The client's list of streamed layers is not made of whole u32s.
    #[error("streamed-layer list of {len} bytes, not whole u32s")]
    StreamedListRagged {
        /// Its length in bytes.
        len: usize,
    },
    /// The client's list of streamed layers is not strictly ascending.
    #[error("streamed-layer list is not strictly ascending")]
    StreamedListUnordered,
    /// The client's list of streamed layers names a step that is no garbled layer.
    #[error("streamed-layer list names step {step}, which is not a garbled layer")]
    StreamedNotGarbled {
        /// The step index.
        step: usize,
    },
    /// The client left more garbled material for the server to keep than it keeps.
    #[error(
        "the client left {:.1} MB of garbled material to keep offline; this server keeps at \
         most {:.1} MB per session (--memory-limit)",
        *keep as f64 / 1e6,
        *limit as f64 / 1e6
    )]
    KeepsTooMuch {
        /// Bytes the client's choice leaves to keep.
        keep: u64,
        /// The server's limit in bytes.
        limit: u64,
    },
    /// A garbled-layer message of the wrong length.
    #[error("{what}: {got} bytes, expected {want}")]
    WrongLength {
        /// Which message.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes the protocol calls for.
        want: usize,
    },
    /// An output label the evaluator returned is neither of its wire's two labels.
    #[error("output label {wire} of window {window} is neither of its wire's labels")]
    UnknownOutputLabel {
        /// The wire within the window.
        wire: usize,
        /// The window.
        window: usize,
    },
    /// A garbled window's output decoded to a value outside the field.
    #[error("window {window} decoded to {value}, not a field element")]
    OutputNotInField {
        /// The window.
        window: usize,
        /// The decoded value.
        value: u64,
    },
}
