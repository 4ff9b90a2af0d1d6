//! Range analysis and fixed-point scale choice: maps a float model into F_p.
//!
//! Every activation leaving a non-linear layer carries `f` fractional bits; weights carry
//! `f` bits plus a few for layers whose weights are all small; a linear layer's output carries the sum of its input's and its weights' bits
//! until the next non-linear layer truncates back to `f` inside the garbled circuit.
//!
//! Bounds: the model input is bounded by the preprocessing (pixels 0..=255), which is sound.
//! A linear layer's output is bounded by its worst case, max_o (sum |w_int[o]| * B_in + |b_int[o]|),
//! which is sound given its input bound. A non-linear layer's output takes the smaller of the
//! sound bound and the largest calibrated activation times 2^safety_bits, because worst cases
//! compounded through a deep network are far beyond any real activation. The chosen (p, f) is
//! the smallest candidate prime, and then the largest f, for which every bound fits in
//! (-p/2, p/2): no intermediate value can wrap for inputs whose activations stay within the
//! calibrated range times the margin.

use crate::calibrate::{calibrate, ActStats};
use c3d_ir::fixed::{candidate_primes, FixedPoint};
use c3d_ir::format::Hash;
use c3d_ir::op::{Op, OpClass};
use c3d_ir::simulate::reciprocal;
use c3d_ir::{
    Calibration, LayerQuant, LayerWeights, Model, NodeId, NodePlan, PassRecord, Plan, Protocol,
    Tensor, Weights,
};
use rand::TryRngCore;
use std::collections::{HashMap, HashSet};

/// Settings of the quantization pass.
#[derive(Clone, Debug)]
pub struct QuantConfig {
    /// Force this many fractional bits (otherwise chosen).
    pub frac_bits: Option<u32>,
    /// Force this prime (otherwise the smallest candidate that fits).
    pub prime: Option<u64>,
    /// Smallest acceptable f when choosing.
    pub min_frac_bits: u32,
    /// Largest f tried.
    pub max_frac_bits: u32,
    /// Generated calibration inputs (uniform over the preprocessed pixel range).
    pub calib_samples: usize,
    /// Seed of the generated calibration inputs.
    pub seed: u64,
    /// Extra calibration inputs from the user.
    pub calib_inputs: Vec<Tensor<f32>>,
    /// Margin, in bits, over the largest calibrated activation.
    pub safety_bits: u32,
    /// ReLU layers (by node name) replaced by x^2 with Beaver squares: no comparisons, the
    /// scale doubles until the next garbled layer truncates.
    pub approx: Vec<String>,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            frac_bits: None,
            prime: None,
            min_frac_bits: 8,
            max_frac_bits: 16,
            calib_samples: 4,
            seed: 0x00C3_D0C3,
            calib_inputs: Vec::new(),
            safety_bits: 2,
            approx: Vec::new(),
        }
    }
}

/// Why a model could not be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// No candidate (p, f) keeps every value from wrapping.
    #[error("no field fits: at p = {p} with f = {f} bits, layer `{layer}` needs {need:.1} bits of magnitude but p allows {have:.1}")]
    NoFit {
        /// Largest prime tried.
        p: u64,
        /// Smallest f tried.
        f: u32,
        /// The layer that overflowed.
        layer: String,
        /// Bits needed.
        need: f64,
        /// Bits available.
        have: f64,
    },
    /// Invalid settings.
    #[error("{0}")]
    Config(String),
    /// IR-level failure (evaluation, shapes).
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
}

/// Result of the pass: the public plan and the server's weights.
pub struct Quantized {
    /// The plan (weights hash filled in).
    pub plan: Plan,
    /// The quantized weights.
    pub weights: Weights,
}

struct Layout {
    layers: Vec<NodePlan>,
    /// Quantized biases of the weighted layers (weights are quantized once, at the end).
    biases: HashMap<NodeId, Vec<i64>>,
    /// The node with the least headroom, its name and exact headroom (for the choice of
    /// (p, f) only: the plan records whole bits).
    worst: Option<(NodeId, String, f64)>,
}

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

fn round_i64(v: f64) -> i64 {
    v.round().clamp(-(2f64.powi(62)), 2f64.powi(62)) as i64
}

