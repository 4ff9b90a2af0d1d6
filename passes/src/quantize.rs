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
use std::collections::HashMap;

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
    weights: Weights,
    worst: Option<(String, f64)>,
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

/// Computes scales, bounds and quantized weights for one (p, f).
fn layout(
    model: &Model,
    stats: &ActStats,
    fx: FixedPoint,
    safety: u32,
) -> Result<Layout, QuantError> {
    let g = &model.graph;
    let f = fx.frac_bits;
    let max_bits = (fx.max_signed() as f64).log2();
    let mut out_scale: HashMap<NodeId, u32> = HashMap::new();
    let mut bound: HashMap<NodeId, f64> = HashMap::new();
    let mut layers = Vec::new();
    let mut weights = Weights::default();
    let mut worst: Option<(String, f64)> = None;
    for id in g.topo_order()? {
        let node = g.node(id);
        let ins = g.inputs_of(id);
        let in_scales: Vec<u32> = ins.iter().map(|i| out_scale[i]).collect();
        let in_b: Vec<f64> = ins.iter().map(|i| bound[i]).collect();
        let mut in_shifts = vec![0; ins.len()];
        let (mut weight_bits, mut truncate_bits) = (0, 0);
        let (scale, b) = match &node.op {
            Op::Input => (f, stats.input_abs_max * 2f64.powi(f as i32) + 0.5),
            Op::Conv3d(_) | Op::Linear { .. } => {
                let (w, bias) = model.weights.get(&id).ok_or_else(|| {
                    c3d_ir::IrError::Weights(format!("no weights for `{}`", node.name))
                })?;
                weight_bits = f + extra_weight_bits(w);
                let s = in_scales[0] + weight_bits;
                let wq: Vec<i64> = w
                    .iter()
                    .map(|&v| round_i64(v as f64 * 2f64.powi(weight_bits as i32)))
                    .collect();
                let bq: Vec<i64> = bias
                    .iter()
                    .map(|&v| round_i64(v as f64 * 2f64.powi(s as i32)))
                    .collect();
                let per = wq.len() / bq.len().max(1);
                let mut worst_row = 0f64;
                for (o, &bo) in bq.iter().enumerate() {
                    let l1: f64 = wq[o * per..(o + 1) * per]
                        .iter()
                        .map(|v| v.unsigned_abs() as f64)
                        .sum();
                    worst_row = worst_row.max(l1 * in_b[0] + bo.unsigned_abs() as f64);
                }
                weights.layers.insert(
                    id,
                    LayerWeights {
                        weight: wq,
                        bias: bq,
                    },
                );
                (s, worst_row)
            }
            Op::AvgPool3d { window, .. } => {
                let count: usize = window.kernel.iter().product();
                weight_bits = divisor_bits(count, f);
                let gain = (1..=count)
                    .map(|c| (c as i64 * reciprocal(c, weight_bits)) as f64)
                    .fold(0.0, f64::max);
                (in_scales[0] + weight_bits, in_b[0] * gain)
            }
            Op::Mean { axes, .. } => {
                let dims = g.node(ins[0]).shape.dims();
                let count: usize = axes.iter().map(|&a| dims[a]).product();
                weight_bits = divisor_bits(count, f);
                let gain = (count as i64 * reciprocal(count, weight_bits)) as f64;
                (in_scales[0] + weight_bits, in_b[0] * gain)
            }
            Op::Relu | Op::MaxPool3d(_) => {
                truncate_bits = in_scales[0] - f;
                let sound = in_b[0] / 2f64.powi(truncate_bits as i32);
                let observed = stats.abs_max.get(&id).copied().unwrap_or(0.0)
                    * 2f64.powi((f + safety) as i32)
                    + 1.0;
                (f, sound.min(observed))
            }
            Op::Reshape | Op::Pad { .. } => (in_scales[0], in_b[0]),
            Op::Add | Op::Concat { .. } => {
                let s = *in_scales.iter().max().expect("at least one input");
                for (k, &si) in in_scales.iter().enumerate() {
                    in_shifts[k] = s - si;
                }
                let shifted = in_b
                    .iter()
                    .zip(&in_shifts)
                    .map(|(b, &sh)| b * 2f64.powi(sh as i32));
                let b = if matches!(node.op, Op::Add) {
                    shifted.sum()
                } else {
                    shifted.fold(0.0, f64::max)
                };
                (s, b)
            }
            Op::Softmax { .. } | Op::Argmax { .. } => (0, 0.0),
        };
        let bound_bits = if b > 0.0 { b.log2() } else { 0.0 };
        let headroom_bits = if node.op.class() == OpClass::ClientOutput {
            max_bits
        } else {
            max_bits - bound_bits
        };
        if node.op.class() != OpClass::ClientOutput
            && worst.as_ref().is_none_or(|(_, h)| headroom_bits < *h)
        {
            worst = Some((node.name.clone(), headroom_bits));
        }
        out_scale.insert(id, scale);
        bound.insert(id, b);
        layers.push(NodePlan {
            node: id,
            quant: LayerQuant {
                in_scales,
                in_shifts,
                out_scale: scale,
                weight_bits,
                truncate_bits,
                bound_bits,
                headroom_bits,
            },
            protocol: Protocol::default_for(node.op.class()),
            packing: None,
            sparsity: None,
        });
    }
    Ok(Layout {
        layers,
        weights,
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
    let mut last_fail = None;
    for &p in &primes {
        for &f in &fs {
            let fx = FixedPoint { p, frac_bits: f };
            let lay = layout(model, &stats, fx, cfg.safety_bits)?;
            let (wname, wh) = lay.worst.clone().unwrap_or_default();
            if wh >= 0.0 {
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

fn finish(
    model: &Model,
    cfg: &QuantConfig,
    fx: FixedPoint,
    lay: Layout,
    stats: &ActStats,
    progress: &mut impl FnMut(&str),
) -> Result<Quantized, QuantError> {
    let (_, weights_hash): (Vec<u8>, Hash) = lay.weights.to_bytes()?;
    let (wname, wh) = lay.worst.unwrap_or_default();
    let detail = format!(
        "p = {} ({} bits), f = {}; least headroom {:.1} bits at `{}`",
        fx.p,
        fx.prime_bits(),
        fx.frac_bits,
        wh,
        wname
    );
    progress(&format!("quantize: {detail}"));
    let plan = Plan {
        meta: model.meta.clone(),
        graph: model.graph.clone(),
        fixed: fx,
        layers: lay.layers,
        passes: vec![PassRecord {
            name: "quantize".into(),
            detail,
        }],
        calibration: Calibration {
            samples: stats.samples,
            seed: cfg.seed,
            safety_bits: cfg.safety_bits,
        },
        weights_hash,
    };
    plan.validate()?;
    Ok(Quantized {
        plan,
        weights: lay.weights,
    })
}
