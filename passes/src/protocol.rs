//! The protocol pass: which protocol runs each node. Every node gets, among the protocols that
//! [`Protocol::runs`] allows for its op class, those the user's options permit
//! ([`candidates`]), and of those the cheapest by the cost model ([`nonlinear_cost`]).
//!
//! Only non-linear layers have a choice. Garbled circuits compute them exactly; Beaver
//! squares replace a ReLU by x^2, which changes the function, so they are a candidate only
//! for the ReLUs the user named (`--approx`), and then the only one. A further exact
//! comparison protocol joins the candidates of every non-linear layer here, and the cost
//! decides.
//!
//! The pass runs before the field is chosen (a squared layer is scaled differently), so costs
//! are weighed at Delphi's prime and a typical truncation, as the separable-pool pass does.

use crate::cost::{nonlinear_cost, LayerCost};
use c3d_ir::fixed::DELPHI_PRIME;
use c3d_ir::op::{Op, OpClass};
use c3d_ir::{Graph, NodeId, Protocol, Shape};
use std::collections::{HashMap, HashSet};

/// Truncation assumed when weighing garbled layers before scales are chosen.
const TYPICAL_TRUNCATION: u32 = 12;

/// What the user asked of the protocol choice.
#[derive(Clone, Debug, Default)]
pub struct ProtocolOptions {
    /// ReLU layers (by node name) to square with Beaver pairs instead of comparing.
    pub approx: Vec<String>,
}

/// Why the protocols could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// `--approx` names a layer the model does not have.
    #[error("--approx: no layer named `{0}`")]
    NoLayer(String),
    /// `--approx` names a layer that is not a ReLU.
    #[error("--approx: `{name}` is a {op}, only ReLU layers can be squared")]
    NotRelu {
        /// The layer.
        name: String,
        /// Its op.
        op: &'static str,
    },
    /// No protocol both runs the node and is permitted (a bug in the candidate rules).
    #[error("no protocol can run `{0}`")]
    NoCandidate(String),
    /// The graph is malformed.
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
}

/// The ReLU nodes named in `names`, or an error naming the first that is not one.
pub fn squared_nodes(g: &Graph, names: &[String]) -> Result<HashSet<NodeId>, ProtocolError> {
    let order = g.topo_order()?;
    names
        .iter()
        .map(|name| {
            let id = order
                .iter()
                .copied()
                .find(|&n| g.node(n).name == *name)
                .ok_or_else(|| ProtocolError::NoLayer(name.clone()))?;
            if !matches!(g.node(id).op, Op::Relu) {
                return Err(ProtocolError::NotRelu {
                    name: name.clone(),
                    op: g.node(id).op.name(),
                });
            }
            Ok(id)
        })
        .collect()
}

/// The protocols that may run a node of `class`: those [`Protocol::runs`] allows, less those
/// the user's options rule out. `squared` says the user asked for this ReLU's approximation.
pub fn candidates(class: OpClass, squared: bool) -> Vec<Protocol> {
    Protocol::ALL
        .into_iter()
        .filter(|p| p.runs(class))
        .filter(|p| match p {
            // An approximation only where the user asked for it, and then nothing exact.
            Protocol::BeaverSquare => squared,
            Protocol::GarbledCircuit => !squared,
            _ => true,
        })
        .collect()
}

/// The cost the choice minimises: bytes both ways, offline and online, then AND gates.
fn rank(c: &LayerCost) -> (u64, u64) {
    (c.bytes_offline() + c.bytes_online(), c.and_gates)
}

/// Each node's protocol: the cheapest of its candidates.
pub fn choose_protocols(
    g: &Graph,
    opts: &ProtocolOptions,
) -> Result<HashMap<NodeId, Protocol>, ProtocolError> {
    let squared = squared_nodes(g, &opts.approx)?;
    let mut chosen = HashMap::new();
    for id in g.topo_order()? {
        let node = g.node(id);
        let shapes: Vec<&Shape> = g.inputs_of(id).iter().map(|&i| &g.node(i).shape).collect();
        let cost = |p: Protocol| {
            nonlinear_cost(
                &node.op,
                &shapes,
                &node.shape,
                p,
                DELPHI_PRIME,
                TYPICAL_TRUNCATION,
            )
        };
        let best = candidates(node.op.class(), squared.contains(&id))
            .into_iter()
            .min_by_key(|&p| rank(&cost(p)))
            .ok_or_else(|| ProtocolError::NoCandidate(node.name.clone()))?;
        chosen.insert(id, best);
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::Window3d;

    #[test]
    fn candidates_follow_the_runs_rule_and_the_options() {
        use OpClass::*;
        assert_eq!(candidates(Input, false), vec![Protocol::Input]);
        assert_eq!(candidates(SecretLinear, false), vec![Protocol::HeLinear]);
        assert_eq!(candidates(Local, false), vec![Protocol::Local]);
        assert_eq!(candidates(ClientOutput, false), vec![Protocol::Client]);
        assert_eq!(candidates(NonLinear, false), vec![Protocol::GarbledCircuit]);
        assert_eq!(candidates(NonLinear, true), vec![Protocol::BeaverSquare]);
        for class in [Input, SecretLinear, Local, NonLinear, ClientOutput] {
            for squared in [false, true] {
                for p in candidates(class, squared) {
                    assert!(p.runs(class), "{p:?} for {class:?}");
                }
            }
        }
    }

    fn graph() -> Graph {
        let mut g = Graph::new();
        let x = g.add_input("x", Shape::new(vec![1, 2, 1, 4, 4]));
        let r = g.add("relu", Op::Relu, &[x], None).unwrap();
        let mut w = Window3d::dense([1, 2, 2]);
        w.stride = [1, 2, 2];
        let m = g.add("pool", Op::MaxPool3d(w), &[r], None).unwrap();
        let a = g.add("relu2", Op::Relu, &[m], None).unwrap();
        g.set_outputs(vec![a]);
        g
    }

    /// The choice is what `Protocol::default_for` gave before the pass existed, except for
    /// the ReLUs the user asked to square.
    #[test]
    fn non_linear_layers_are_garbled_unless_asked_to_square() {
        let g = graph();
        let opts = ProtocolOptions {
            approx: vec!["relu2".into()],
        };
        let chosen = choose_protocols(&g, &opts).unwrap();
        for id in g.topo_order().unwrap() {
            let node = g.node(id);
            let want = if node.name == "relu2" {
                Protocol::BeaverSquare
            } else {
                Protocol::default_for(node.op.class())
            };
            assert_eq!(chosen[&id], want, "{}", node.name);
        }
    }

    #[test]
    fn approximations_of_unknown_or_non_relu_layers_are_refused() {
        let g = graph();
        let ask = |name: &str| ProtocolOptions {
            approx: vec![name.into()],
        };
        let e = choose_protocols(&g, &ask("nope")).unwrap_err();
        assert_eq!(e.to_string(), "--approx: no layer named `nope`");
        let e = choose_protocols(&g, &ask("pool")).unwrap_err();
        assert!(matches!(e, ProtocolError::NotRelu { .. }), "{e}");
    }
}
