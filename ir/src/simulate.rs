//! The plaintext fixed-point simulator: executes a plan on field values exactly as the secure
//! protocol does (every linear op mod p, truncation and comparison where the garbled circuits
//! do them). The secure runtime's output must equal this one bit for bit.
//!
//! Semantics, per op (values are centred representatives of F_p):
//! - Input: round(x * 2^f) mod p (ties away from zero).
//! - Conv3d / Linear: sum(w * x) + b mod p; w at `weight_frac_bits`, b at the output scale.
//! - AvgPool3d / Mean: the window sum, with the count moved into the public divisor
//!   (`weight_frac_bits` 0); or, for windows of varying counts, sum * round(2^weight_frac_bits / count).
//! - Add / Concat: each input times mult * 2^shift mod p, then added / joined. Pad, Reshape:
//!   moved.
//! - Relu: floor(x / 2^t) then max(., 0); x^2 mod p instead where the plan squares it by
//!   Beaver (the scale doubles, no truncation). MaxPool3d: max over valid taps of floor(x / 2^t).
//! - Softmax / Argmax: on the decoded floats (int / 2^scale / divisor), by the client.

use crate::error::{IrError, Result};
use crate::eval_float::client_op;
use crate::exec::run_graph;
use crate::fixed::FixedPoint;
use crate::graph::NodeId;
use crate::kernels::{self, Tensor};
use crate::op::{Op, OpClass};
use crate::plan::{NodePlan, Plan, Weights};
use std::collections::HashMap;

/// What a simulation returns.
#[derive(Clone, Debug)]
pub struct SimOutput {
    /// Field values (centred) of the last node before the client-side ops: what the secure
    /// run reveals to the client.
    pub revealed: Tensor<i64>,
    /// Fractional bits of `revealed`.
    pub scale: u32,
    /// Public divisor of `revealed` (its real value is int / (2^scale * divisor)).
    pub divisor: u64,
    /// The model output as floats (client-side ops applied).
    pub output: Tensor<f32>,
}

/// Multiply-accumulate in the cheapest type that is exact for these magnitudes.
fn exact_mac(
    fx: &FixedPoint,
    x: &[i64],
    w: &[i64],
    terms: usize,
    f64_path: impl Fn(&[f64], &[f64]) -> Vec<f64>,
    i64_path: impl Fn(&[i64], &[i64]) -> Vec<i64>,
    i128_path: impl Fn(&[i128], &[i128]) -> Vec<i128>,
) -> Vec<i128> {
    let xm = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as u128;
    let wm = w.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as u128;
    let bound = xm.saturating_mul(wm).saturating_mul(terms as u128);
    if bound < (1u128 << 53) {
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let wf: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        f64_path(&xf, &wf).into_iter().map(|v| v as i128).collect()
    } else if bound < (1u128 << 62) {
        i64_path(x, w).into_iter().map(|v| v as i128).collect()
    } else {
        // Centred values reach 2^61, so whole products reach 2^122 and a sum of many would
        // overflow i128. Split the weights into a low 31-bit part and the rest: every partial
        // sum then stays below 2^126 for up to 2^32 terms. Recombined mod p.
        let xi: Vec<i128> = x.iter().map(|&v| v as i128).collect();
        let lo: Vec<i128> = w.iter().map(|&v| (v as i128).rem_euclid(1 << 31)).collect();
        let hi: Vec<i128> = w
            .iter()
            .zip(&lo)
            .map(|(&v, &l)| (v as i128 - l) >> 31)
            .collect();
        let (acc_lo, acc_hi) = (i128_path(&xi, &lo), i128_path(&xi, &hi));
        acc_hi
            .into_iter()
            .zip(acc_lo)
            .map(|(h, l)| (fx.center_i128(h) as i128) * (1 << 31) + fx.center_i128(l) as i128)
            .collect()
    }
}

fn floor_shift(v: i64, t: u32) -> i64 {
    v >> t
}

/// Runs the plan on one input tensor (floats in the model's input shape).
pub fn simulate(plan: &Plan, weights: &Weights, input: &Tensor<f32>) -> Result<SimOutput> {
    simulate_timed(plan, weights, input, |_, _| {})
}

