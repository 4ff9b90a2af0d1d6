//! Walks a graph in topological order, keeping each intermediate tensor only until its last
//! reader has run (so memory stays near the two largest live activations).

use crate::error::{IrError, Result};
use crate::graph::{Graph, Node, NodeId};
use crate::kernels::Tensor;
use std::collections::HashMap;

/// Runs `step` for every node after the input, feeding it its input tensors; returns the
/// graph output. `step` gets the node id, the node and its inputs in slot order.
pub fn run_graph<T: Clone>(
    graph: &Graph,
    input: Tensor<T>,
    mut step: impl FnMut(NodeId, &Node, &[&Tensor<T>]) -> Result<Tensor<T>>,
) -> Result<Tensor<T>> {
    let (inp, out) = graph.io()?;
    if input.shape != graph.node(inp).shape {
        return Err(IrError::Input(format!(
            "tensor of shape {} given, the model takes {}",
            input.shape,
            graph.node(inp).shape
        )));
    }
    let order = graph.topo_order()?;
    let mut remaining: HashMap<NodeId, usize> = order
        .iter()
        .map(|&n| (n, graph.out_degree(n) + usize::from(n == out)))
        .collect();
    let mut live: HashMap<NodeId, Tensor<T>> = HashMap::new();
    live.insert(inp, input);
    for id in order {
        if id == inp {
            continue;
        }
        let node = graph.node(id);
        let ins = graph.inputs_of(id);
        let result = {
            let tensors: Vec<&Tensor<T>> = ins
                .iter()
                .map(|i| live.get(i).expect("inputs computed before use"))
                .collect();
            step(id, node, &tensors)?
        };
        debug_assert_eq!(result.shape, node.shape, "node {}", node.name);
        live.insert(id, result);
        for i in ins {
            let r = remaining.get_mut(&i).expect("known node");
            *r -= 1;
            if *r == 0 {
                live.remove(&i);
            }
        }
    }
    live.remove(&out)
        .ok_or_else(|| IrError::Graph("output never computed".into()))
}
