//! The packing pass: for every linear layer with secret weights, the HE coefficient packing
//! (input channels per ciphertext, output channels per product, spatial tile with its halo)
//! that the cost model rates cheapest among those the default backend's noise budget carries.
//! The choice is recorded in the plan; the runtime checks it against its backend and uses it.
//!
//! The flooding each layer needs depends on R, the replies of the whole session
//! ([`FloodBudget`]), which the packings themselves fix: the pass chooses under an assumed R,
//! counts the replies of what it chose, and chooses again under the larger count until the
//! assumption covers the plan (the flooding margin only grows, by whole bits, so this ends).

use c3d_ir::he_model::{ceil_log2, session_replies, FloodBudget, HeModel, HeModelError};
use c3d_ir::packing::{ConvShape, GeometryError, Packing};
use c3d_ir::{PassRecord, Plan, Protocol};

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

/// Chooses the packing of every HE linear layer that has none yet (`keep` packings already
/// in the plan if they still fit, so a plan pruned to match them stays aligned), so that every
/// layer's flooding fits for the session's replies.
pub fn choose_packings(plan: &mut Plan) -> Result<PassRecord, PackingError> {
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
                    Packing::choose(&s, &he, wb, &assumed).map_err(|source| {
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
