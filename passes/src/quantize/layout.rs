//! The layout of one candidate (p, f): every node's fixed-point scales, divisor and magnitude
//! bound, one function per op family, walked in topological order. The search
//! ([`super::search`]) runs it for each candidate and keeps the first that fits.

use super::bounds::{
    calibrated, channels, gcd, linear_bound, reshape_bound, uniform_count, Bound, MAX_DIVISOR,
};
use super::QuantError;
use crate::calibrate::ActStats;
use c3d_ir::fixed::FixedPoint;
use c3d_ir::op::{Op, OpClass};
use c3d_ir::simulate::reciprocal;
use c3d_ir::{LayerQuant, Model, NodeId, NodePlan, Protocol, Window3d};
use std::collections::HashMap;

/// Fractional bits of the public coefficient round(2^bits / count) that replaces a division
/// by `count`: none for 1, exactly log2(count) for a power of two (the division is then only a
/// change of scale, exact), otherwise enough for a relative error below 2^-(f+1).
pub fn divisor_bits(count: usize, f: u32) -> u32 {
    if count.is_power_of_two() {
        count.trailing_zeros()
    } else {
        f + (count as f64).log2().ceil() as u32
    }
}

/// Extra fractional bits for a layer whose weights are all small (e.g. a first layer that
/// takes raw pixels): enough that the largest weight keeps about f significant bits, at most 8.
pub fn extra_weight_bits(w: &[f32]) -> u32 {
    let m = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    if m <= 0.0 || !m.is_finite() {
        return 0;
    }
    (-(m as f64).log2()).ceil().clamp(0.0, 8.0) as u32
}

/// Rounds to an integer, clamped to 62 bits of magnitude.
pub(crate) fn round_i64(v: f64) -> i64 {
    v.round().clamp(-(2f64.powi(62)), 2f64.powi(62)) as i64
}

/// Every node's plan entry for one (p, f).
pub(crate) struct Layout {
    pub(crate) layers: Vec<NodePlan>,
    /// Quantized biases of the weighted layers (weights are quantized once, at the end).
    pub(crate) biases: HashMap<NodeId, Vec<i64>>,
    /// The node with the least headroom, its name and exact headroom (for the choice of
    /// (p, f) only: the plan records whole bits).
    pub(crate) worst: Option<(NodeId, String, f64)>,
}

/// What a layout is computed from, besides (p, f).
pub(crate) struct Inputs<'a> {
    pub(crate) model: &'a Model,
    pub(crate) stats: &'a ActStats,
    /// Margin, in bits, over the largest calibrated activation.
    pub(crate) safety: u32,
    /// Each node's protocol (from the protocol pass).
    pub(crate) protocols: &'a HashMap<NodeId, Protocol>,
}

/// One node's view of the layout so far: its inputs' scales, divisors and bounds.
struct Node<'a> {
    id: NodeId,
    name: &'a str,
    ins: Vec<NodeId>,
    scales: Vec<u32>,
    divs: Vec<u64>,
    bounds: Vec<&'a Bound>,
    /// Output channels.
    nch: usize,
    /// Fractional bits asked of this node (activation or weight scale base).
    act: u32,
}

/// A node's scales and bound, as one family function gives them.
struct Scaled {
    scale: u32,
    divisor: u64,
    bound: Bound,
    weight_frac_bits: u32,
    truncate_bits: u32,
    /// Shifts and multipliers aligning the inputs (Add, Concat); none elsewhere.
    align: Option<(Vec<u32>, Vec<u64>)>,
}

impl Scaled {
    fn new(scale: u32, divisor: u64, bound: Bound) -> Self {
        Scaled {
            scale,
            divisor,
            bound,
            weight_frac_bits: 0,
            truncate_bits: 0,
            align: None,
        }
    }
}

