//! The packing pass: for every linear layer with secret weights, the HE coefficient packing
//! (input channels per ciphertext, output channels per product, spatial tile with its halo)
//! that the cost model rates cheapest among those the default backend's noise budget carries.
//! The choice is recorded in the plan; the runtime checks it against its backend and uses it.

use c3d_ir::packing::{ConvShape, HeModel, Packing};
use c3d_ir::{PassRecord, Plan, Protocol};

/// Chooses the packing of every HE linear layer that has none yet (`keep` packings already
/// in the plan if they still fit, so a plan pruned to match them stays aligned).
pub fn choose_packings(plan: &mut Plan) -> Result<PassRecord, String> {
    let he = HeModel::for_prime(plan.fixed.p);
    let (mut chosen, mut kept) = (0, 0);
    let mut cost = 0usize;
    for l in plan.layers.iter_mut() {
        if l.protocol != Protocol::HeLinear {
            continue;
        }
        let name = &plan.graph.node(l.node).name;
        let s = ConvShape::of_node(&plan.graph, l.node)?;
        let wb = l.quant.weight_mag_bits;
        let pk = match l.packing.take() {
            Some(pk) if pk.check(&s, &he, wb).is_ok() => {
                kept += 1;
                pk
            }
            _ => {
                chosen += 1;
                Packing::choose(&s, &he, wb).map_err(|e| format!("`{name}`: {e}"))?
            }
        };
        cost += pk.cost(&s);
        l.packing = Some(pk);
    }
    Ok(PassRecord {
        name: "packing".into(),
        detail: format!(
            "{chosen} linear layers packed by the cost model, {kept} kept; {cost} plaintext-product equivalents"
        ),
    })
}

/// The packing geometry of a layer as the pruning pass aligns to it.
pub fn shape_and_packing(plan: &Plan, l: &c3d_ir::NodePlan) -> Option<(ConvShape, Packing)> {
    let s = ConvShape::of_node(&plan.graph, l.node).ok()?;
    Some((s, l.packing.clone()?))
}