/// Per-channel magnitude bounds of one tensor (axis 1; one entry for rank below 2), in
/// integer units, and whether every value is known to be non-negative.
#[derive(Clone, Debug)]
struct Bound {
    chan: Vec<f64>,
    nonneg: bool,
}

impl Bound {
    fn max(&self) -> f64 {
        self.chan.iter().fold(0f64, |m, &v| m.max(v))
    }
    fn uniform(&self, n: usize) -> Bound {
        Bound {
            chan: vec![self.max(); n.max(1)],
            nonneg: self.nonneg,
        }
    }
    /// Input bounds come per colour channel; any other channel count gets the largest.
    fn uniform_if_needed(self, n: usize) -> Bound {
        if self.chan.len() == n {
            self
        } else {
            self.uniform(n)
        }
    }
    fn scaled(&self, k: f64) -> Bound {
        Bound {
            chan: self.chan.iter().map(|v| v * k).collect(),
            nonneg: self.nonneg,
        }
    }
}

fn channels(s: &c3d_ir::Shape) -> usize {
    if s.rank() >= 2 {
        s.dims()[1]
    } else {
        1
    }
}

/// Maps per-channel bounds through a reshape: each new channel takes the largest bound of the
/// old channels its elements came from (row-major order is kept).
fn reshape_bound(b: &Bound, from: &c3d_ir::Shape, to: &c3d_ir::Shape) -> Bound {
    let per = from.numel() / from.dims().first().copied().unwrap_or(1).max(1);
    let (c0, c1) = (channels(from), channels(to));
    if from.rank() < 2 || to.rank() < 2 || b.chan.len() != c0 {
        return b.uniform(c1);
    }
    let (in0, in1) = (per / c0.max(1), per / c1.max(1));
    let chan = (0..c1)
        .map(|j| {
            let (lo, hi) = (j * in1 / in0.max(1), ((j + 1) * in1 - 1) / in0.max(1));
            b.chan[lo..=hi.min(c0 - 1)]
                .iter()
                .fold(0f64, |m, &v| m.max(v))
        })
        .collect();
    Bound {
        chan,
        nonneg: b.nonneg,
    }
}

/// The number of inputs every window of a pool sums, when it is the same for all windows.
fn uniform_count(
    win: &c3d_ir::Window3d,
    include_pad: bool,
    input: &c3d_ir::Shape,
    out: &c3d_ir::Shape,
) -> Option<usize> {
    let (_, _, d, h, w) = input.ncdhw()?;
    let (_, _, od, oh, ow) = out.ncdhw()?;
    let mut total = 1;
    for (a, (len, olen)) in [(d, od), (h, oh), (w, ow)].into_iter().enumerate() {
        let count = |o: usize| {
            if include_pad {
                win.padded_taps(a, o, len)
            } else {
                win.taps(a, o, len).count()
            }
        };
        let c0 = count(0);
        if (1..olen).any(|o| count(o) != c0) {
            return None;
        }
        total *= c0;
    }
    Some(total)
}

/// Per-output-channel bound of sum(round(w * 2^wb) * x) + b for inputs bounded per channel by
/// `inb`, computed from the float weights: rounding moves each weight by at most 1/2, which is
/// added as slack, so the bound holds for the quantized weights without quantizing them.
fn linear_bound(w: &[f32], bq: &[i64], inb: &Bound, wb: u32) -> Vec<f64> {
    use rayon::prelude::*;
    let cin = inb.chan.len().max(1);
    let per = w.len() / bq.len().max(1);
    let k = (per / cin).max(1);
    let scale = 2f64.powi(wb as i32);
    bq.par_iter()
        .enumerate()
        .map(|(o, &bo)| {
            let (mut pos, mut neg) = (0f64, 0f64);
            for (j, &wv) in w[o * per..(o + 1) * per].iter().enumerate() {
                let x = inb.chan[(j / k).min(cin - 1)];
                let q = (wv as f64 * scale).abs() + 0.5;
                if wv > 0.0 {
                    pos += q * x;
                } else if wv < 0.0 {
                    neg += q * x;
                }
            }
            let bo = bo as f64;
            if inb.nonneg {
                (pos + bo).abs().max((bo - neg).abs())
            } else {
                pos + neg + bo.abs()
            }
        })
        .collect()
}

