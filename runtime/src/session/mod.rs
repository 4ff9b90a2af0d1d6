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
pub mod compared;
pub mod deadline;
mod error;
pub mod garbled;
pub mod handshake;
pub mod placement;
pub mod report;
pub mod schedule;
pub mod server;
pub mod spool;

use crate::field::Field;
use c3d_ir::{FixedPoint, NodeId, Plan, Tensor, Weights};
use schedule::Step;
use std::collections::HashMap;

pub use client::{client_offline, client_online, ClientOptions, ClientOutcome, ClientPrepared};
pub use deadline::Deadlines;
pub use error::{PeerMisbehaved, PlanError, SessionError};
pub use report::{Event, LayerReport, Phase, PhaseReport, Report, StepProtocol};
pub use schedule::Schedule;
pub use server::{serve, server_offline, server_online, ServerModel, ServerPrepared};

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
fn check_field(p: u64, v: &[u64], what: &'static str) -> Result<(), SessionError> {
    match v.iter().find(|&&x| x >= p) {
        Some(&value) => Err(PeerMisbehaved::NotInField { what, value }.into()),
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
        .ok_or_else(|| PlanError::Unsupported(format!("no entry for `{}`", step.name)))?;
    let out = c3d_ir::simulate::step_fixed(
        &fx,
        step.node,
        g.node(step.node),
        l,
        &Weights::default(),
        &refs,
    )?;
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
    Ok(Field::of(&plan.fixed)?)
}
