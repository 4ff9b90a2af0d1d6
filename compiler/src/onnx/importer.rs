//! The importer's state while it walks the nodes: the value of every ONNX name (a folded
//! constant or an IR node), the IR graph and float weights built so far, and the helpers the
//! op functions share to read inputs and to report a node they cannot map.

use super::op_registry;
use super::{supported_ops, FoldCounts};
use crate::const_fold::ConstTensor;
use crate::diagnostics::ImportError;
use c3d_ir::{FloatWeights, Graph, NodeId, Op, Shape};
use std::collections::HashMap;
use tract_onnx::pb::NodeProto;

/// A value in the ONNX graph: a folded constant or an IR node's output.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// Known at compile time (weights, shapes, conditions).
    Const(ConstTensor),
    /// Depends on the video: the output of this IR node.
    Data(NodeId),
}

/// The import in progress.
pub(super) struct Importer {
    /// The value of each ONNX name defined so far.
    pub(super) values: HashMap<String, Value>,
    /// How many nodes (and graph outputs) read each ONNX name.
    pub(super) uses: HashMap<String, usize>,
    /// The IR graph built so far.
    pub(super) graph: Graph,
    /// Float weights and biases of the weighted IR nodes.
    pub(super) weights: FloatWeights,
    /// How often each IR node name was taken, to keep names unique.
    pub(super) names: HashMap<String, usize>,
    /// What was folded away.
    pub(super) folded: FoldCounts,
    /// The model file's directory, where external tensor data lives.
    pub(super) dir: Option<String>,
}

impl Importer {
    /// An importer with nothing defined yet.
    pub(super) fn new(dir: Option<&str>) -> Self {
        Importer {
            values: HashMap::new(),
            uses: HashMap::new(),
            graph: Graph::new(),
            weights: FloatWeights::new(),
            names: HashMap::new(),
            folded: FoldCounts::default(),
            dir: dir.map(str::to_string),
        }
    }