/// [`simulate`], reporting every node's wall time as it finishes.
pub fn simulate_timed(
    plan: &Plan,
    weights: &Weights,
    input: &Tensor<f32>,
    mut on_node: impl FnMut(NodeId, std::time::Duration),
) -> Result<SimOutput> {
    let fx = plan.fixed;
    let g = &plan.graph;
    let (inp, _) = g.io()?;
    if input.shape != g.node(inp).shape {
        return Err(IrError::Input(format!(
            "tensor of shape {} given, the model takes {}",
            input.shape,
            g.node(inp).shape
        )));
    }
    if let Some(bad) = input.data.iter().find(|v| !v.is_finite()) {
        return Err(IrError::Input(format!(
            "input holds a non-finite value ({bad})"
        )));
    }
    let layers: HashMap<NodeId, &NodePlan> = plan.layers.iter().map(|l| (l.node, l)).collect();
    let in_scale = layers[&inp].quant.out_scale;
    let encoded = input.map(|&v| fx.encode(v as f64, in_scale));

    // The client-side tail runs on floats; remember where the secure part ends.
    let mut revealed: Option<(Tensor<i64>, u32, u64)> = None;
    let mut client: Option<Tensor<f32>> = None;
    let last = run_graph(g, encoded, |id, node, ins| {
        let t0 = std::time::Instant::now();
        let l = layers[&id];
        let q = &l.quant;
        if node.op.class() == OpClass::ClientOutput {
            let src = g.inputs_of(id)[0];
            let x = if g.node(src).op.class() == OpClass::ClientOutput {
                client.clone().expect("client input computed first")
            } else {
                let d = layers[&src].quant.divisor;
                revealed = Some((ins[0].clone(), q.in_scales[0], d));
                ins[0].map(|&v| (fx.decode(v, q.in_scales[0]) / d as f64) as f32)
            };
            let y = client_op(&node.op, &x, &node.shape).expect("client op");
            client = Some(y);
            on_node(id, t0.elapsed());
            // The integer tensor flowing on is a placeholder; client ops only read `client`.
            return Ok(Tensor::new(node.shape.clone(), vec![0; node.shape.numel()]));
        }
        let t = Tensor::new(
            node.shape.clone(),
            step_fixed(&fx, id, node, l, weights, ins)?,
        );
        on_node(id, t0.elapsed());
        Ok(t)
    })?;
    let (out_id, out_node) = {
        let o = g.io()?.1;
        (o, g.node(o))
    };
    let (revealed, scale, divisor, output) = if out_node.op.class() == OpClass::ClientOutput {
        let (r, s, d) = revealed.expect("client ops saw the revealed tensor");
        (r, s, d, client.expect("client output"))
    } else {
        let q = &layers[&out_id].quant;
        let (s, d) = (q.out_scale, q.divisor);
        let out = last.map(|&v| (fx.decode(v, s) / d as f64) as f32);
        (last, s, d, out)
    };
    Ok(SimOutput {
        revealed,
        scale,
        divisor,
        output,
    })
}

