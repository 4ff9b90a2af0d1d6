//! The packing pass: for every linear layer with secret weights, the HE coefficient packing
//! (input channels per ciphertext, output channels per product, spatial tile with its halo)
//! that the cost model rates cheapest among those the default backend's noise budget carries.
//! The choice is recorded in the plan; the runtime checks it against its backend and uses it.
//!
//! The flooding each layer needs depends on R, the replies of the whole session
//! ([`FloodBudget`]), which the packings themselves fix: the pass chooses under an assumed R,
//! counts the replies of what it chose, and chooses again under the larger count until the
//! assumption covers the plan (the flooding margin only grows, by whole bits, so this ends).

use crate::cost::{live_per_tile, nonzero_kernels};
use c3d_ir::he_model::{ceil_log2, session_replies, FloodBudget, HeModel, HeModelError};
use c3d_ir::packing::{ConvShape, GeometryError, Packing};
use c3d_ir::{PassRecord, Plan, Protocol, Weights};

/// Why a plan's layers could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackingError {
    /// No packing of one layer fits the parameters.
    #[error("layer `{layer}`: {source}{}", if *first_round {
        " (R counted as one reply per HE layer: the plan's is at least that)"
    } else {
        ""
    })]
    NoFit {
        /// The layer.
        layer: String,
        /// Whether R was still the first, lowest assumption (one reply per HE layer).
        first_round: bool,
        /// Why no packing fits.
        source: HeModelError,
    },
    /// A layer is not a convolution the packing can cut.
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// The session's replies cannot be counted.
    #[error(transparent)]
    He(#[from] HeModelError),
}

/// The layer's [`nonzero_kernels`] when any kernel is zero (None for dense and depthwise
/// layers, whose packings cost what their shapes say).
fn sparse_kernels(s: &ConvShape, w: &[i64]) -> Option<Vec<bool>> {
    (!s.depthwise && w.contains(&0)).then(|| nonzero_kernels(s, w))
}

/// Chooses the packing of every HE linear layer that has none yet (`keep` packings already
/// in the plan if they still fit, so a plan pruned to match them stays aligned), so that every
/// layer's flooding fits for the session's replies. With the layers' `weights`, a layer with
/// zero kernels is costed by its live products only, so a model pruned along some packing
/// (SLR training aligns its zeros with one) gets that packing back when it is the cheapest.
pub fn choose_packings(
    plan: &mut Plan,
    weights: Option<&Weights>,
) -> Result<PassRecord, PackingError> {
    let he = HeModel::for_prime(plan.fixed.p);
    let given: Vec<Option<Packing>> = plan.layers.iter().map(|l| l.packing.clone()).collect();
    // Replies assumed: at least one per HE layer.
    let he_layers = plan
        .layers
        .iter()
        .filter(|l| l.protocol == Protocol::HeLinear)
        .count() as u64;
    let mut assumed = FloodBudget::new(he_layers);
    let mut first = true;
    loop {
        let (mut chosen, mut kept) = (0, 0);
        let mut cost = 0.0f64;
        for (l, given) in plan.layers.iter_mut().zip(&given) {
            if l.protocol != Protocol::HeLinear {
                continue;
            }
            let name = &plan.graph.node(l.node).name;
            let s = ConvShape::of_node(&plan.graph, l.node)?;
            let wb = l.quant.weight_mag_bits;
            let pk = match given {
                Some(pk) if pk.check(&s, &he, wb, &assumed).is_ok() => {
                    kept += 1;
                    pk.clone()
                }
                _ => {
                    chosen += 1;
                    let nz = weights
                        .and_then(|w| w.layers.get(&l.node))
                        .filter(|lw| lw.weight.len() == s.weight_len())
                        .and_then(|lw| sparse_kernels(&s, &lw.weight));
                    // Live counts depend on (C_t, M_o) only: computed once per pair.
                    let mut memo: std::collections::HashMap<(usize, usize), usize> =
                        Default::default();
                    let mut cost = |pk: &Packing| match &nz {
                        None => pk.cost(&s),
                        Some(nz) => {
                            let live = *memo
                                .entry((pk.c_t, pk.m_o))
                                .or_insert_with(|| live_per_tile(&s, pk, nz));
                            pk.cost_live(&s, live)
                        }
                    };
                    Packing::choose_by(&s, &he, wb, &assumed, &mut cost).map_err(|source| {
                        PackingError::NoFit {
                            layer: name.clone(),
                            first_round: first,
                            source,
                        }
                    })?
                }
            };
            cost += pk.cost(&s);
            l.packing = Some(pk);
        }
        let actual = FloodBudget::new(session_replies(plan)?);
        if ceil_log2(actual.replies()) <= ceil_log2(assumed.replies()) {
            // Every packing fits a margin at least as wide as the plan's own.
            return Ok(PassRecord {
                name: "packing".into(),
                detail: format!(
                    "{chosen} linear layers packed by the cost model, {kept} kept; {cost:.1} s \
                     estimated on 2 cores; {} flooded replies per session",
                    actual.replies()
                ),
            });
        }
        assumed = actual;
        first = false;
    }
}

