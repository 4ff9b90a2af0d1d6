//! The protocol steps of a plan. Both parties derive them from the public plan alone (and
//! the HE backend's public parameters, which fix each linear layer's packing), so they agree
//! without exchanging anything.

use super::compared::ComparedLayer;
use super::garbled::{GarbledLayer, Windows};
use super::SessionError;
use crate::gc::pool_relu::{pool_relu, width};
use crate::he::{Backend, FloodBudget};
use crate::linear::{ConvShape, Packing};
use c3d_ir::op::{Op, OpClass};
use c3d_ir::{NodeId, Plan, Protocol};
use std::collections::HashMap;

/// How one node runs: the protocol of its step and what that protocol needs.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// The client's input enters masked.
    Input {
        /// Fractional bits of the encoded input.
        scale: u32,
    },
    /// Linear with public coefficients: each party applies it to its own share.
    Local,
    /// Secret weights: BFV offline, field arithmetic on the server's share online.
    Linear {
        /// Geometry.
        shape: ConvShape,
        /// Coefficient packing.
        packing: Packing,
        /// Public bound on the weights' magnitude.
        weight_mag_bits: u32,
    },
    /// Truncation, maximum and ReLU in garbled circuits, on the layer described.
    Garbled(GarbledLayer),
    /// Truncation, maximum and ReLU by OT-based comparisons, on the layer described.
    Compared(ComparedLayer),
    /// x^2 on shares with Beaver square pairs.
    Square,
}

/// One step of the protocol.
#[derive(Clone, Debug)]
pub struct Step {
    /// The node.
    pub node: NodeId,
    /// Its name, for progress and reports.
    pub name: String,
    /// What runs.
    pub kind: StepKind,
    /// Input nodes.
    pub inputs: Vec<NodeId>,
    /// Output elements.
    pub len: usize,
}

/// Every step of a plan in order, and what the client learns at the end.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Steps in topological order.
    pub steps: Vec<Step>,
    /// The node whose value is revealed to the client.
    pub reveal: NodeId,
    /// Fractional bits of the revealed value.
    pub reveal_scale: u32,
    /// Public divisor of the revealed value.
    pub reveal_divisor: u64,
    /// How many later steps read each node (the revealed node counts once more), so shares
    /// can be dropped as soon as nothing needs them.
    pub uses: HashMap<NodeId, usize>,
    /// The replies the server floods in the session, which size every layer's flooding.
    pub flood: FloodBudget,
}

fn bad(m: String) -> SessionError {
    super::PlanError::Unsupported(m).into()
}

/// The node the client learns: the input of the client-side tail, or the graph's output.
fn revealed_node(plan: &Plan) -> Result<NodeId, SessionError> {
    let g = &plan.graph;
    let (_, mut out) = g.io()?;
    while g.node(out).op.class() == OpClass::ClientOutput {
        out = *g
            .inputs_of(out)
            .first()
            .ok_or_else(|| bad("a client-side op has no input".into()))?;
    }
    Ok(out)
}

fn dhw(shape: &c3d_ir::Shape, name: &str) -> Result<(usize, [usize; 3]), SessionError> {
    match shape.ncdhw() {
        Some((1, c, d, h, w)) => Ok((c, [d, h, w])),
        _ => Err(bad(format!(
            "`{name}`: the runtime takes one clip at a time (N = 1, rank 5), got {shape}"
        ))),
    }
}

