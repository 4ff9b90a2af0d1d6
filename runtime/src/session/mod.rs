//! A two-party session over a compiled plan: handshake, the offline phase (HE for linear
//! layers, garbling and OT for comparison layers, Beaver squares) and the online phase
//! (masked input, field arithmetic, garbled evaluation, the revealed logits).
//!
//! Invariant: every tensor is held as additive shares, server S and client C, with S + C the
//! value the plaintext simulator computes, and C known to the client before the clip is:
//! the input's C is the client's mask r, a linear layer's C is M C_in - s from the offline
//! HE exchange, a garbled layer's C is the fresh mask the circuit subtracted, and a Beaver
//! square's C is re-randomised to a fresh mask the same way. So the whole offline phase runs
//! before the clip is known, and online the server only ever sees masked values.

pub mod client;
pub mod deadline;
pub mod garbled;
pub mod handshake;
pub mod placement;
pub mod report;
pub mod schedule;
pub mod server;
pub mod spool;

use crate::field::Field;
use crate::transport::{AbortCode, TransportError};
use c3d_ir::{FixedPoint, NodeId, Plan, Tensor, Weights};
use schedule::Step;
use std::collections::HashMap;

pub use client::{ClientOptions, ClientOutcome};
pub use deadline::Deadlines;
pub use report::{Event, Phase, Report};
pub use schedule::Schedule;
pub use server::ServerModel;

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The plan cannot run (unsupported shape or protocol, inconsistent entries).
    #[error("plan: {0}")]
    Plan(String),
    /// The two sides do not run the same protocol version, plan or backend.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The peer sent something the protocol does not allow.
    #[error("the peer misbehaved: {0}")]
    Peer(String),
    /// Bad input (clip, weights).
    #[error("input: {0}")]
    Input(String),
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
                SessionError::Input(_) | SessionError::Spool(_) => AbortCode::Input,
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

/// Runs one party's side of a session with panics caught at its boundary: a bug triggered by
/// a peer's message ends this session with [`SessionError::Panic`], not the process, and the
/// peer is told (a code only) where it can be.
pub fn guarded<T, S: crate::transport::Stream>(
    ch: &mut crate::transport::Channel<S>,
    f: impl FnOnce(&mut crate::transport::Channel<S>) -> Result<T, SessionError>,
) -> Result<T, SessionError> {
    let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *ch))) {
        Ok(r) => r,
        Err(p) => Err(SessionError::Panic(panic_text(&*p))),
    };
    if let Err(e) = &r {
        if e.tells_peer() {
            ch.abort(e.abort_code());
        }
    }
    r
}

/// The message of a caught panic.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Checks values from the peer are field elements.
fn check_field(p: u64, v: &[u64], what: &str) -> Result<(), SessionError> {
    match v.iter().find(|&&x| x >= p) {
        Some(x) => Err(SessionError::Peer(format!(
            "{what}: {x} is not an element of the field"
        ))),
        None => Ok(()),
    }
}

/// A local (public-coefficient) step on one party's shares: the simulator's own step, which
/// is linear mod p, applied to the share.
fn local_step(plan: &Plan, step: &Step, ins: &[&[u64]]) -> Result<Vec<u64>, SessionError> {
    let fx: FixedPoint = plan.fixed;
    let g = &plan.graph;
    let tensors: Vec<Tensor<i64>> = step
        .inputs
        .iter()
        .zip(ins)
        .map(|(&i, v)| {
            Tensor::new(
                g.node(i).shape.clone(),
                v.iter().map(|&x| fx.from_field(x)).collect(),
            )
        })
        .collect();
    let refs: Vec<&Tensor<i64>> = tensors.iter().collect();
    let l = plan
        .layer(step.node)
        .ok_or_else(|| SessionError::Plan(format!("no entry for `{}`", step.name)))?;
    let out = c3d_ir::simulate::step_fixed(
        &fx,
        step.node,
        g.node(step.node),
        l,
        &Weights::default(),
        &refs,
    )
    .map_err(|e| SessionError::Plan(e.to_string()))?;
    Ok(out.into_iter().map(|v| fx.to_field(v)).collect())
}

/// Counts one more use of each of a step's inputs and drops the values nothing reads any more.
fn release<T>(left: &mut HashMap<NodeId, usize>, live: &mut HashMap<NodeId, T>, inputs: &[NodeId]) {
    for n in inputs {
        let k = left.get_mut(n).expect("every input is counted");
        *k -= 1;
        if *k == 0 {
            live.remove(n);
        }
    }
}

/// The field of a plan.
fn field_of(plan: &Plan) -> Result<Field, SessionError> {
    Field::of(&plan.fixed).map_err(|e| SessionError::Plan(e.to_string()))
}
