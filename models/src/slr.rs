//! SLR pruning (surrogate Lagrangian relaxation, Gurevin et al. 2020, as Crypto3D section 4.2
//! uses it) of the trained [`Net`]: minimise f(W) subject to card(W_i) <= (1 - S) n_i per
//! layer, through a copy Z_i of each weight restricted to the constraint set, multipliers
//! Lambda_i and the augmented Lagrangian
//!
//! L(W, Z, Lambda) = f(W) + sum_i tr(Lambda_i^T (W_i - Z_i)) + rho/2 ||W_i - Z_i||^2.
//!
//! Each round: W-step (SGD on L with Z and Lambda fixed), multiplier update if the surrogate
//! optimality condition L(W^k, Z^{k-1}) < L(W^{k-1}, Z^{k-1}) holds, Z-step (the projection
//! of W + Lambda / rho onto the constraint set: the compiler's own block-aligned projection
//! [`c3d_passes::prune::project`]), multiplier update if L(W^k, Z^k) < L(W^k, Z^{k-1}); the
//! step size follows the SLR rule s_k = alpha_k s_{k-1} ||W^{k-1} - Z^{k-1}|| / ||W^k - Z^k||
//! with alpha_k = 1 - 1 / (M k^(1 - 1/k^r)), and rho grows. At the end W is projected (hard
//! pruned) with no retraining: SLR's point is that W is already close to the constraint set.

use crate::train::{train, Net, TrainConfig, LAYERS};
use c3d_ir::packing::{ConvShape, Packing};
use c3d_ir::Plan;
use c3d_passes::prune::project;
use rayon::prelude::*;