    /// `base`, or `base#k` when the name is taken.
    fn unique(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "node" } else { base };
        let n = self.names.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}#{n}")
        }
    }

    /// Imports the nodes in file order.
    pub(super) fn run_nodes(&mut self, nodes: &[NodeProto]) -> Result<(), ImportError> {
        for n in nodes {
            self.node(n)?;
        }
        Ok(())
    }

    /// Imports one node through the op registry: an op that handles any input runs as is;
    /// otherwise a node whose inputs are all constants is evaluated, and one that reads the
    /// video is mapped to the IR.
    fn node(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(self.unsupported(n, format!("custom domain `{}`", n.domain)));
        }
        let entry = op_registry().get(&n.op_type);
        if let Some(any) = entry.and_then(|e| e.any) {
            return any(self, n);
        }
        let all_const = n
            .input
            .iter()
            .all(|i| i.is_empty() || matches!(self.values.get(i), Some(Value::Const(_))));
        if all_const {
            let Some(fold) = entry.and_then(|e| e.fold) else {
                return Err(self.unsupported(n, "this op is not supported"));
            };
            let c = fold(self, n)?;
            self.folded.constants += 1;
            self.set(n, Value::Const(c));
            return Ok(());
        }
        match entry.and_then(|e| e.data) {
            Some(data) => data(self, n),
            None => Err(self.unsupported(n, "this op is not supported on video data")),
        }
    }

    /// The node's inputs, each with its kind and shape, for diagnostics.
    fn describe_inputs(&self, n: &NodeProto) -> String {
        n.input
            .iter()
            .map(|i| match self.values.get(i) {
                Some(Value::Const(c)) => format!("{i} (constant {:?})", c.dims),
                Some(Value::Data(id)) => format!("{i} (tensor {})", self.graph.node(*id).shape),
                None if i.is_empty() => "(absent)".to_string(),
                None => format!("{i} (undefined)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A supported op with invalid attributes or inputs.
    pub(super) fn bad(&self, n: &NodeProto, msg: impl Into<String>) -> ImportError {
        ImportError::BadNode {
            node: n.name.clone(),
            op_type: n.op_type.clone(),
            inputs: self.describe_inputs(n),
            msg: msg.into(),
        }
    }

    /// An op, or a form of it, that the frontend cannot map.
    pub(super) fn unsupported(&self, n: &NodeProto, msg: impl Into<String>) -> ImportError {
        ImportError::Unsupported {
            node: n.name.clone(),
            op_type: n.op_type.clone(),
            inputs: self.describe_inputs(n),
            msg: msg.into(),
            supported: supported_ops().join(", "),
        }
    }

    /// Input `k`, or None when it is absent (past the end or named "").
    pub(super) fn input(&self, n: &NodeProto, k: usize) -> Result<Option<&Value>, ImportError> {
        match n.input.get(k) {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => {
                self.values.get(s).map(Some).ok_or_else(|| {
                    self.bad(n, format!("input `{s}` is not defined before this node"))
                })
            }
        }
    }

    /// Input `k`, which must be present.
    pub(super) fn required(&self, n: &NodeProto, k: usize) -> Result<&Value, ImportError> {
        self.input(n, k)?
            .ok_or_else(|| self.bad(n, format!("input {k} is missing")))
    }

    /// Input `k` as a constant, or None when absent; refused when it depends on the video.
    pub(super) fn const_input(
        &self,
        n: &NodeProto,
        k: usize,
    ) -> Result<Option<ConstTensor>, ImportError> {
        match self.input(n, k)? {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(Value::Data(_)) => Err(self.unsupported(
                n,
                format!("input {k} depends on the video; it must be a constant (weights, shapes)"),
            )),
        }
    }

    /// Input `k` as a constant, which must be present.
    pub(super) fn required_const(
        &self,
        n: &NodeProto,
        k: usize,
    ) -> Result<ConstTensor, ImportError> {
        self.const_input(n, k)?
            .ok_or_else(|| self.bad(n, format!("input {k} is missing")))
    }

    /// Input `k` as video data, which must be present.
    pub(super) fn data_input(&self, n: &NodeProto, k: usize) -> Result<NodeId, ImportError> {
        match self.required(n, k)? {
            Value::Data(id) => Ok(*id),
            Value::Const(_) => Err(self.unsupported(
                n,
                format!("input {k} is a constant where a tensor is expected"),
            )),
        }
    }

    /// Defines the node's first output.
    pub(super) fn set(&mut self, n: &NodeProto, v: Value) {
        if let Some(o) = n.output.first() {
            self.values.insert(o.clone(), v);
        }
    }

    /// Adds an IR node named after the ONNX node (or its op type).
    pub(super) fn add(
        &mut self,
        n: &NodeProto,
        op: Op,
        ins: &[NodeId],
        target: Option<Shape>,
    ) -> Result<NodeId, ImportError> {
        let name = self.unique(if n.name.is_empty() {
            &n.op_type
        } else {
            &n.name
        });
        self.graph
            .add(name, op, ins, target)
            .map_err(|e| self.bad(n, e.to_string()))
    }

    /// Adds an IR node and defines the node's first output as it.
    pub(super) fn add_as_output(
        &mut self,
        n: &NodeProto,
        op: Op,
        ins: &[NodeId],
        target: Option<Shape>,
    ) -> Result<NodeId, ImportError> {
        let id = self.add(n, op, ins, target)?;
        self.set(n, Value::Data(id));
        Ok(id)
    }

    /// The dims of a value.
    pub(super) fn shape_of(&self, v: &Value) -> Vec<usize> {
        match v {
            Value::Const(c) => c.dims.clone(),
            Value::Data(id) => self.graph.node(*id).shape.dims().to_vec(),
        }
    }

    /// The rank of an IR node's output.
    pub(super) fn rank(&self, id: NodeId) -> usize {
        self.graph.node(id).shape.rank()
    }

    /// True when this node is the only reader of its first input.
    pub(super) fn only_use(&self, n: &NodeProto) -> bool {
        n.input
            .first()
            .is_some_and(|i| self.uses.get(i).copied().unwrap_or(0) == 1)
    }
}