/// The packing geometry of a layer as the pruning pass aligns to it.
pub fn shape_and_packing(plan: &Plan, l: &c3d_ir::NodePlan) -> Option<(ConvShape, Packing)> {
    let s = ConvShape::of_node(&plan.graph, l.node).ok()?;
    Some((s, l.packing.clone()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::fixed::DELPHI_PRIME;
    use rand::{Rng, SeedableRng};

    fn conv(c_in: usize, c_out: usize) -> ConvShape {
        ConvShape::same_3x3x3(c_in, c_out, [4, 6, 6])
    }

    /// The live count against a brute-force scan of the weights for each (output group,
    /// input block), on random sparse kernels and several cuts.
    #[test]
    fn live_products_per_tile_match_a_scan_of_the_weights() {
        let s = conv(12, 10);
        let taps = 27;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let w: Vec<i64> = (0..s.weight_len())
            .map(|i| {
                // Whole kernels zero with probability 0.7.
                if (i / taps) % 10 < 7 && rng.random_bool(0.9) {
                    0
                } else {
                    rng.random_range(-5..=5)
                }
            })
            .collect();
        let nz = sparse_kernels(&s, &w).expect("sparse");
        for (c_t, m_o) in [(1, 1), (2, 3), (4, 2), (12, 10), (5, 7)] {
            let pk = Packing {
                tile: [2, 2, 2],
                c_t,
                m_o,
                degree: 8192,
            };
            // A product is live when any weight of its block of output and input channels is.
            let live = |g: usize, b: usize| {
                w.iter().enumerate().any(|(i, &v)| {
                    let (o, c) = (i / taps / s.c_in, i / taps % s.c_in);
                    v != 0 && o / m_o == g && c / c_t == b
                })
            };
            let want: usize = (0..pk.out_groups(&s))
                .map(|g| (0..pk.in_blocks(&s)).filter(|&b| live(g, b)).count().max(1))
                .sum();
            assert_eq!(live_per_tile(&s, &pk, &nz), want, "{c_t} x {m_o}");
        }
        assert!(sparse_kernels(&s, &vec![1; s.weight_len()]).is_none());
    }

    /// With the kernels of all but one input channel zero, counting live products makes
    /// the packing's choice cheaper than the dense estimate, and never dearer.
    #[test]
    fn live_costs_choose_no_dearer_than_dense() {
        let s = conv(16, 16);
        let taps = 27;
        let w: Vec<i64> = (0..s.weight_len())
            .map(|i| i64::from((i / taps) % s.c_in == 0))
            .collect();
        let nz = sparse_kernels(&s, &w).unwrap();
        let he = c3d_ir::HeModel::for_prime(DELPHI_PRIME);
        let b = FloodBudget::new(64);
        let dense = Packing::choose(&s, &he, 8, &b).unwrap();
        let live = Packing::choose_by(&s, &he, 8, &b, &mut |pk| {
            pk.cost_live(&s, live_per_tile(&s, pk, &nz))
        })
        .unwrap();
        let live_cost = |pk: &Packing| pk.cost_live(&s, live_per_tile(&s, pk, &nz));
        assert!(live_cost(&live) <= live_cost(&dense));
        assert!(live_cost(&live) < dense.cost(&s));
    }
}