/// Why SLR cannot run on a model and plan.
#[derive(Debug, thiserror::Error)]
pub enum SlrError {
    /// The plan has no layer of this name: it was not compiled from a c3d-motion model.
    #[error("the plan has no layer `{0}`: not a c3d-motion plan")]
    MissingLayer(&'static str),
    /// The layer's geometry cannot be read from the plan.
    #[error(transparent)]
    Geometry(#[from] c3d_ir::packing::GeometryError),
    /// The layer was compiled without an HE packing.
    #[error("layer `{0}` has no HE packing in the plan")]
    NoPacking(&'static str),
    /// Not one packing per weighted layer.
    #[error("{got} packings for {want} layers")]
    PackingCount {
        /// Packings given.
        got: usize,
        /// Weighted layers of the model.
        want: usize,
    },
    /// The plan's layer and the model's disagree on the number of weights.
    #[error("layer `{layer}`: the plan's shape has {plan} weights, the model {model}")]
    WeightCount {
        /// The layer.
        layer: &'static str,
        /// Weights in the plan's geometry.
        plan: usize,
        /// Weights in the model.
        model: usize,
    },
}

/// SLR settings.
#[derive(Clone, Debug)]
pub struct SlrConfig {
    /// Fraction of each layer's weights that must be zero.
    pub sparsity: f64,
    /// Rounds of W-step, Z-step and multiplier updates.
    pub rounds: usize,
    /// SGD settings of each W-step (its `epochs` are per round).
    pub sgd: TrainConfig,
    /// Initial penalty rho.
    pub rho: f32,
    /// rho is multiplied by this after each round.
    pub rho_growth: f32,
    /// Initial multiplier step size s_0.
    pub s0: f32,
    /// SLR's M and r in alpha_k.
    pub m: f32,
    /// See `m`.
    pub r: f32,
    /// Training clips the surrogate conditions evaluate f on.
    pub check_clips: usize,
}

impl SlrConfig {
    /// The defaults the bundled models were pruned with.
    pub fn for_sparsity(sparsity: f64) -> Self {
        SlrConfig {
            sparsity,
            rounds: 20,
            sgd: TrainConfig {
                epochs: 1,
                lr: 0.005,
                ..TrainConfig::default()
            },
            rho: 0.01,
            rho_growth: 1.3,
            s0: 0.01,
            m: 300.0,
            r: 0.1,
            check_clips: 512,
        }
    }
}

/// One round's record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RoundLog {
    /// Round number from 1.
    pub round: usize,
    /// Mean data loss during the W-step.
    pub loss: f64,
    /// ||W - Z|| after the Z-step.
    pub residual: f64,
    /// rho used in this round.
    pub rho: f32,
    /// Step size s_k.
    pub step: f32,
    /// Whether the W-step met the surrogate condition (multipliers updated).
    pub w_condition: bool,
    /// Whether the Z-step met it.
    pub z_condition: bool,
}

/// The packing of each weighted layer of [`LAYERS`] in a compiled plan of the model, so the
/// Z-step zeroes the same blocks the compiler would.
pub fn alignment_from_plan(plan: &Plan) -> Result<Vec<(ConvShape, Packing)>, SlrError> {
    LAYERS
        .iter()
        .map(|name| {
            let l = plan
                .layers
                .iter()
                .find(|l| {
                    let n = &plan.graph.node(l.node).name;
                    n.starts_with(&format!("/{name}/"))
                })
                .ok_or(SlrError::MissingLayer(name))?;
            let s = ConvShape::of_node(&plan.graph, l.node)?;
            let pk = l.packing.clone().ok_or(SlrError::NoPacking(name))?;
            Ok((s, pk))
        })
        .collect()
}

/// The projection of every weight tensor onto the constraint set.
fn project_all(w: &[&[f32]], align: &[(ConvShape, Packing)], s: f64) -> Vec<Vec<f32>> {
    w.par_iter()
        .zip(align)
        .map(|(w, (shape, pk))| {
            let mut z = w.to_vec();
            project(&mut z, shape, pk, s);
            z
        })
        .collect()
}

fn weights(net: &Net) -> Vec<&[f32]> {
    (0..LAYERS.len()).map(|l| &net.params[2 * l][..]).collect()
}

/// tr(Lambda^T (W - Z)) + rho/2 ||W - Z||^2 summed over layers, and ||W - Z||.
fn penalty(net: &Net, z: &[Vec<f32>], lam: &[Vec<f32>], rho: f32) -> (f64, f64) {
    let (mut p, mut sq) = (0f64, 0f64);
    for l in 0..LAYERS.len() {
        for ((&w, &zv), &lv) in net.params[2 * l].iter().zip(&z[l]).zip(&lam[l]) {
            let d = (w - zv) as f64;
            p += lv as f64 * d + 0.5 * rho as f64 * d * d;
            sq += d * d;
        }
    }
    (p, sq.sqrt())
}

/// Runs SLR on `net` and hard-prunes it. Every layer ends with exactly round(S n) zeros.
pub fn slr(
    net: &mut Net,
    data: &[(Vec<f32>, usize)],
    align: &[(ConvShape, Packing)],
    cfg: &SlrConfig,
    progress: &mut dyn FnMut(&RoundLog),
) -> Result<Vec<RoundLog>, SlrError> {
    if align.len() != LAYERS.len() {
        return Err(SlrError::PackingCount {
            got: align.len(),
            want: LAYERS.len(),
        });
    }
    for (l, (s, _)) in align.iter().enumerate() {
        if s.weight_len() != net.params[2 * l].len() {
            return Err(SlrError::WeightCount {
                layer: LAYERS[l],
                plan: s.weight_len(),
                model: net.params[2 * l].len(),
            });
        }
    }
    let check = &data[..cfg.check_clips.min(data.len())];
    let f = |n: &Net| n.evaluate(check).0;
    let mut z = project_all(&weights(net), align, cfg.sparsity);
    let mut lam: Vec<Vec<f32>> = z.iter().map(|v| vec![0.0; v.len()]).collect();
    let (mut rho, mut step) = (cfg.rho, cfg.s0);
    let mut prev_residual = penalty(net, &z, &lam, rho).1;
    let mut logs = Vec::new();
    for k in 1..=cfg.rounds {
        // W-step.
        let before = f(net) + penalty(net, &z, &lam, rho).0;
        let sgd = TrainConfig {
            seed: cfg.sgd.seed + k as u64,
            ..cfg.sgd.clone()
        };
        let epochs = {
            let (z, lam) = (&z, &lam);
            let extra = move |l: usize, w: &[f32], g: &mut [f32]| {
                for ((g, &w), (&zv, &lv)) in g.iter_mut().zip(w).zip(z[l].iter().zip(&lam[l])) {
                    *g += lv + rho * (w - zv);
                }
            };
            train(net, data, &sgd, &extra, &mut |_| {})
        };
        let after = f(net) + penalty(net, &z, &lam, rho).0;
        let (_, residual_w) = penalty(net, &z, &lam, rho);
        let alpha = 1.0 - 1.0 / (cfg.m * (k as f32).powf(1.0 - 1.0 / (k as f32).powf(cfg.r)));
        // Capped at rho (the ADMM step): the SLR rule alone grows the step whenever the
        // residual falls, and large multipliers throw the Z-step far from W.
        step = (alpha * step * (prev_residual / residual_w.max(1e-12)) as f32).min(rho);
        let w_ok = after < before;
        if w_ok {
            update(&mut lam, net, &z, step);
        }
        // Z-step: the minimiser of L over the constraint set for fixed W and Lambda.
        let shifted: Vec<Vec<f32>> = (0..LAYERS.len())
            .map(|l| {
                net.params[2 * l]
                    .iter()
                    .zip(&lam[l])
                    .map(|(&w, &lv)| w + lv / rho)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = shifted.iter().map(|v| &v[..]).collect();
        let z_new = project_all(&refs, align, cfg.sparsity);
        let old = penalty(net, &z, &lam, rho).0;
        let (new, residual) = penalty(net, &z_new, &lam, rho);
        z = z_new;
        let z_ok = new < old;
        if z_ok {
            update(&mut lam, net, &z, step);
        }
        let log = RoundLog {
            round: k,
            loss: epochs.last().map(|e| e.loss).unwrap_or(0.0),
            residual,
            rho,
            step,
            w_condition: w_ok,
            z_condition: z_ok,
        };
        progress(&log);
        logs.push(log);
        prev_residual = residual;
        rho *= cfg.rho_growth;
    }
    // Hard prune, no retraining.
    let pruned = project_all(&weights(net), align, cfg.sparsity);
    for (l, w) in pruned.into_iter().enumerate() {
        net.params[2 * l] = w;
    }
    Ok(logs)
}

fn update(lam: &mut [Vec<f32>], net: &Net, z: &[Vec<f32>], step: f32) {
    for (l, lv) in lam.iter_mut().enumerate() {
        for ((m, &w), &zv) in lv.iter_mut().zip(&net.params[2 * l]).zip(&z[l]) {
            *m += step * (w - zv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::param_dims;

    /// Packings that make every layer one block, so projection is by single weights.
    fn single_block() -> Vec<(ConvShape, Packing)> {
        let dims = param_dims();
        (0..LAYERS.len())
            .map(|l| {
                let d = &dims[2 * l];
                let mut s = ConvShape::fully_connected(d[1], d[0]);
                if d.len() == 5 {
                    s.kernel = [3, 3, 3];
                    s.input = [3, 3, 3];
                    s.pad_begin = [1; 3];
                    s.pad_end = [1; 3];
                }
                let pk = Packing {
                    tile: [1, 1, 1],
                    c_t: d[1],
                    m_o: d[0],
                    degree: 8192,
                };
                (s, pk)
            })
            .collect()
    }

    #[test]
    fn slr_meets_the_sparsity_exactly_per_layer() {
        let data = crate::train::labelled(crate::motion::TRAIN_SEED, 48);
        let mut net = Net::init(2, false);
        let mut cfg = SlrConfig::for_sparsity(0.9);
        cfg.rounds = 2;
        cfg.check_clips = 16;
        let logs = slr(&mut net, &data, &single_block(), &cfg, &mut |_| {}).unwrap();
        assert_eq!(logs.len(), 2);
        for (l, name) in LAYERS.iter().enumerate() {
            let w = &net.params[2 * l];
            let zeros = w.iter().filter(|&&v| v == 0.0).count();
            assert_eq!(zeros, (0.9 * w.len() as f64).round() as usize, "{name}");
        }
    }
}