/// One node's fixed-point step on centred field values (not for the input or client ops).
/// Linear and local ops are linear mod p, so the secure runtime applies this very step to
/// each party's additive share.
pub fn step_fixed(
    fx: &FixedPoint,
    id: NodeId,
    node: &crate::graph::Node,
    l: &NodePlan,
    weights: &Weights,
    ins: &[&Tensor<i64>],
) -> Result<Vec<i64>> {
    let q = &l.quant;
    let out = &node.shape;
    let x = ins[0];
    let center_all =
        |v: Vec<i128>| -> Vec<i64> { v.into_iter().map(|a| fx.center_i128(a)).collect() };
    let lw = || {
        weights
            .layers
            .get(&id)
            .ok_or_else(|| IrError::Weights(format!("no weights for `{}`", node.name)))
    };
    Ok(match &node.op {
        Op::Input | Op::Softmax { .. } | Op::Argmax { .. } => {
            return Err(IrError::Input(format!(
                "`{}` is not a step of the secure part",
                node.name
            )))
        }
        Op::Conv3d(p) => {
            let lw = lw()?;
            let terms = p.in_channels * p.window.kernel.iter().product::<usize>();
            let acc = exact_mac(
                fx,
                &x.data,
                &lw.weight,
                terms,
                |xf, wf| kernels::conv3d(xf, &x.shape, wf, p, out),
                |xi, wi| kernels::conv3d(xi, &x.shape, wi, p, out),
                |xi, wi| kernels::conv3d(xi, &x.shape, wi, p, out),
            );
            let plane = acc.len() / (out.dims()[0] * p.out_channels);
            center_all(
                acc.into_iter()
                    .enumerate()
                    .map(|(i, a)| a + lw.bias[(i / plane) % p.out_channels] as i128)
                    .collect(),
            )
        }
        Op::Linear {
            in_features,
            out_features,
        } => {
            let lw = lw()?;
            let n = x.shape.dims()[0];
            let acc = exact_mac(
                fx,
                &x.data,
                &lw.weight,
                *in_features,
                |xf, wf| kernels::linear(xf, n, wf, *in_features, *out_features),
                |xi, wi| kernels::linear(xi, n, wi, *in_features, *out_features),
                |xi, wi| kernels::linear(xi, n, wi, *in_features, *out_features),
            );
            center_all(
                acc.into_iter()
                    .enumerate()
                    .map(|(i, a)| a + lw.bias[i % out_features] as i128)
                    .collect(),
            )
        }
        Op::AvgPool3d {
            window,
            count_include_pad,
        } => {
            let wb = q.weight_frac_bits;
            kernels::pool3d(&x.data, &x.shape, window, out, |it, padded| {
                let (s, n) = it.fold((0i128, 0usize), |(s, n), v| (s + v as i128, n + 1));
                if wb == 0 {
                    // Uniform windows: a plain sum; the divisor is public and applied by the client.
                    return fx.center_i128(s);
                }
                let count = if *count_include_pad { padded } else { n };
                fx.center_i128(s * reciprocal(count, wb) as i128)
            })
        }
        Op::Mean { axes, .. } => {
            let xi: Vec<i128> = x.data.iter().map(|&v| v as i128).collect();
            let (s, n) = kernels::sum_axes(&xi, &x.shape, axes);
            let m = if q.weight_frac_bits == 0 {
                1
            } else {
                reciprocal(n, q.weight_frac_bits) as i128
            };
            center_all(s.into_iter().map(|v| v * m).collect())
        }
        Op::Relu if l.protocol == crate::plan::Protocol::BeaverSquare => x
            .data
            .iter()
            .map(|&v| fx.center_i128(v as i128 * v as i128))
            .collect(),
        Op::Relu => {
            let t = q.truncate_bits;
            x.data.iter().map(|&v| floor_shift(v, t).max(0)).collect()
        }
        Op::MaxPool3d(win) => {
            let t = q.truncate_bits;
            kernels::pool3d(&x.data, &x.shape, win, out, |it, _| {
                it.map(|v| floor_shift(v, t))
                    .max()
                    .expect("a window has at least one tap")
            })
        }
        Op::MaxPoolRelu3d(win) => {
            let t = q.truncate_bits;
            kernels::pool3d(&x.data, &x.shape, win, out, |it, _| {
                it.map(|v| floor_shift(v, t)).fold(0, i64::max)
            })
        }
        Op::Reshape => x.data.clone(),
        Op::Pad { pads } => kernels::pad(&x.data, &x.shape, pads, out, 0),
        Op::Add | Op::Concat { .. } => {
            let shifted: Vec<Vec<i64>> = ins
                .iter()
                .zip(q.in_shifts.iter().zip(&q.in_mults))
                .map(|(t, (&s, &m))| shift_all(fx, &t.data, s, m))
                .collect();
            if let Op::Concat { axis } = node.op {
                let parts: Vec<(&[i64], &crate::Shape)> = shifted
                    .iter()
                    .zip(ins)
                    .map(|(d, t)| (&d[..], &t.shape))
                    .collect();
                kernels::concat(&parts, axis, out)
            } else {
                shifted[0]
                    .iter()
                    .zip(&shifted[1])
                    .map(|(&a, &b)| fx.center_i128(a as i128 + b as i128))
                    .collect()
            }
        }
    })
}

/// Multiplies every value by the public m * 2^s mod p (scale and divisor alignment).
fn shift_all(fx: &FixedPoint, v: &[i64], s: u32, m: u64) -> Vec<i64> {
    if s == 0 && m == 1 {
        return v.to_vec();
    }
    let k = (m as i128) << s;
    v.iter().map(|&a| fx.center_i128(a as i128 * k)).collect()
}