/// The whole bits of headroom the inputs of pools run by OT comparisons need: 1 for a
/// maximum followed by ReLU, 2 for a signed maximum (it may be truncated, after a shift to
/// non-negative values; [`c3d_ir::ot_comparable`] is the rule).
fn ot_pool_margins(inp: &Inputs) -> HashMap<NodeId, u32> {
    let g = &inp.model.graph;
    let mut out: HashMap<NodeId, u32> = HashMap::new();
    for (&id, &p) in inp.protocols {
        if p != Protocol::OtComparison {
            continue;
        }
        let need = match g.node(id).op {
            Op::MaxPoolRelu3d(_) => 1,
            Op::MaxPool3d(_) => 2,
            _ => continue,
        };
        for i in g.inputs_of(id) {
            let m = out.entry(i).or_default();
            *m = (*m).max(need);
        }
    }
    out
}

/// Computes scales, bounds and quantized biases for one (p, f).
/// `act` overrides the output scale of the input and of non-linear layers, and the weight
/// scale base of linear layers (default f; extra bits for small weights come on top).
pub(crate) fn layout(
    inp: &Inputs,
    fx: FixedPoint,
    act: &HashMap<NodeId, u32>,
) -> Result<Layout, QuantError> {
    let g = &inp.model.graph;
    let f = fx.frac_bits;
    let max_bits = (fx.max_signed() as f64).log2();
    let mut scale_of: HashMap<NodeId, (u32, u64)> = HashMap::new();
    let mut bound_of: HashMap<NodeId, Bound> = HashMap::new();
    let mut layers = Vec::new();
    let mut biases = HashMap::new();
    let mut worst: Option<(NodeId, String, f64)> = None;
    let margins = ot_pool_margins(inp);
    for id in g.topo_order()? {
        let node = g.node(id);
        let ins = g.inputs_of(id);
        let protocol = inp
            .protocols
            .get(&id)
            .copied()
            .unwrap_or_else(|| Protocol::default_for(node.op.class()));
        let view = Node {
            id,
            name: &node.name,
            scales: ins.iter().map(|i| scale_of[i].0).collect(),
            divs: ins.iter().map(|i| scale_of[i].1).collect(),
            bounds: ins.iter().map(|i| &bound_of[i]).collect(),
            ins: ins.clone(),
            nch: channels(&node.shape),
            act: act.get(&id).copied().unwrap_or(f),
        };
        let s = match &node.op {
            Op::Input => input(inp, &view),
            Op::Conv3d(_) | Op::Linear { .. } => {
                let (s, bq) = weighted(inp, &view)?;
                biases.insert(id, bq);
                s
            }
            Op::AvgPool3d {
                window,
                count_include_pad,
            } => avg_pool(inp, &view, window, *count_include_pad, f),
            Op::Mean { axes, .. } => mean(inp, &view, axes, f),
            Op::Relu if protocol == Protocol::BeaverSquare => square(inp, &view)?,
            Op::Relu | Op::MaxPool3d(_) | Op::MaxPoolRelu3d(_) => garbled(inp, &view, &node.op),
            Op::Reshape => Scaled::new(
                view.scales[0],
                view.divs[0],
                reshape_bound(view.bounds[0], &g.node(ins[0]).shape, &node.shape),
            ),
            Op::Pad { pads } => pad(&view, pads),
            Op::Add | Op::Concat { .. } => join(&view, &node.op)?,
            Op::Softmax { .. } | Op::Argmax { .. } => client(),
        };
        let in_scales = view.scales;
        let n_in = ins.len();
        let (in_shifts, in_mults) = s.align.unwrap_or((vec![0; n_in], vec![1; n_in]));
        // The fit is decided on the exact bound; the plan, which is public, gets it rounded
        // up to whole bits (and the headroom that rounded bound leaves), not the exact log2
        // of a weighted norm of the layer's weights.
        let bmax = s.bound.max();
        let exact_bits = if bmax > 0.0 { bmax.log2() } else { 0.0 };
        let is_client = node.op.class() == OpClass::ClientOutput;
        let exact_headroom = if is_client {
            max_bits
        } else {
            max_bits - exact_bits
        };
        let bound_bits = LayerQuant::bound_bits_of(bmax);
        let headroom_bits = LayerQuant::headroom_bits_of(&fx, bound_bits);
        // The input of a pool run by OT comparisons needs whole bits of public headroom
        // (c3d_ir::ot_comparable); short of them the node does not fit.
        let exact_headroom = match margins.get(&id) {
            Some(&m) => exact_headroom.min(headroom_bits as f64 - m as f64),
            None => exact_headroom,
        };
        if !is_client && worst.as_ref().is_none_or(|(_, _, h)| exact_headroom < *h) {
            worst = Some((id, node.name.clone(), exact_headroom));
        }
        scale_of.insert(id, (s.scale, s.divisor));
        bound_of.insert(id, s.bound);
        layers.push(NodePlan {
            node: id,
            quant: LayerQuant {
                in_scales,
                in_shifts,
                in_mults,
                out_scale: s.scale,
                divisor: s.divisor,
                weight_frac_bits: s.weight_frac_bits,
                weight_mag_bits: 0,
                truncate_bits: s.truncate_bits,
                bound_bits,
                headroom_bits,
            },
            protocol,
            packing: None,
            sparsity: None,
        });
    }
    Ok(Layout {
        layers,
        biases,
        worst,
    })
}