impl Schedule {
    /// Derives the steps of a validated plan.
    pub fn new<B: Backend>(plan: &Plan, be: &B) -> Result<Schedule, SessionError> {
        if plan.fixed.p != be.plain_modulus() {
            return Err(bad(
                "the HE backend's plaintext modulus is not the plan's".into()
            ));
        }
        let g = &plan.graph;
        let reveal = revealed_node(plan)?;
        let flood = FloodBudget::of_plan(plan)?;
        let order = g.topo_order()?;
        let mut steps = Vec::new();
        let mut uses: HashMap<NodeId, usize> = HashMap::new();
        for &id in &order {
            let node = g.node(id);
            if node.op.class() == OpClass::ClientOutput {
                continue;
            }
            let l = plan
                .layer(id)
                .ok_or_else(|| bad(format!("no plan entry for `{}`", node.name)))?;
            let q = &l.quant;
            let inputs = g.inputs_of(id);
            if inputs
                .iter()
                .any(|&i| g.node(i).op.class() == OpClass::ClientOutput)
            {
                return Err(bad(format!(
                    "`{}` reads a client-side output; only the end of the graph may",
                    node.name
                )));
            }
            for &i in &inputs {
                *uses.entry(i).or_default() += 1;
            }
            if !l.protocol.runs(node.op.class()) {
                return Err(bad(format!(
                    "`{}`: {} cannot run as {:?}",
                    node.name,
                    node.op.name(),
                    l.protocol
                )));
            }
            let kind = match (&node.op, l.protocol) {
                (Op::Input, Protocol::Input) => StepKind::Input { scale: q.out_scale },
                (_, Protocol::Local) => StepKind::Local,
                (Op::Conv3d(_) | Op::Linear { .. }, Protocol::HeLinear) => {
                    let shape = ConvShape::of_node(g, id).map_err(super::PlanError::from)?;
                    let wb = q.weight_mag_bits;
                    linear(shape, l.packing.as_ref(), wb, be, &flood, &node.name)?
                }
                (Op::Relu, Protocol::GarbledCircuit) => {
                    let n = node.shape.numel() as u32;
                    let windows = Windows {
                        taps: (0..n).collect(),
                        offsets: (0..=n).collect(),
                    };
                    let at = steps.len();
                    let (p, t) = (plan.fixed.p, q.truncate_bits);
                    garbled(p, windows, t, true, at, &node.name)?
                }
                (Op::Relu, Protocol::BeaverSquare) => StepKind::Square,
                (
                    op @ (Op::Relu | Op::MaxPool3d(_) | Op::MaxPoolRelu3d(_)),
                    Protocol::OtComparison,
                ) => compared(plan, id, op, &inputs, &node.name)?,
                (op @ (Op::MaxPool3d(win) | Op::MaxPoolRelu3d(win)), Protocol::GarbledCircuit) => {
                    let (c, input) = dhw(&g.node(inputs[0]).shape, &node.name)?;
                    let (_, out) = dhw(&node.shape, &node.name)?;
                    let windows = pool_windows(win, c, input, out);
                    let relu = matches!(op, Op::MaxPoolRelu3d(_));
                    let at = steps.len();
                    let (p, t) = (plan.fixed.p, q.truncate_bits);
                    garbled(p, windows, t, relu, at, &node.name)?
                }
                (op, proto) => {
                    return Err(bad(format!(
                        "`{}`: {} cannot run as {proto:?}",
                        node.name,
                        op.name()
                    )))
                }
            };
            steps.push(Step {
                node: id,
                name: node.name.clone(),
                kind,
                inputs,
                len: node.shape.numel(),
            });
        }
        *uses.entry(reveal).or_default() += 1;
        let rq = &plan
            .layer(reveal)
            .ok_or_else(|| bad("no plan entry for the output".into()))?
            .quant;
        Ok(Schedule {
            steps,
            reveal,
            reveal_scale: rq.out_scale,
            reveal_divisor: rq.divisor,
            uses,
            flood,
        })
    }
}

/// A linear step with the plan's packing, which must fit this backend's parameters.
fn linear<B: Backend>(
    shape: ConvShape,
    packing: Option<&Packing>,
    weight_mag_bits: u32,
    be: &B,
    flood: &FloodBudget,
    name: &str,
) -> Result<StepKind, SessionError> {
    let packing = packing
        .ok_or_else(|| {
            bad(format!(
                "`{name}`: no HE packing in the plan (recompile it)"
            ))
        })?
        .clone();
    packing
        .check(&shape, be, weight_mag_bits, flood)
        .map_err(|e| {
            bad(format!(
                "`{name}`: the plan's packing does not fit the {} backend: {e}",
                be.name()
            ))
        })?;
    Ok(StepKind::Linear {
        shape,
        packing,
        weight_mag_bits,
    })
}

