//! The one rule of where OT-based comparisons compute a non-linear node exactly, shared by
//! the compiler (which falls back to garbled circuits) and the runtime (whose schedule refuses
//! a plan that breaks it, naming the layer): public arithmetic on the plan's scales, no
//! crypto.

use crate::graph::NodeId;
use crate::plan::Plan;

/// Why OT-based comparisons cannot compute a node exactly ([`ot_comparable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotComparable {
    /// The node has no plan entry, or its input has none.
    #[error("no plan entry")]
    NoEntry,
    /// Not a ReLU or max-pool.
    #[error("{0} is not a comparison")]
    NotComparison(&'static str),
    /// Exact truncation needs p = 1 mod 2^t.
    #[error("p - 1 is not a multiple of 2^{0}")]
    Truncation(u32),
    /// A window's differences need headroom.
    #[error("its input has {have} bits of headroom, the window maximum needs {need}")]
    Headroom {
        /// The input's public headroom.
        have: u32,
        /// What the maximum needs.
        need: u32,
    },
}

/// Whether OT-based comparisons compute a non-linear node exactly under the plan's scales,
/// and if not why: the truncation needs p = 1 mod 2^t, and the maximum of a window (a
/// difference of two values) needs a bit of headroom, two for a signed maximum that is
/// truncated (it is shifted to non-negative first). The one rule the compiler and the
/// runtime share.
pub fn ot_comparable(plan: &Plan, node: NodeId) -> std::result::Result<(), NotComparable> {
    let g = &plan.graph;
    let n = g.node(node);
    let l = plan.layer(node).ok_or(NotComparable::NoEntry)?;
    let t = l.quant.truncate_bits;
    let p = plan.fixed.p;
    if t > 0 && (t >= 40 || !(p - 1).is_multiple_of(1u64 << t)) {
        return Err(NotComparable::Truncation(t));
    }
    let (pool, relu) = match n.op {
        crate::op::Op::Relu => (false, true),
        crate::op::Op::MaxPool3d(_) => (true, false),
        crate::op::Op::MaxPoolRelu3d(_) => (true, true),
        _ => return Err(NotComparable::NotComparison(n.op.name())),
    };
    if pool {
        let need = if !relu && t > 0 { 2 } else { 1 };
        let input = *g.inputs_of(node).first().ok_or(NotComparable::NoEntry)?;
        let have = plan
            .layer(input)
            .ok_or(NotComparable::NoEntry)?
            .quant
            .headroom_bits;
        if have < need {
            return Err(NotComparable::Headroom { have, need });
        }
    }
    Ok(())
}
