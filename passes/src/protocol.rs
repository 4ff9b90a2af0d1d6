//! The protocol pass: which protocol runs each node. Every node gets, among the protocols that
//! [`Protocol::runs`] allows for its op class, those the user's options permit
//! ([`candidates`]), and of those the cheapest by the cost model ([`nonlinear_cost`]).
//!
//! Only non-linear layers have a choice. Garbled circuits and OT-based comparisons compute
//! them exactly; `--nonlinear gc|ot|auto` keeps one or both, and under `auto` the one the
//! cost model expects to be faster on the network described (`--bandwidth`, `--rtt`) wins.
//! Beaver squares replace a ReLU by x^2, which changes the function, so they are a candidate
//! only for the ReLUs the user named (`--approx`), and then the only one.
//!
//! Whether OT comparisons can run a layer exactly depends on its scales (the truncation and
//! the headroom, [`c3d_ir::ot_comparable`]), known only after quantization: [`settle`] then
//! moves any layer they cannot run to garbled circuits, which compute the same function.
//!
//! The pass runs before the field is chosen (a squared layer is scaled differently), so costs
//! are weighed at Delphi's prime and a typical truncation, as the separable-pool pass does.

use crate::cost::{nonlinear_cost, LayerCost};
use c3d_ir::fixed::DELPHI_PRIME;
use c3d_ir::op::{Op, OpClass};
use c3d_ir::{ot_comparable, Graph, NetworkModel, NodeId, NonlinearChoice, Plan, Protocol, Shape};
use std::collections::{HashMap, HashSet};

/// Truncation assumed when weighing garbled layers before scales are chosen.
const TYPICAL_TRUNCATION: u32 = 12;

