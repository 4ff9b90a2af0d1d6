//! Emission of the chosen scales: quantizes the weights at their layers' fractional bits,
//! records each layer's public weight bound, commits to the weights under a fresh salt and
//! writes the plan (with its one-line pass record).

use super::layout::{round_i64, Layout};
use super::{QuantConfig, QuantError, Quantized};
use crate::calibrate::ActStats;
use c3d_ir::fixed::FixedPoint;
use c3d_ir::format::Hash;
use c3d_ir::op::OpClass;
use c3d_ir::{Calibration, LayerWeights, Model, PassRecord, Plan, Weights};
use rand::TryRngCore;

/// Bits of the largest magnitude: every |w| < 2^bits (the plan's public weight bound).
pub(crate) fn magnitude_bits(weight: &[i64]) -> u32 {
    let max = weight.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    64 - max.leading_zeros()
}

/// Writes the plan and the quantized weights for the chosen (p, f) and layout.
pub(crate) fn emit(
    model: &Model,
    cfg: &QuantConfig,
    fx: FixedPoint,
    mut lay: Layout,
    stats: &ActStats,
    progress: &mut impl FnMut(&str),
) -> Result<Quantized, QuantError> {
    let mut weights = Weights::default();
    for l in &mut lay.layers {
        if let Some(bias) = lay.biases.get(&l.node) {
            let (w, _) = &model.weights[&l.node];
            let k = 2f64.powi(l.quant.weight_frac_bits as i32);
            let weight: Vec<i64> = w.iter().map(|&v| round_i64(v as f64 * k)).collect();
            l.quant.weight_mag_bits = magnitude_bits(&weight);
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
        .map_err(QuantError::Salt)?;
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
        network: Default::default(),
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
    // With the scales known: OT comparisons where they compute the layer exactly.
    let moved = crate::protocol::settle(&mut plan, cfg.network);
    let record = super::protocol_record(&plan, &moved);
    progress(&format!("{}: {}", record.name, record.detail));
    plan.passes.push(record);
    plan.validate()?;
    Ok(Quantized { plan, weights })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::quantize;
    use c3d_ir::{Conv3dParams, Graph, LayerQuant, ModelMeta, Op, Preprocess, Shape, Window3d};

    #[test]
    fn the_weight_bound_is_the_bits_of_the_largest_magnitude() {
        assert_eq!(magnitude_bits(&[]), 0);
        assert_eq!(magnitude_bits(&[0, 0]), 0);
        assert_eq!(magnitude_bits(&[3, -4]), 3);
        assert_eq!(magnitude_bits(&[-255, 1]), 8);
        assert_eq!(magnitude_bits(&[256]), 9);
    }

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