/// The windows of a max-pool over one clip: valid taps only (padding never wins a maximum),
/// outputs in (C, D, H, W) order.
fn pool_windows(win: &c3d_ir::Window3d, c: usize, input: [usize; 3], out: [usize; 3]) -> Windows {
    let mut taps = Vec::new();
    let mut offsets = vec![0u32];
    let [id, ih, iw] = input;
    for ch in 0..c {
        for z in 0..out[0] {
            for y in 0..out[1] {
                for x in 0..out[2] {
                    for a in win.taps(0, z, id) {
                        for b in win.taps(1, y, ih) {
                            for e in win.taps(2, x, iw) {
                                taps.push((((ch * id + a) * ih + b) * iw + e) as u32);
                            }
                        }
                    }
                    offsets.push(taps.len() as u32);
                }
            }
        }
    }
    Windows { taps, offsets }
}

/// The OT-compared step of a node: ReLU windows of one position, pools their valid taps;
/// refused unless OT comparisons compute it exactly ([`c3d_ir::ot_comparable`]).
fn compared(
    plan: &Plan,
    id: NodeId,
    op: &Op,
    inputs: &[NodeId],
    name: &str,
) -> Result<StepKind, SessionError> {
    c3d_ir::ot_comparable(plan, id)
        .map_err(|why| bad(format!("`{name}` cannot run by OT comparisons: {why}")))?;
    let g = &plan.graph;
    let q = &plan
        .layer(id)
        .ok_or_else(|| bad(format!("no plan entry for `{name}`")))?
        .quant;
    let (p, t) = (plan.fixed.p, q.truncate_bits);
    let (windows, relu) = match op {
        Op::MaxPool3d(win) | Op::MaxPoolRelu3d(win) => {
            let (c, input) = dhw(&g.node(inputs[0]).shape, name)?;
            let (_, out) = dhw(&g.node(id).shape, name)?;
            (
                pool_windows(win, c, input, out),
                matches!(op, Op::MaxPoolRelu3d(_)),
            )
        }
        _ => {
            let n = g.node(id).shape.numel() as u32;
            let w = Windows {
                taps: (0..n).collect(),
                offsets: (0..=n).collect(),
            };
            (w, true)
        }
    };
    for u in 0..windows.len() {
        if windows.of(u).is_empty() {
            return Err(bad(format!("`{name}`: window {u} covers no input")));
        }
    }
    // A signed maximum is shifted to [0, (p-1)/2] before truncating: by the input's public
    // bound, rounded up to a multiple of 2^t (the headroom rule leaves room for it).
    let offset = if relu || t == 0 {
        0
    } else {
        let input = plan
            .layer(inputs[0])
            .ok_or_else(|| bad(format!("no plan entry for the input of `{name}`")))?;
        let bound = ((p - 1) / 2) >> input.quant.headroom_bits;
        bound.div_ceil(1 << t) << t
    };
    Ok(StepKind::Compared(ComparedLayer {
        p,
        windows,
        truncate: t,
        relu,
        offset,
    }))
}

/// The garbled step of step number `index`, with the circuit of each window size that
/// occurs. Refuses what the circuit builder cannot take (an empty window, a truncation as
/// wide as p) instead of panicking.
fn garbled(
    p: u64,
    windows: Windows,
    truncate: u32,
    relu: bool,
    index: usize,
    name: &str,
) -> Result<StepKind, SessionError> {
    if truncate as usize >= width(p) {
        return Err(bad(format!("`{name}` truncates too many bits")));
    }
    let mut circuits = HashMap::new();
    for u in 0..windows.len() {
        let k = windows.of(u).len();
        if k == 0 {
            return Err(bad(format!("`{name}`: window {u} covers no input")));
        }
        circuits
            .entry(k)
            .or_insert_with(|| pool_relu(p, truncate, k, relu));
    }
    Ok(StepKind::Garbled(GarbledLayer {
        p,
        windows,
        truncate,
        relu,
        circuits,
        index: index as u32,
    }))
}