/// What the user asked of the protocol choice.
#[derive(Clone, Debug, Default)]
pub struct ProtocolOptions {
    /// ReLU layers (by node name) to square with Beaver pairs instead of comparing.
    pub approx: Vec<String>,
    /// Which comparison protocols to weigh, and the network to weigh them for.
    pub network: NetworkModel,
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
/// the user's options rule out. `squared` says the user asked for this ReLU's approximation;
/// `choice` which exact comparison protocols are allowed.
pub fn candidates(class: OpClass, squared: bool, choice: NonlinearChoice) -> Vec<Protocol> {
    Protocol::ALL
        .into_iter()
        .filter(|p| p.runs(class))
        .filter(|p| match p {
            // An approximation only where the user asked for it, and then nothing exact.
            Protocol::BeaverSquare => squared,
            Protocol::GarbledCircuit => !squared && choice != NonlinearChoice::Ot,
            Protocol::OtComparison => !squared && choice != NonlinearChoice::Gc,
            _ => true,
        })
        .collect()
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
        let net = &opts.network;
        let best = candidates(node.op.class(), squared.contains(&id), net.nonlinear)
            .into_iter()
            .map(|p| (p, seconds(&cost(p), net)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p)
            .ok_or_else(|| ProtocolError::NoCandidate(node.name.clone()))?;
        chosen.insert(id, best);
    }
    Ok(chosen)
}

fn seconds(c: &LayerCost, net: &NetworkModel) -> f64 {
    c.seconds(net)
}

/// Moves every OT-compared layer that OT comparisons cannot run exactly under the plan's
/// scales to garbled circuits, and records the network in the plan. Returns the names of the
/// layers moved, with why.
pub fn settle(plan: &mut Plan, network: NetworkModel) -> Vec<(String, String)> {
    plan.network = network;
    let mut moved = Vec::new();
    for i in 0..plan.layers.len() {
        let id = plan.layers[i].node;
        if plan.layers[i].protocol != Protocol::OtComparison {
            continue;
        }
        if let Err(why) = ot_comparable(plan, id) {
            moved.push((plan.graph.node(id).name.clone(), why.to_string()));
            plan.layers[i].protocol = Protocol::GarbledCircuit;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::Window3d;

    #[test]
    fn candidates_follow_the_runs_rule_and_the_options() {
        use NonlinearChoice::{Auto, Gc, Ot};
        use OpClass::*;
        assert_eq!(candidates(Input, false, Auto), vec![Protocol::Input]);
        assert_eq!(
            candidates(SecretLinear, false, Auto),
            vec![Protocol::HeLinear]
        );
        assert_eq!(candidates(Local, false, Auto), vec![Protocol::Local]);
        assert_eq!(
            candidates(ClientOutput, false, Auto),
            vec![Protocol::Client]
        );
        assert_eq!(
            candidates(NonLinear, false, Auto),
            vec![Protocol::GarbledCircuit, Protocol::OtComparison]
        );
        assert_eq!(
            candidates(NonLinear, false, Gc),
            vec![Protocol::GarbledCircuit]
        );
        assert_eq!(
            candidates(NonLinear, false, Ot),
            vec![Protocol::OtComparison]
        );
        for choice in [Auto, Gc, Ot] {
            assert_eq!(
                candidates(NonLinear, true, choice),
                vec![Protocol::BeaverSquare]
            );
        }
        for class in [Input, SecretLinear, Local, NonLinear, ClientOutput] {
            for squared in [false, true] {
                for p in candidates(class, squared, Auto) {
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

    /// Under `--nonlinear gc` the choice is what `Protocol::default_for` gave before the pass
    /// existed, except for the ReLUs the user asked to square.
    #[test]
    fn non_linear_layers_are_garbled_under_gc_unless_asked_to_square() {
        let g = graph();
        let opts = ProtocolOptions {
            approx: vec!["relu2".into()],
            network: NetworkModel {
                nonlinear: NonlinearChoice::Gc,
                ..Default::default()
            },
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
            ..Default::default()
        };
        let e = choose_protocols(&g, &ask("nope")).unwrap_err();
        assert_eq!(e.to_string(), "--approx: no layer named `nope`");
        let e = choose_protocols(&g, &ask("pool")).unwrap_err();
        assert!(matches!(e, ProtocolError::NotRelu { .. }), "{e}");
    }

    /// Under `auto` the OT comparisons win large layers on a LAN and on a WAN (a fraction of
    /// the bytes), garbled circuits win where the network costs nothing (less compute, as on
    /// loopback), and tiny layers (a silent-OT round's fixed cost) stay garbled on a LAN.
    #[test]
    fn auto_weighs_bytes_against_round_trips() {
        let big = {
            let mut g = Graph::new();
            let x = g.add_input("x", Shape::new(vec![1, 16, 4, 32, 32]));
            let r = g.add("relu", Op::Relu, &[x], None).unwrap();
            let mut w = Window3d::dense([1, 2, 2]);
            w.stride = [1, 2, 2];
            let m = g.add("pool", Op::MaxPoolRelu3d(w), &[r], None).unwrap();
            g.set_outputs(vec![m]);
            g
        };
        let pick = |g: &Graph, bandwidth_mbit: f64, rtt_ms: f64| {
            let opts = ProtocolOptions {
                approx: vec![],
                network: NetworkModel {
                    nonlinear: NonlinearChoice::Auto,
                    bandwidth_mbit,
                    rtt_ms,
                },
            };
            let chosen = choose_protocols(g, &opts).unwrap();
            g.topo_order()
                .unwrap()
                .into_iter()
                .filter(|&id| g.node(id).op.class() == OpClass::NonLinear)
                .map(|id| chosen[&id])
                .collect::<Vec<_>>()
        };
        let all = |v: Vec<Protocol>, p: Protocol| v.iter().all(|&q| q == p);
        assert!(all(pick(&big, 1000.0, 0.5), Protocol::OtComparison));
        assert!(all(pick(&big, 200.0, 40.0), Protocol::OtComparison));
        assert!(all(pick(&big, 1e9, 0.0), Protocol::GarbledCircuit));
        assert!(all(pick(&graph(), 1000.0, 0.5), Protocol::GarbledCircuit));
    }
}