/// The model input: the preprocessed pixel range at the input's scale.
fn input(inp: &Inputs, n: &Node) -> Scaled {
    let k = 2f64.powi(n.act as i32);
    let chan: Vec<f64> = inp
        .stats
        .input_abs_max
        .iter()
        .map(|m| m * k + 0.5)
        .collect();
    let (lo, _) = inp.model.meta.preprocess.input_range();
    let bound = Bound {
        chan,
        nonneg: lo >= 0.0,
    }
    .uniform_if_needed(n.nch);
    Scaled::new(n.act, 1, bound)
}

/// Conv3d and Linear: weights at the node's scale plus the small-weight bits, the bias at the
/// output scale; returns the quantized bias too.
fn weighted(inp: &Inputs, n: &Node) -> Result<(Scaled, Vec<i64>), QuantError> {
    let (w, bias) = inp
        .model
        .weights
        .get(&n.id)
        .ok_or_else(|| c3d_ir::IrError::Weights(format!("no weights for `{}`", n.name)))?;
    let wb = n.act + extra_weight_bits(w);
    let s = n.scales[0] + wb;
    let d = n.divs[0];
    let bq: Vec<i64> = bias
        .iter()
        .map(|&v| round_i64(v as f64 * 2f64.powi(s as i32) * d as f64))
        .collect();
    let chan = linear_bound(w, &bq, n.bounds[0], wb);
    let mut out = Scaled::new(
        s,
        d,
        Bound {
            chan,
            nonneg: false,
        },
    );
    out.weight_frac_bits = wb;
    Ok((out, bq))
}

/// Average pooling: a uniform count joins the divisor; counts that vary from window to window
/// multiply by rounded reciprocals.
fn avg_pool(inp: &Inputs, n: &Node, window: &Window3d, include_pad: bool, f: u32) -> Scaled {
    let g = &inp.model.graph;
    let ishape = &g.node(n.ins[0]).shape;
    let oshape = &g.node(n.id).shape;
    match uniform_count(window, include_pad, ishape, oshape) {
        Some(c) if n.divs[0] * c as u64 <= MAX_DIVISOR => Scaled::new(
            n.scales[0],
            n.divs[0] * c as u64,
            n.bounds[0].scaled(c as f64),
        ),
        _ => {
            // Counts vary from window to window: every count up to the kernel size needs its
            // reciprocal to f bits, so no power-of-two shortcut here.
            let count: usize = window.kernel.iter().product();
            let wb = f + (count as f64).log2().ceil() as u32;
            let gain = (1..=count)
                .map(|c| (c as i64 * reciprocal(c, wb)) as f64)
                .fold(0.0, f64::max);
            let mut out = Scaled::new(n.scales[0] + wb, n.divs[0], n.bounds[0].scaled(gain));
            out.weight_frac_bits = wb;
            out
        }
    }
}

