//! The model graph: a petgraph DAG of named, shaped nodes. Edges carry the input slot.

use crate::error::{IrError, Result};
use crate::op::{Op, OpClass, ShapeError};
use crate::shape::Shape;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

/// Largest tensor a plan may describe (elements); far above full-size I3D's largest activation.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// Index of a node in a [`Graph`].
pub type NodeId = NodeIndex<u32>;

/// A node: an op applied to the outputs of its input nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name (from the ONNX node where there is one).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// The output shape.
    pub shape: Shape,
}

/// A directed acyclic graph of ops; branches and joins (Concat, Add) allowed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Graph {
    g: StableDiGraph<Node, u32, u32>,
    inputs: Vec<NodeId>,
    outputs: Vec<NodeId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a model input of the given shape.
    pub fn add_input(&mut self, name: impl Into<String>, shape: Shape) -> NodeId {
        let id = self.g.add_node(Node {
            name: name.into(),
            op: Op::Input,
            shape,
        });
        self.inputs.push(id);
        id
    }

    /// Adds a node, inferring its shape (`target` is needed by `Reshape` only).
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[NodeId],
        target: Option<Shape>,
    ) -> Result<NodeId> {
        let name = name.into();
        let shapes: Vec<&Shape> = inputs
            .iter()
            .map(|&i| {
                self.g
                    .node_weight(i)
                    .map(|n| &n.shape)
                    .ok_or_else(|| IrError::Graph(format!("node `{name}` uses a missing input")))
            })
            .collect::<Result<_>>()?;
        let shape = op
            .infer_shape(&shapes, target.as_ref())
            .map_err(|source| IrError::Shape {
                node: name.clone(),
                op: op.name().into(),
                source,
            })?;
        let id = self.g.add_node(Node { name, op, shape });
        for (slot, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i, id, slot as u32);
        }
        Ok(id)
    }

    /// Declares the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<NodeId>) {
        self.outputs = outputs;
    }

    /// The model inputs.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// The model outputs.
    pub fn outputs(&self) -> &[NodeId] {
        &self.outputs
    }

    /// A node by id. Panics on an id not from this graph (callers hold ids the graph gave them).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// A node by id, mutable.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.g.node_count()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.g.node_count() == 0
    }

    /// The underlying petgraph, for analyses.
    pub fn petgraph(&self) -> &StableDiGraph<Node, u32, u32> {
        &self.g
    }

    /// The inputs of a node, in slot order.
    pub fn inputs_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut e: Vec<(u32, NodeId)> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        e.sort_unstable();
        e.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that read a node's output.
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut c: Vec<NodeId> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Number of input slots, over all nodes, that read this node's output.
    pub fn out_degree(&self, id: NodeId) -> usize {
        self.g.edges_directed(id, Direction::Outgoing).count()
    }

    /// Nodes in an order where every node comes after its inputs.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        petgraph::algo::toposort(&self.g, None).map_err(|c| {
            IrError::Graph(format!("cycle through node `{}`", self.g[c.node_id()].name))
        })
    }

    /// Checks everything a plan read from outside must satisfy: acyclic, one input, one output,
    /// arities and slots right, every shape re-inferred equal to the stored one, unique names,
    /// and client-side ops only at the end.
    pub fn validate(&self) -> Result<()> {
        let order = self.topo_order()?;
        if self.inputs.len() != 1 || self.outputs.len() != 1 {
            return Err(IrError::Graph(format!(
                "expected one input and one output, found {} and {}",
                self.inputs.len(),
                self.outputs.len()
            )));
        }
        for &io in self.inputs.iter().chain(&self.outputs) {
            if self.g.node_weight(io).is_none() {
                return Err(IrError::Graph(
                    "input or output refers to a missing node".into(),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for &id in &order {
            let node = &self.g[id];
            if node.shape.rank() > 8 || node.shape.checked_numel(MAX_ELEMENTS).is_none() {
                return Err(IrError::Graph(format!(
                    "node `{}` has shape {} (more than 2^32 elements or rank over 8)",
                    node.name, node.shape
                )));
            }
            if !names.insert(node.name.as_str()) {
                return Err(IrError::Graph(format!(
                    "duplicate node name `{}`",
                    node.name
                )));
            }
            let ins = self.inputs_of(id);
            let mut slots: Vec<u32> = self
                .g
                .edges_directed(id, Direction::Incoming)
                .map(|e| *e.weight())
                .collect();
            slots.sort_unstable();
            if slots.iter().enumerate().any(|(i, &s)| s as usize != i) {
                return Err(IrError::Graph(format!(
                    "node `{}` has bad input slots",
                    node.name
                )));
            }
            if matches!(node.op, Op::Input) != self.inputs.contains(&id) {
                return Err(IrError::Graph(format!(
                    "node `{}`: Input ops and declared inputs differ",
                    node.name
                )));
            }
            let shapes: Vec<&Shape> = ins.iter().map(|&i| &self.g[i].shape).collect();
            let inferred = node
                .op
                .infer_shape(&shapes, Some(&node.shape))
                .map_err(|source| IrError::Shape {
                    node: node.name.clone(),
                    op: node.op.name().into(),
                    source,
                })?;
            if inferred != node.shape {
                return Err(IrError::Shape {
                    node: node.name.clone(),
                    op: node.op.name().into(),
                    source: ShapeError::Stored {
                        stored: node.shape.clone(),
                        inferred,
                    },
                });
            }
            if node.op.class() != OpClass::ClientOutput {
                for &i in &ins {
                    if self.g[i].op.class() == OpClass::ClientOutput {
                        return Err(IrError::Graph(format!(
                            "node `{}` uses the client-side output of `{}`",
                            node.name, self.g[i].name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The graph's only input and output (valid graphs have exactly one of each).
    pub fn io(&self) -> Result<(NodeId, NodeId)> {
        match (self.inputs.as_slice(), self.outputs.as_slice()) {
            ([i], [o]) => Ok((*i, *o)),
            _ => Err(IrError::Graph("expected one input and one output".into())),
        }
    }
}