/// The public coefficient that replaces a division by `count`: round(2^bits / count).
pub fn reciprocal(count: usize, bits: u32) -> i64 {
    let c = count.max(1) as i64;
    ((1i64 << bits) + c / 2) / c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::DELPHI_PRIME;
    use crate::plan::*;
    use crate::{Graph, Shape};

    /// input (1,3,1,2,2) -> Reshape (1,12) -> Linear 12->3 -> Relu, hand-planned.
    fn plan(f: u32, wbits: u32) -> Plan {
        let mut g = Graph::new();
        let i = g.add_input("x", Shape::new(vec![1, 3, 1, 2, 2]));
        let r = g
            .add("flat", Op::Reshape, &[i], Some(Shape::new(vec![1, 12])))
            .unwrap();
        let l = g
            .add(
                "fc",
                Op::Linear {
                    in_features: 12,
                    out_features: 3,
                },
                &[r],
                None,
            )
            .unwrap();
        let a = g.add("relu", Op::Relu, &[l], None).unwrap();
        g.set_outputs(vec![a]);
        let q = |ins: Vec<u32>, out, w, t| LayerQuant {
            in_shifts: vec![0; ins.len()],
            in_mults: vec![1; ins.len()],
            divisor: 1,
            in_scales: ins,
            out_scale: out,
            weight_frac_bits: w,
            weight_mag_bits: if w > 0 { 62 } else { 0 },
            truncate_bits: t,
            bound_bits: 0,
            headroom_bits: 0,
        };
        let np = |node, quant, protocol| NodePlan {
            node,
            quant,
            protocol,
            packing: None,
            sparsity: None,
        };
        Plan {
            meta: ModelMeta {
                name: "t".into(),
                producer: String::new(),
                preprocess: Preprocess::default_for(&Shape::new(vec![1, 3, 1, 2, 2])),
                class_names: vec![],
                approx: vec![],
            },
            graph: g,
            fixed: FixedPoint {
                p: DELPHI_PRIME,
                frac_bits: f,
            },
            layers: vec![
                np(i, q(vec![], f, 0, 0), Protocol::Input),
                np(r, q(vec![f], f, 0, 0), Protocol::Local),
                np(l, q(vec![f], f + wbits, wbits, 0), Protocol::HeLinear),
                np(a, q(vec![f + wbits], f, 0, wbits), Protocol::GarbledCircuit),
            ],
            passes: vec![],
            calibration: Calibration {
                samples: 0,
                seed: 0,
                safety_bits: 0,
            },
            weights_hash: [0; 32],
            network: Default::default(),
        }
    }

    #[test]
    fn every_accumulation_path_equals_brute_force_mod_p() {
        let p = DELPHI_PRIME as i128;
        // (input magnitude, weight magnitude): f64 path, i64 path, i128 path with wrap-around.
        for (xmag, wmag) in [
            (3.0f32, 1000i64),
            (30_000.0, 1 << 20),
            (1.0e6, 1 << 39),
            (3.0e7, (DELPHI_PRIME / 2 - 100) as i64),
        ] {
            let pl = plan(16, 8);
            pl.validate().unwrap();
            let weight: Vec<i64> = (0..36)
                .map(|k| if k % 2 == 0 { wmag - k } else { -wmag + 3 * k })
                .collect();
            let bias = vec![12345, -777, (p / 3) as i64];
            let mut w = Weights::default();
            let fc = pl.layers[2].node;
            w.layers.insert(
                fc,
                LayerWeights {
                    weight: weight.clone(),
                    bias: bias.clone(),
                },
            );
            let x: Vec<f32> = (0..12).map(|k| xmag * ((k as f32 * 0.37).sin())).collect();
            let out = simulate(
                &pl,
                &w,
                &Tensor::new(Shape::new(vec![1, 3, 1, 2, 2]), x.clone()),
            )
            .unwrap();
            let fx = pl.fixed;
            for o in 0..3 {
                let mut acc: i128 = bias[o] as i128;
                for k in 0..12 {
                    acc += weight[o * 12 + k] as i128 * fx.encode(x[k] as f64, 16) as i128;
                }
                let c = acc.rem_euclid(p);
                let c = if c > (p - 1) / 2 { c - p } else { c } as i64;
                let want = (c >> 8).max(0);
                assert_eq!(out.revealed.data[o], want, "x {xmag}, w {wmag}, output {o}");
            }
        }
    }
}