/// Mean over axes: the count joins the divisor while it stays small, else a reciprocal.
fn mean(inp: &Inputs, n: &Node, axes: &[usize], f: u32) -> Scaled {
    let dims = inp.model.graph.node(n.ins[0]).shape.dims();
    let count: usize = axes.iter().map(|&a| dims[a]).product();
    let b = if axes.contains(&1) {
        n.bounds[0].uniform(n.nch).scaled(count as f64)
    } else {
        n.bounds[0].scaled(count as f64)
    };
    if n.divs[0] * count as u64 <= MAX_DIVISOR {
        Scaled::new(n.scales[0], n.divs[0] * count as u64, b)
    } else {
        let wb = divisor_bits(count, f).max(1);
        let gain = (count as i64 * reciprocal(count, wb)) as f64;
        let b = b.scaled(gain / count as f64);
        let mut out = Scaled::new(n.scales[0] + wb, n.divs[0], b);
        out.weight_frac_bits = wb;
        out
    }
}

/// A ReLU squared with Beaver pairs: bound squared, scale and divisor doubled, nothing
/// truncated.
fn square(inp: &Inputs, n: &Node) -> Result<Scaled, QuantError> {
    let d = n.divs[0].saturating_mul(n.divs[0]);
    if d > MAX_DIVISOR {
        return Err(QuantError::SquareDivisor {
            layer: n.name.to_string(),
        });
    }
    // Like a garbled layer's output, the input's magnitude is taken as the smaller of its
    // sound bound and the calibrated largest value times 2^safety (the input is itself
    // linear, and sound bounds squared compound far beyond any real activation).
    let unit = 2f64.powi((n.scales[0] + inp.safety) as i32) * n.divs[0] as f64;
    let chan = calibrated(
        &n.bounds[0].chan,
        1.0,
        inp.stats.abs_max.get(&n.ins[0]),
        unit,
    )
    .into_iter()
    .map(|m| m * m)
    .collect();
    Ok(Scaled::new(
        2 * n.scales[0],
        d,
        Bound { chan, nonneg: true },
    ))
}

/// ReLU and max-pools in a garbled circuit: truncated back to the node's activation scale,
/// bounded by the calibration.
fn garbled(inp: &Inputs, n: &Node, op: &Op) -> Scaled {
    let a = n.act.min(n.scales[0]);
    let t = n.scales[0] - a;
    let k = 2f64.powi(t as i32);
    let unit = 2f64.powi((a + inp.safety) as i32) * n.divs[0] as f64;
    let chan = calibrated(&n.bounds[0].chan, k, inp.stats.abs_max.get(&n.id), unit);
    let nonneg = matches!(op, Op::Relu | Op::MaxPoolRelu3d(_)) || n.bounds[0].nonneg;
    let mut out = Scaled::new(a, n.divs[0], Bound { chan, nonneg });
    out.truncate_bits = t;
    out
}

/// Zero padding: padded channels are bounded by zero.
fn pad(n: &Node, pads: &[(usize, usize)]) -> Scaled {
    let mut b = n.bounds[0].clone();
    if pads.len() > 1 && (pads[1].0 > 0 || pads[1].1 > 0) {
        let mut chan = vec![0.0; pads[1].0];
        chan.extend(&b.chan);
        chan.extend(vec![0.0; pads[1].1]);
        b.chan = chan;
    }
    Scaled::new(n.scales[0], n.divs[0], b)
}

/// Add and Concat: inputs aligned to the largest scale and a common divisor.
fn join(n: &Node, op: &Op) -> Result<Scaled, QuantError> {
    let s = *n.scales.iter().max().expect("at least one input");
    let lcm = n.divs.iter().fold(1u64, |l, &d| l / gcd(l, d) * d);
    if lcm > MAX_DIVISOR {
        return Err(QuantError::JoinDivisor {
            layer: n.name.to_string(),
        });
    }
    let k = n.ins.len();
    let (mut shifts, mut mults) = (vec![0; k], vec![1u64; k]);
    let mut parts = Vec::new();
    for i in 0..k {
        shifts[i] = s - n.scales[i];
        mults[i] = lcm / n.divs[i];
        parts.push(n.bounds[i].scaled(mults[i] as f64 * 2f64.powi(shifts[i] as i32)));
    }
    let nonneg = parts.iter().all(|p| p.nonneg);
    let b = match op {
        Op::Concat { axis: 1 } => Bound {
            chan: parts.iter().flat_map(|p| p.chan.clone()).collect(),
            nonneg,
        },
        Op::Concat { .. } => {
            let m = parts.iter().fold(0f64, |m, p| m.max(p.max()));
            Bound {
                chan: vec![m; n.nch],
                nonneg,
            }
        }
        _ => {
            let chan = (0..n.nch)
                .map(|c| {
                    parts
                        .iter()
                        .map(|p| p.chan.get(c).copied().unwrap_or_else(|| p.max()))
                        .sum()
                })
                .collect();
            Bound { chan, nonneg }
        }
    };
    let mut out = Scaled::new(s, lcm, b);
    out.align = Some((shifts, mults));
    Ok(out)
}