/// Largest public divisor the analysis lets accumulate before it uses a rounded reciprocal.
const MAX_DIVISOR: u64 = 1 << 20;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Per channel, the smaller of the sound bound (divided by `k`, the truncation) and the
/// calibrated largest value in integer units (`unit` = 2^(scale + safety) * divisor); no
/// calibration means the sound bound.
fn calibrated(sound: &[f64], k: f64, obs: Option<&Vec<f64>>, unit: f64) -> Vec<f64> {
    sound
        .iter()
        .enumerate()
        .map(|(c, &b)| {
            let o = obs.and_then(|v| v.get(c)).copied().unwrap_or(f64::INFINITY);
            (b / k).min(o * unit + 1.0)
        })
        .collect()
}

/// Computes scales, bounds and quantized weights for one (p, f).
/// `act` overrides the output scale of the input and of non-linear layers, and the weight
/// scale base of linear layers (default f; extra bits for small weights come on top).
fn layout(
    model: &Model,
    stats: &ActStats,
    fx: FixedPoint,
    safety: u32,
    act: &HashMap<NodeId, u32>,
    approx: &HashSet<NodeId>,
) -> Result<Layout, QuantError> {
    let g = &model.graph;
    let f = fx.frac_bits;
    let max_bits = (fx.max_signed() as f64).log2();
    let mut scale_of: HashMap<NodeId, (u32, u64)> = HashMap::new();
    let mut bound_of: HashMap<NodeId, Bound> = HashMap::new();
    let mut layers = Vec::new();
    let mut biases = HashMap::new();
    let mut worst: Option<(NodeId, String, f64)> = None;
    for id in g.topo_order()? {
        let node = g.node(id);
        let ins = g.inputs_of(id);
        let in_scales: Vec<u32> = ins.iter().map(|i| scale_of[i].0).collect();
        let in_divs: Vec<u64> = ins.iter().map(|i| scale_of[i].1).collect();
        let in_b: Vec<&Bound> = ins.iter().map(|i| &bound_of[i]).collect();
        let mut in_shifts = vec![0; ins.len()];
        let mut in_mults = vec![1u64; ins.len()];
        let (mut weight_bits, mut truncate_bits) = (0, 0);
        let nch = channels(&node.shape);
        let (scale, divisor, b): (u32, u64, Bound) = match &node.op {
            Op::Input => {
                let a = act.get(&id).copied().unwrap_or(f);
                let k = 2f64.powi(a as i32);
                let chan: Vec<f64> = stats.input_abs_max.iter().map(|m| m * k + 0.5).collect();
                let (lo, _) = model.meta.preprocess.input_range();
                (
                    a,
                    1,
                    Bound {
                        chan,
                        nonneg: lo >= 0.0,
                    }
                    .uniform_if_needed(nch),
                )
            }
            Op::Conv3d(_) | Op::Linear { .. } => {
                let (w, bias) = model.weights.get(&id).ok_or_else(|| {
                    c3d_ir::IrError::Weights(format!("no weights for `{}`", node.name))
                })?;
                weight_bits = act.get(&id).copied().unwrap_or(f) + extra_weight_bits(w);
                let s = in_scales[0] + weight_bits;
                let d = in_divs[0];
                let bq: Vec<i64> = bias
                    .iter()
                    .map(|&v| round_i64(v as f64 * 2f64.powi(s as i32) * d as f64))
                    .collect();
                let chan = linear_bound(w, &bq, in_b[0], weight_bits);
                biases.insert(id, bq);
                (
                    s,
                    d,
                    Bound {
                        chan,
                        nonneg: false,
                    },
                )
            }
            Op::AvgPool3d {
                window,
                count_include_pad,
            } => {
                let ishape = &g.node(ins[0]).shape;
                match uniform_count(window, *count_include_pad, ishape, &node.shape) {
                    Some(c) if in_divs[0] * c as u64 <= MAX_DIVISOR => (
                        in_scales[0],
                        in_divs[0] * c as u64,
                        in_b[0].scaled(c as f64),
                    ),
                    _ => {
                        // Counts vary from window to window: every count up to the kernel size
                        // needs its reciprocal to f bits, so no power-of-two shortcut here.
                        let count: usize = window.kernel.iter().product();
                        weight_bits = f + (count as f64).log2().ceil() as u32;
                        let gain = (1..=count)
                            .map(|c| (c as i64 * reciprocal(c, weight_bits)) as f64)
                            .fold(0.0, f64::max);
                        (in_scales[0] + weight_bits, in_divs[0], in_b[0].scaled(gain))
                    }
                }
            }
            Op::Mean { axes, .. } => {
                let dims = g.node(ins[0]).shape.dims();
                let count: usize = axes.iter().map(|&a| dims[a]).product();
                let b = if axes.contains(&1) {
                    in_b[0].uniform(nch).scaled(count as f64)
                } else {
                    in_b[0].scaled(count as f64)
                };
                if in_divs[0] * count as u64 <= MAX_DIVISOR {
                    (in_scales[0], in_divs[0] * count as u64, b)
                } else {
                    weight_bits = divisor_bits(count, f).max(1);
                    let gain = (count as i64 * reciprocal(count, weight_bits)) as f64;
                    let b = b.scaled(gain / count as f64);
                    (in_scales[0] + weight_bits, in_divs[0], b)
                }
            }
            Op::Relu if approx.contains(&id) => {
                // x^2: bound squared, scale and divisor doubled, nothing truncated.
                let d = in_divs[0].saturating_mul(in_divs[0]);
                if d > MAX_DIVISOR {
                    return Err(QuantError::Config(format!(
                        "`{}` squares a tensor whose pooling divisor is too large",
                        node.name
                    )));
                }
                // Like a garbled layer's output, the input's magnitude is taken as the smaller
                // of its sound bound and the calibrated largest value times 2^safety (the
                // input is itself linear, and sound bounds squared compound far beyond any
                // real activation).
                let unit = 2f64.powi((in_scales[0] + safety) as i32) * in_divs[0] as f64;
                let chan = calibrated(&in_b[0].chan, 1.0, stats.abs_max.get(&ins[0]), unit)
                    .into_iter()
                    .map(|m| m * m)
                    .collect();
                (2 * in_scales[0], d, Bound { chan, nonneg: true })
            }
            Op::Relu | Op::MaxPool3d(_) | Op::MaxPoolRelu3d(_) => {
                let a = act.get(&id).copied().unwrap_or(f).min(in_scales[0]);
                truncate_bits = in_scales[0] - a;
                let k = 2f64.powi(truncate_bits as i32);
                let unit = 2f64.powi((a + safety) as i32) * in_divs[0] as f64;
                let chan = calibrated(&in_b[0].chan, k, stats.abs_max.get(&id), unit);
                let nonneg = matches!(node.op, Op::Relu | Op::MaxPoolRelu3d(_)) || in_b[0].nonneg;
                (a, in_divs[0], Bound { chan, nonneg })
            }
            Op::Reshape => (
                in_scales[0],
                in_divs[0],
                reshape_bound(in_b[0], &g.node(ins[0]).shape, &node.shape),
            ),
            Op::Pad { pads } => {
                let mut b = in_b[0].clone();
                if pads.len() > 1 && (pads[1].0 > 0 || pads[1].1 > 0) {
                    let mut chan = vec![0.0; pads[1].0];
                    chan.extend(&b.chan);
                    chan.extend(vec![0.0; pads[1].1]);
                    b.chan = chan;
                }
                (in_scales[0], in_divs[0], b)
            }
            Op::Add | Op::Concat { .. } => {
                let s = *in_scales.iter().max().expect("at least one input");
                let lcm = in_divs.iter().fold(1u64, |l, &d| l / gcd(l, d) * d);
                if lcm > MAX_DIVISOR {
                    return Err(QuantError::Config(format!(
                        "`{}` joins tensors whose pooling divisors have no small common multiple",
                        node.name
                    )));
                }
                let mut parts = Vec::new();
                for k in 0..ins.len() {
                    in_shifts[k] = s - in_scales[k];
                    in_mults[k] = lcm / in_divs[k];
                    parts.push(in_b[k].scaled(in_mults[k] as f64 * 2f64.powi(in_shifts[k] as i32)));
                }
                let nonneg = parts.iter().all(|p| p.nonneg);
                let b = match node.op {
                    Op::Concat { axis: 1 } => Bound {
                        chan: parts.iter().flat_map(|p| p.chan.clone()).collect(),
                        nonneg,
                    },
                    Op::Concat { .. } => {
                        let m = parts.iter().fold(0f64, |m, p| m.max(p.max()));
                        Bound {
                            chan: vec![m; nch],
                            nonneg,
                        }
                    }
                    _ => {
                        let chan = (0..nch)
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
                (s, lcm, b)
            }
            Op::Softmax { .. } | Op::Argmax { .. } => (
                0,
                1,
                Bound {
                    chan: vec![0.0],
                    nonneg: true,
                },
            ),
        };
        // The fit is decided on the exact bound; the plan, which is public, gets it rounded
        // up to whole bits (and the headroom that rounded bound leaves), not the exact log2
        // of a weighted norm of the layer's weights.
        let bmax = b.max();
        let exact_bits = if bmax > 0.0 { bmax.log2() } else { 0.0 };
        let client = node.op.class() == OpClass::ClientOutput;
        let exact_headroom = if client {
            max_bits
        } else {
            max_bits - exact_bits
        };
        if !client && worst.as_ref().is_none_or(|(_, _, h)| exact_headroom < *h) {
            worst = Some((id, node.name.clone(), exact_headroom));
        }
        let bound_bits = LayerQuant::bound_bits_of(bmax);
        let headroom_bits = LayerQuant::headroom_bits_of(&fx, bound_bits);
        scale_of.insert(id, (scale, divisor));
        bound_of.insert(id, b);
        layers.push(NodePlan {
            node: id,
            quant: LayerQuant {
                in_scales,
                in_shifts,
                in_mults,
                out_scale: scale,
                divisor,
                weight_bits,
                weight_mag_bits: 0,
                truncate_bits,
                bound_bits,
                headroom_bits,
            },
            protocol: if approx.contains(&id) {
                Protocol::BeaverSquare
            } else {
                Protocol::default_for(node.op.class())
            },
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

/// Runs calibration and chooses (p, f); returns the plan and the quantized weights.
pub fn quantize(
    model: &Model,
    cfg: &QuantConfig,
    mut progress: impl FnMut(&str),
) -> Result<Quantized, QuantError> {
    if cfg.min_frac_bits == 0 || cfg.min_frac_bits > cfg.max_frac_bits || cfg.max_frac_bits > 24 {
        return Err(QuantError::Config(format!(
            "fractional bits range {}..={} is not within 1..=24",
            cfg.min_frac_bits, cfg.max_frac_bits
        )));
    }
    let stats = calibrate(model, cfg, &mut progress)?;
    let primes = match cfg.prime {
        Some(p) => {
            if !c3d_ir::fixed::is_prime(p) || !(1u64 << 20..1u64 << 62).contains(&p) {
                return Err(QuantError::Config(format!(
                    "{p} is not a prime of 21..62 bits"
                )));
            }
            vec![p]
        }
        None => candidate_primes(),
    };
    let fs: Vec<u32> = match cfg.frac_bits {
        Some(f) if (1..=24).contains(&f) => vec![f],
        Some(f) => {
            return Err(QuantError::Config(format!(
                "{f} fractional bits is out of range 1..=24"
            )))
        }
        None => (cfg.min_frac_bits..=cfg.max_frac_bits).rev().collect(),
    };
    let approx = approx_nodes(model, &cfg.approx)?;
    let none = HashMap::new();
    let mut last_fail = None;
    for &p in &primes {
        for &f in &fs {
            let fx = FixedPoint { p, frac_bits: f };
            let lay = layout(model, &stats, fx, cfg.safety_bits, &none, &approx)?;
            let (_, wname, wh) = lay.worst.clone().expect("a graph has nodes");
            if wh >= 0.0 {
                if cfg.frac_bits.is_none() {
                    if let Some(better) = raise(model, &stats, cfg, fx, &approx, &mut progress)? {
                        return finish(model, cfg, better.0, better.1, &stats, &mut progress);
                    }
                }
                return finish(model, cfg, fx, lay, &stats, &mut progress);
            }
            last_fail = Some(QuantError::NoFit {
                p,
                f,
                layer: wname,
                need: (fx.max_signed() as f64).log2() - wh,
                have: (fx.max_signed() as f64).log2(),
            });
        }
    }
    Err(last_fail.expect("at least one candidate tried"))
}

/// The ReLU nodes named in `names`, or an error naming the first that is not one.
fn approx_nodes(model: &Model, names: &[String]) -> Result<HashSet<NodeId>, QuantError> {
    let g = &model.graph;
    let order = g.topo_order()?;
    names
        .iter()
        .map(|name| {
            let id = order
                .iter()
                .copied()
                .find(|&n| g.node(n).name == *name)
                .ok_or_else(|| QuantError::Config(format!("--approx: no layer named `{name}`")))?;
            if !matches!(g.node(id).op, Op::Relu) {
                return Err(QuantError::Config(format!(
                    "--approx: `{name}` is a {}, only ReLU layers can be squared",
                    g.node(id).op.name()
                )));
            }
            Ok(id)
        })
        .collect()
}

/// The scale knobs behind `id`'s magnitude: first the input and non-linear nodes whose outputs
/// feed it through linear and local ops only, then the linear layers on the way. Lowering any
/// of them by a bit lowers `id`'s magnitude by a bit.
fn segment_knobs(
    g: &c3d_ir::Graph,
    id: NodeId,
    approx: &HashSet<NodeId>,
) -> (Vec<NodeId>, Vec<NodeId>) {
    let (mut sources, mut linear) = (Vec::new(), Vec::new());
    let mut stack = vec![id];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        match g.node(n).op.class() {
            // A square keeps no scale of its own: the knobs are behind it.
            OpClass::NonLinear if approx.contains(&n) => stack.extend(g.inputs_of(n)),
            OpClass::NonLinear | OpClass::Input => sources.push(n),
            class => {
                if class == OpClass::SecretLinear {
                    linear.push(n);
                }
                stack.extend(g.inputs_of(n));
            }
        }
    }
    (sources, linear)
}

/// Given a uniform f* that fits p, looks for a higher top scale: weights and activations start
/// at f_top, and only the segments that would overflow get lower activation scales, never below
/// f*. Every layer keeps at least the uniform precision; most get more.
fn raise(
    model: &Model,
    stats: &ActStats,
    cfg: &QuantConfig,
    base: FixedPoint,
    approx: &HashSet<NodeId>,
    progress: &mut impl FnMut(&str),
) -> Result<Option<(FixedPoint, Layout)>, QuantError> {
    let floor = base.frac_bits;
    let g = &model.graph;
    let acts: Vec<NodeId> = g
        .topo_order()?
        .into_iter()
        .filter(|&n| {
            matches!(
                g.node(n).op.class(),
                OpClass::NonLinear | OpClass::Input | OpClass::SecretLinear
            )
        })
        .collect();
    for top in (floor + 1..=cfg.max_frac_bits).rev() {
        let fx = FixedPoint {
            p: base.p,
            frac_bits: top,
        };
        let mut act: HashMap<NodeId, u32> = acts.iter().map(|&n| (n, top)).collect();
        // Each round lowers the failing segment by its deficit; bounded by the nodes times the
        // bits between top and floor.
        for _ in 0..=acts.len() * (top - floor) as usize {
            let lay = layout(model, stats, fx, cfg.safety_bits, &act, approx)?;
            let (wid, _, wh) = lay.worst.clone().expect("a graph has nodes");
            if wh >= 0.0 {
                let lowered = act.values().filter(|&&a| a < top).count();
                progress(&format!(
                    "quantize: f = {top} with {lowered} activation or weight scales lowered (none below {floor})"
                ));
                return Ok(Some((fx, lay)));
            }
            // Lower the activations feeding the failing segment first, then its weights.
            let deficit = (-wh).ceil().max(1.0) as u32;
            let (sources, linear) = segment_knobs(g, wid, approx);
            let mut moved = false;
            for group in [sources, linear] {
                for s in group {
                    let a = act.get_mut(&s).expect("knob has a scale");
                    let new = a.saturating_sub(deficit).max(floor);
                    moved |= new < *a;
                    *a = new;
                }
                if moved {
                    break;
                }
            }
            if !moved {
                break;
            }
        }
    }
    Ok(None)
}

fn finish(
    model: &Model,
    cfg: &QuantConfig,
    fx: FixedPoint,
    lay: Layout,
    stats: &ActStats,
    progress: &mut impl FnMut(&str),
) -> Result<Quantized, QuantError> {
    let mut weights = Weights::default();
    let mut lay = lay;
    for l in &mut lay.layers {
        if let Some(bias) = lay.biases.get(&l.node) {
            let (w, _) = &model.weights[&l.node];
            let k = 2f64.powi(l.quant.weight_bits as i32);
            let weight: Vec<i64> = w.iter().map(|&v| round_i64(v as f64 * k)).collect();
            let max = weight.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            // Public bound: bits of the largest magnitude, so every |w| < 2^bits.
            l.quant.weight_mag_bits = 64 - max.leading_zeros();
            weights.layers.insert(
                l.node,
                LayerWeights {
                    weight,
                    bias: bias.clone(),
                },
            );
        }
    }
    // The plan commits to the weights under a fresh secret salt: a client cannot test a
    // guess (a public checkpoint, say) against it.
    rand::rngs::OsRng
        .try_fill_bytes(&mut weights.salt)
        .map_err(|e| QuantError::Config(format!("cannot draw the weights salt: {e}")))?;
    let weights_hash: Hash = weights.commitment()?;
    let mut plan = Plan {
        meta: model.meta.clone(),
        graph: model.graph.clone(),
        fixed: fx,
        layers: lay.layers,
        passes: vec![],
        calibration: Calibration {
            samples: stats.samples,
            seed: cfg.seed,
            safety_bits: cfg.safety_bits,
        },
        weights_hash,
    };
    let lowest = plan.lowest_activation_bits().unwrap_or(fx.frac_bits);
    // The least public (whole-bit) headroom, first such layer in plan order: the record is
    // public too, so it says no more than the layers' own entries.
    let (wh, wname) = plan
        .layers
        .iter()
        .filter(|l| plan.graph.node(l.node).op.class() != OpClass::ClientOutput)
        .map(|l| (l.quant.headroom_bits, &plan.graph.node(l.node).name))
        .min_by_key(|&(h, _)| h)
        .map(|(h, n)| (h, n.clone()))
        .expect("a graph has an input");
    let detail = format!(
        "p = {} ({} bits), f = {} (activation scales {}..={}); least headroom {} whole bits at `{}`",
        fx.p,
        fx.prime_bits(),
        fx.frac_bits,
        lowest,
        fx.frac_bits,
        wh,
        wname
    );
    progress(&format!("quantize: {detail}"));
    plan.passes.push(PassRecord {
        name: "quantize".into(),
        detail,
    });
    plan.validate()?;
    Ok(Quantized { plan, weights })
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::{Shape, Window3d};

    #[test]
    fn uniform_counts_by_brute_force() {
        let input = Shape::new(vec![1, 1, 4, 5, 5]);
        let cases = [
            (Window3d::dense([2, 3, 3]), false, Some(18)),
            (
                {
                    let mut w = Window3d::dense([1, 3, 3]);
                    w.pads = [(0, 0), (1, 1), (1, 1)];
                    w
                },
                true,
                Some(9),
            ),
            (
                {
                    let mut w = Window3d::dense([1, 3, 3]);
                    w.pads = [(0, 0), (1, 1), (1, 1)];
                    w
                },
                false,
                None,
            ),
            (
                {
                    let mut w = Window3d::dense([1, 2, 2]);
                    w.stride = [1, 2, 2];
                    w.ceil_mode = true;
                    w
                },
                false,
                None,
            ),
        ];
        for (win, include, want) in cases {
            let [d, h, w] = win.out_dims([4, 5, 5]).unwrap();
            let out = Shape::new(vec![1, 1, d, h, w]);
            assert_eq!(
                uniform_count(&win, include, &input, &out),
                want,
                "{win:?} {include}"
            );
        }
    }

    #[test]
    fn reshape_bounds_follow_the_elements() {
        let b = Bound {
            chan: vec![1.0, 5.0, 2.0],
            nonneg: true,
        };
        // Flatten (1,3,2,2) -> (1,12): each feature keeps its channel's bound.
        let r = reshape_bound(&b, &Shape::new(vec![1, 3, 2, 2]), &Shape::new(vec![1, 12]));
        assert_eq!(
            r.chan,
            vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0]
        );
        assert!(r.nonneg);
        // (1,12) -> (1,2,6): each new channel takes the largest of the features it holds.
        let back = reshape_bound(&r, &Shape::new(vec![1, 12]), &Shape::new(vec![1, 2, 6]));
        assert_eq!(back.chan, vec![5.0, 5.0]);
    }

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
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use c3d_ir::{eval_float, Graph, ModelMeta, Preprocess, Shape, Tensor, Window3d};

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

#[cfg(test)]
mod public_bound_tests {
    use super::*;
    use c3d_ir::{Conv3dParams, Graph, ModelMeta, Preprocess, Shape, Window3d};

    /// input (1,3,2,4,4) -> Conv3d 3->4 (3x3x3, padded) -> Relu -> flatten -> Linear 128->5,
    /// weights from `w(k)`.
    fn model(w: impl Fn(usize) -> f32) -> Model {
        let shape = Shape::new(vec![1, 3, 2, 4, 4]);
        let mut g = Graph::new();
        let x = g.add_input("x", shape.clone());
        let mut win = Window3d::dense([3, 3, 3]);
        win.pads = [(1, 1); 3];
        let conv = Op::Conv3d(Conv3dParams {
            in_channels: 3,
            out_channels: 4,
            window: win,
        });
        let c = g.add("conv", conv, &[x], None).unwrap();
        let r = g.add("relu", Op::Relu, &[c], None).unwrap();
        let flat = g
            .add("flat", Op::Reshape, &[r], Some(Shape::new(vec![1, 128])))
            .unwrap();
        let fc = Op::Linear {
            in_features: 128,
            out_features: 5,
        };
        let l = g.add("fc", fc, &[flat], None).unwrap();
        g.set_outputs(vec![l]);
        let mut weights = c3d_ir::FloatWeights::new();
        weights.insert(
            c,
            ((0..4 * 81).map(&w).collect(), vec![0.05, -0.1, 0.0, 0.2]),
        );
        weights.insert(
            l,
            (
                (1000..1000 + 640).map(&w).collect(),
                vec![0.1, 0.0, -0.3, 0.2, 0.0],
            ),
        );
        Model {
            graph: g,
            weights,
            meta: ModelMeta {
                name: "bounds".into(),
                producer: String::new(),
                preprocess: Preprocess::default_for(&shape),
                class_names: vec![],
                approx: vec![],
            },
        }
    }

    /// The public bound and headroom are whole bits, derived from p and the rounded bound
    /// only, and weights that differ slightly give the same public plan: the plan no longer
    /// carries the exact log2 of each layer's weighted weight norm.
    #[test]
    fn slightly_different_weights_give_the_same_public_plan() {
        let base = |k: usize| 0.3 * ((k as f32) * 0.731).sin();
        let a = model(base);
        let b = model(|k| base(k) * (1.0 + 1e-3 * ((k as f32) * 1.37).cos()));
        let qa = quantize(&a, &QuantConfig::default(), |_| {}).unwrap();
        let qb = quantize(&b, &QuantConfig::default(), |_| {}).unwrap();
        assert_ne!(
            qa.weights.layers, qb.weights.layers,
            "the quantized weights differ"
        );
        for l in &qa.plan.layers {
            let q = &l.quant;
            assert_eq!(
                q.headroom_bits,
                LayerQuant::headroom_bits_of(&qa.plan.fixed, q.bound_bits)
            );
        }
        assert_eq!(qa.plan.fixed, qb.plan.fixed);
        assert_eq!(qa.plan.layers, qb.plan.layers);
        assert_eq!(qa.plan.passes, qb.plan.passes);
        // Only the commitment differs, and it would even for equal weights (fresh salts).
        assert_ne!(qa.plan.weights_hash, qb.plan.weights_hash);
        assert_ne!(qa.weights.salt, qb.weights.salt);
        assert_eq!(qa.weights.commitment().unwrap(), qa.plan.weights_hash);
    }
}