/// Softmax and Argmax run at the client on the revealed output: nothing to bound.
fn client() -> Scaled {
    Scaled::new(
        0,
        1,
        Bound {
            chan: vec![0.0],
            nonneg: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{quantize, QuantConfig};
    use c3d_ir::{eval_float, Graph, ModelMeta, Preprocess, Shape, Tensor};

    #[test]
    fn divisor_bits_are_exact_for_powers_of_two() {
        assert_eq!(divisor_bits(1, 12), 0);
        assert_eq!(divisor_bits(8, 12), 3);
        assert_eq!(reciprocal(8, 3), 1);
        assert_eq!(divisor_bits(98, 12), 19);
        assert_eq!(extra_weight_bits(&[0.2, -0.01]), 3);
        assert_eq!(extra_weight_bits(&[1.5]), 0);
        assert_eq!(extra_weight_bits(&[1e-9]), 8);
    }

    /// Add aligns its inputs by hand-derived shifts and multipliers: scales 10 and 12 with
    /// divisors 4 and 6 meet at scale 12 and divisor 12.
    #[test]
    fn joins_align_scales_and_divisors() {
        let b = |v: f64| Bound {
            chan: vec![v],
            nonneg: true,
        };
        let (b0, b1) = (b(3.0), b(5.0));
        let n = Node {
            id: NodeId::new(0),
            name: "add",
            ins: vec![NodeId::new(1), NodeId::new(2)],
            scales: vec![10, 12],
            divs: vec![4, 6],
            bounds: vec![&b0, &b1],
            nch: 1,
            act: 12,
        };
        let s = join(&n, &Op::Add).unwrap();
        assert_eq!((s.scale, s.divisor), (12, 12));
        assert_eq!(s.align, Some((vec![2, 0], vec![3, 2])));
        // 3 * 3 * 2^2 + 5 * 2.
        assert_eq!(s.bound.chan, vec![46.0]);
    }

    /// Windows of 3, 4 and 3 valid inputs (padding excluded from the count): every count must
    /// get its own accurate reciprocal, not just the largest.
    #[test]
    fn average_pool_with_varying_counts_matches_float() {
        let shape = Shape::new(vec![1, 3, 1, 1, 6]);
        let mut g = Graph::new();
        let x = g.add_input("x", shape.clone());
        let mut w = Window3d::dense([1, 1, 4]);
        w.stride = [1, 1, 2];
        w.pads = [(0, 0), (0, 0), (1, 1)];
        let op = Op::AvgPool3d {
            window: w,
            count_include_pad: false,
        };
        let y = g.add("pool", op, &[x], None).unwrap();
        g.set_outputs(vec![y]);
        let meta = ModelMeta {
            name: "pool".into(),
            producer: String::new(),
            preprocess: Preprocess::default_for(&shape),
            class_names: vec![],
            approx: vec![],
        };
        let model = Model {
            graph: g,
            weights: Default::default(),
            meta,
        };
        let q = quantize(&model, &QuantConfig::default(), |_| {}).unwrap();
        let input = Tensor::new(
            shape,
            (0..18)
                .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.4)
                .collect(),
        );
        let float = eval_float(&model, input.clone(), |_, _| {}).unwrap();
        let sim = c3d_ir::simulate(&q.plan, &q.weights, &input).unwrap();
        let lowest = q.plan.lowest_activation_bits().unwrap();
        for (a, b) in float.data.iter().zip(&sim.output.data) {
            assert!(
                (a - b).abs() <= 2.0 * (-(lowest as f32)).exp2(),
                "{a} vs {b}"
            );
        }
    }
}
