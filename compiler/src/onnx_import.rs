//! The ONNX frontend: reads a model with tract-onnx's protobuf reader and maps its nodes to
//! the IR. Shape computations fold to constants against the concrete input shape;
//! BatchNormalization folds into the layer before it; Dropout and Identity disappear; `If`
//! with a constant condition is replaced by its branch.

use crate::const_fold::{self as cf, CData, ConstT};
use crate::diagnostics::ImportError;
use c3d_ir::{
    Conv3dParams, FloatWeights, Graph, Model, ModelMeta, NodeId, Op, Preprocess, Shape, Window3d,
};
use c3d_passes::fold::{fold_batchnorm, BatchNorm};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb::{self, attribute_proto::AttributeType, NodeProto};
use tract_onnx::prelude::Framework;

/// The ONNX ops the frontend maps (data path and folded constants).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv (3-D, group 1)",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Gemm",
    "MatMul (+ Add)",
    "Add",
    "Concat",
    "Pad (constant 0)",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "ReduceMean",
    "Softmax",
    "ArgMax",
    "Dropout",
    "Identity",
    "If (constant condition)",
    "Constant",
    "Shape",
    "Gather",
    "Slice",
    "Cast",
    "ConstantOfShape",
    "Transpose",
    "Sub",
    "Mul",
    "Div",
    "Mod",
    "Max",
    "Min",
    "Equal",
    "Less",
    "Greater",
    "Where",
    "Not",
    "Neg",
    "Range",
];

/// A value in the ONNX graph: a folded constant or an IR node's output.
#[derive(Clone, Debug)]
enum Val {
    Const(ConstT),
    Data(NodeId),
}

/// Import options.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Concrete input shape, when the model's is symbolic beyond the batch dimension.
    pub input_shape: Option<Vec<usize>>,
}

struct Importer {
    values: HashMap<String, Val>,
    uses: HashMap<String, usize>,
    graph: Graph,
    weights: FloatWeights,
    names: HashMap<String, usize>,
    folded: FoldCounts,
}

/// What the frontend folded away, for the pass record.
#[derive(Clone, Debug, Default)]
pub struct FoldCounts {
    /// BatchNormalization nodes folded into layers.
    pub batchnorms: usize,
    /// Dropout and Identity nodes removed.
    pub removed: usize,
    /// Nodes evaluated as constants (shape chains).
    pub constants: usize,
    /// If nodes resolved.
    pub ifs: usize,
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}
fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}
fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}
fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}

/// The elements of a tract tensor cast to `T`.
fn elements<T: tract_onnx::prelude::Datum + Copy>(
    t: &tract_onnx::prelude::Tensor,
) -> Result<Vec<T>, String> {
    let c = t.cast_to::<T>().map_err(|e| e.to_string())?;
    let v = c.to_plain_array_view::<T>().map_err(|e| e.to_string())?;
    Ok(v.iter().copied().collect())
}

fn tensor_to_const(t: &tract_onnx::prelude::Tensor) -> Result<ConstT, String> {
    use tract_onnx::prelude::DatumType as D;
    let dt = t.datum_type();
    let data = if dt.is_float() {
        CData::F(elements::<f32>(t)?)
    } else if dt == D::Bool {
        CData::B(elements::<bool>(t)?)
    } else if dt.is_integer() {
        CData::I(elements::<i64>(t)?)
    } else {
        return Err(format!("tensor of type {dt:?} is not supported"));
    };
    Ok(ConstT {
        dims: t.shape().to_vec(),
        data,
    })
}

fn load_tensor(t: &pb::TensorProto, dir: Option<&str>) -> Result<ConstT, String> {
    let tt = tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, t, dir)
        .map_err(|e| format!("{e:#}"))?;
    tensor_to_const(&tt)
}

/// Reads an ONNX file and imports it.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<(Model, FoldCounts), ImportError> {
    let read_err = |msg: String| ImportError::Read {
        path: path.display().to_string(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if meta.len() == 0 {
        return Err(read_err("the file is empty".into()));
    }
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| read_err(format!("not a readable ONNX model: {e:#}")))?;
    let dir = path.parent().map(|p| p.to_string_lossy().to_string());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    import_proto(&proto, dir.as_deref(), &stem, opts)
}

/// Imports a parsed ONNX model.
pub fn import_proto(
    proto: &pb::ModelProto,
    dir: Option<&str>,
    fallback_name: &str,
    opts: &ImportOptions,
) -> Result<(Model, FoldCounts), ImportError> {
    let model_err = |m: String| ImportError::Model(m);
    let g = proto
        .graph
        .as_ref()
        .ok_or_else(|| model_err("the model has no graph".into()))?;
    let mut imp = Importer {
        values: HashMap::new(),
        uses: HashMap::new(),
        graph: Graph::new(),
        weights: FloatWeights::new(),
        names: HashMap::new(),
        folded: FoldCounts::default(),
    };
    count_uses(g, &mut imp.uses);
    for t in &g.initializer {
        let c =
            load_tensor(t, dir).map_err(|m| model_err(format!("initializer `{}`: {m}", t.name)))?;
        imp.values.insert(t.name.clone(), Val::Const(c));
    }
    let data_inputs: Vec<&pb::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !imp.values.contains_key(&i.name))
        .collect();
    let [input] = data_inputs[..] else {
        return Err(model_err(format!(
            "the model has {} data inputs; exactly one video input is supported",
            data_inputs.len()
        )));
    };
    let shape = input_shape(input, opts)?;
    if shape.len() != 5 || shape[1] != 3 {
        return Err(model_err(format!(
            "input `{}` has shape {shape:?}; a video model takes (N, 3, D, H, W)",
            input.name
        )));
    }
    if shape[0] != 1 {
        return Err(model_err(format!(
            "input batch is {}; secure inference runs one clip at a time (batch 1)",
            shape[0]
        )));
    }
    let id = imp
        .graph
        .add_input(input.name.clone(), Shape::new(shape.clone()));
    imp.names.insert(input.name.clone(), 1);
    imp.values.insert(input.name.clone(), Val::Data(id));
    imp.run_nodes(&g.node, dir)?;
    if g.output.len() != 1 {
        return Err(model_err(format!(
            "the model has {} outputs; exactly one is supported",
            g.output.len()
        )));
    }
    let out = match imp.values.get(&g.output[0].name) {
        Some(Val::Data(id)) => *id,
        Some(Val::Const(_)) => return Err(model_err("the model output is a constant".into())),
        None => {
            return Err(model_err(format!(
                "output `{}` is never computed",
                g.output[0].name
            )))
        }
    };
    imp.graph.set_outputs(vec![out]);
    let graph = prune_dead(imp.graph, &mut imp.weights)?;
    graph.validate().map_err(ImportError::Ir)?;
    let meta_map: HashMap<&str, &str> = proto
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let preprocess = match meta_map.get("c3d.preprocess") {
        Some(j) => serde_json::from_str::<Preprocess>(j)
            .map_err(|e| model_err(format!("metadata c3d.preprocess is not valid: {e}")))?,
        None => Preprocess::default_for(&Shape::new(shape.clone())),
    };
    let class_names = match meta_map.get("c3d.classes") {
        Some(j) => serde_json::from_str::<Vec<String>>(j)
            .map_err(|e| model_err(format!("metadata c3d.classes is not valid: {e}")))?,
        None => Vec::new(),
    };
    let approx = match meta_map.get("c3d.approx") {
        Some(j) => serde_json::from_str::<Vec<String>>(j)
            .map_err(|e| model_err(format!("metadata c3d.approx is not valid: {e}")))?,
        None => Vec::new(),
    };
    let name = meta_map
        .get("c3d.model")
        .map(|s| s.to_string())
        .or_else(|| (!g.name.is_empty()).then(|| g.name.clone()))
        .unwrap_or_else(|| fallback_name.to_string());
    let meta = ModelMeta {
        name,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string(),
        preprocess,
        class_names,
        approx,
    };
    Ok((
        Model {
            graph,
            weights: imp.weights,
            meta,
        },
        imp.folded,
    ))
}

fn input_shape(
    input: &pb::ValueInfoProto,
    opts: &ImportOptions,
) -> Result<Vec<usize>, ImportError> {
    if let Some(s) = &opts.input_shape {
        return Ok(s.clone());
    }
    use pb::tensor_shape_proto::dimension::Value;
    let err = |m: String| ImportError::Model(format!("input `{}`: {m}", input.name));
    let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(err("not a tensor".into()));
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(err("the input must be float32".into()));
    }
    let dims = &t
        .shape
        .as_ref()
        .ok_or_else(|| err("no shape; pass --input-shape".into()))?
        .dim;
    dims.iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(Value::DimValue(v)) if *v > 0 => Ok(*v as usize),
            // A symbolic batch dimension becomes 1: one clip at a time.
            Some(Value::DimParam(_)) | None if i == 0 => Ok(1),
            _ => Err(err(format!(
                "dimension {i} is not concrete; pass --input-shape"
            ))),
        })
        .collect()
}

fn count_uses(g: &pb::GraphProto, uses: &mut HashMap<String, usize>) {
    for n in &g.node {
        for i in &n.input {
            if !i.is_empty() {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        for a in &n.attribute {
            if let Some(sub) = &a.g {
                count_uses(sub, uses);
            }
        }
    }
    for o in &g.output {
        *uses.entry(o.name.clone()).or_default() += 1;
    }
}

/// Removes nodes whose output never reaches the graph output (e.g. exporter leftovers).
fn prune_dead(graph: Graph, weights: &mut FloatWeights) -> Result<Graph, ImportError> {
    let (_, out) = graph.io().map_err(ImportError::Ir)?;
    let mut live = std::collections::HashSet::new();
    let mut stack = vec![out];
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.inputs_of(n));
        }
    }
    if live.len() == graph.len() {
        return Ok(graph);
    }
    // Rebuild with live nodes only, in topological order.
    let mut g2 = Graph::new();
    let mut map = HashMap::new();
    let mut w2 = FloatWeights::new();
    for id in graph.topo_order().map_err(ImportError::Ir)? {
        if !live.contains(&id) {
            continue;
        }
        let n = graph.node(id);
        let new = if matches!(n.op, Op::Input) {
            g2.add_input(n.name.clone(), n.shape.clone())
        } else {
            let ins: Vec<NodeId> = graph.inputs_of(id).iter().map(|i| map[i]).collect();
            g2.add(n.name.clone(), n.op.clone(), &ins, Some(n.shape.clone()))
                .map_err(ImportError::Ir)?
        };
        if let Some(w) = weights.remove(&id) {
            w2.insert(new, w);
        }
        map.insert(id, new);
    }
    g2.set_outputs(vec![map[&out]]);
    *weights = w2;
    Ok(g2)
}

impl Importer {
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

    fn run_nodes(&mut self, nodes: &[NodeProto], dir: Option<&str>) -> Result<(), ImportError> {
        for n in nodes {
            self.node(n, dir)?;
        }
        Ok(())
    }

    fn describe_inputs(&self, n: &NodeProto) -> String {
        n.input
            .iter()
            .map(|i| match self.values.get(i) {
                Some(Val::Const(c)) => format!("{i} (constant {:?})", c.dims),
                Some(Val::Data(id)) => format!("{i} (tensor {})", self.graph.node(*id).shape),
                None if i.is_empty() => "(absent)".to_string(),
                None => format!("{i} (undefined)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn bad(&self, n: &NodeProto, msg: impl Into<String>) -> ImportError {
        ImportError::BadNode {
            node: n.name.clone(),
            op_type: n.op_type.clone(),
            inputs: self.describe_inputs(n),
            msg: msg.into(),
        }
    }

    fn unsupported(&self, n: &NodeProto, msg: impl Into<String>) -> ImportError {
        ImportError::Unsupported {
            node: n.name.clone(),
            op_type: n.op_type.clone(),
            inputs: self.describe_inputs(n),
            msg: msg.into(),
            supported: SUPPORTED_OPS.join(", "),
        }
    }

    fn input(&self, n: &NodeProto, k: usize) -> Result<Option<&Val>, ImportError> {
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

    fn req(&self, n: &NodeProto, k: usize) -> Result<&Val, ImportError> {
        self.input(n, k)?
            .ok_or_else(|| self.bad(n, format!("input {k} is missing")))
    }

    fn konst(&self, n: &NodeProto, k: usize) -> Result<Option<ConstT>, ImportError> {
        match self.input(n, k)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(Val::Data(_)) => Err(self.unsupported(
                n,
                format!("input {k} depends on the video; it must be a constant (weights, shapes)"),
            )),
        }
    }

    fn req_const(&self, n: &NodeProto, k: usize) -> Result<ConstT, ImportError> {
        self.konst(n, k)?
            .ok_or_else(|| self.bad(n, format!("input {k} is missing")))
    }

    fn set(&mut self, n: &NodeProto, v: Val) {
        if let Some(o) = n.output.first() {
            self.values.insert(o.clone(), v);
        }
    }

    fn add(
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

    fn shape_of(&self, v: &Val) -> Vec<usize> {
        match v {
            Val::Const(c) => c.dims.clone(),
            Val::Data(id) => self.graph.node(*id).shape.dims().to_vec(),
        }
    }

    /// True when this node is the only reader of its first input.
    fn only_use(&self, n: &NodeProto) -> bool {
        n.input
            .first()
            .is_some_and(|i| self.uses.get(i).copied().unwrap_or(0) == 1)
    }

    fn node(&mut self, n: &NodeProto, dir: Option<&str>) -> Result<(), ImportError> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(self.unsupported(n, format!("custom domain `{}`", n.domain)));
        }
        let all_const = n
            .input
            .iter()
            .all(|i| i.is_empty() || matches!(self.values.get(i), Some(Val::Const(_))));
        let op = n.op_type.as_str();
        // Ops that fold on constants (shape chains, If conditions).
        if op == "Shape" {
            let s = self.shape_of(self.req(n, 0)?);
            let (st, en) = (attr_i(n, "start").unwrap_or(0), attr_i(n, "end"));
            let r = s.len() as i64;
            let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (a, b) = (fix(st), en.map_or(s.len(), fix));
            let dims: Vec<i64> = s[a..b.max(a)].iter().map(|&d| d as i64).collect();
            self.folded.constants += 1;
            self.set(n, Val::Const(ConstT::ints(vec![dims.len()], dims)));
            return Ok(());
        }
        if op == "Constant" {
            let a = n
                .attribute
                .first()
                .ok_or_else(|| self.bad(n, "Constant without a value"))?;
            let c = match (a.name.as_str(), AttributeType::try_from(a.r#type)) {
                ("value", _) => {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| self.bad(n, "Constant value is not a tensor"))?;
                    load_tensor(t, dir).map_err(|m| self.bad(n, m))?
                }
                ("value_int", _) => ConstT::ints(vec![], vec![a.i]),
                ("value_ints", _) => ConstT::ints(vec![a.ints.len()], a.ints.clone()),
                ("value_float", _) => ConstT {
                    dims: vec![],
                    data: CData::F(vec![a.f]),
                },
                ("value_floats", _) => ConstT {
                    dims: vec![a.floats.len()],
                    data: CData::F(a.floats.clone()),
                },
                (other, _) => return Err(self.unsupported(n, format!("Constant with `{other}`"))),
            };
            self.set(n, Val::Const(c));
            return Ok(());
        }
        if op == "If" {
            let cond = self
                .konst(n, 0)?
                .ok_or_else(|| self.bad(n, "If without a condition"))?;
            let c = cond.as_bool().map_err(|m| self.bad(n, m))?;
            let branch = attr(n, if c { "then_branch" } else { "else_branch" })
                .and_then(|a| a.g.as_ref())
                .ok_or_else(|| self.bad(n, "If without its branches"))?;
            for t in &branch.initializer {
                let v = load_tensor(t, dir).map_err(|m| self.bad(n, m))?;
                self.values.insert(t.name.clone(), Val::Const(v));
            }
            self.run_nodes(&branch.node, dir)?;
            if branch.output.len() != n.output.len() {
                return Err(self.bad(n, "branch outputs do not match the If outputs"));
            }
            for (bo, o) in branch.output.iter().zip(&n.output) {
                let v =
                    self.values.get(&bo.name).cloned().ok_or_else(|| {
                        self.bad(n, format!("branch output `{}` undefined", bo.name))
                    })?;
                self.values.insert(o.clone(), v);
            }
            self.folded.ifs += 1;
            return Ok(());
        }
        if matches!(op, "Dropout" | "Identity") {
            let v = self.req(n, 0)?.clone();
            self.folded.removed += 1;
            self.set(n, v);
            return Ok(());
        }
        if all_const {
            let c = self.fold(n)?;
            self.folded.constants += 1;
            self.set(n, Val::Const(c));
            return Ok(());
        }
        self.data_node(n)
    }

    /// Evaluates a node whose inputs are all constants.
    fn fold(&self, n: &NodeProto) -> Result<ConstT, ImportError> {
        let op = n.op_type.as_str();
        let e = |m: String| self.bad(n, m);
        let c = |k: usize| self.req_const(n, k);
        Ok(match op {
            "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min" | "Pow" | "Equal" | "Less"
            | "Greater" | "And" | "Or" | "Xor" => {
                if op == "Mod" && attr_i(n, "fmod") == Some(1) {
                    return Err(self.unsupported(n, "Mod with fmod=1"));
                }
                let mut acc = c(0)?;
                for k in 1..n.input.len() {
                    acc = cf::binary(op, &acc, &c(k)?).map_err(e)?;
                }
                acc
            }
            "Not" => {
                let a = c(0)?;
                let t = ConstT {
                    dims: vec![],
                    data: CData::B(vec![true]),
                };
                cf::binary("Xor", &a, &t).map_err(e)?
            }
            "Neg" => {
                let a = c(0)?;
                let zero = match a.data {
                    CData::F(_) => ConstT {
                        dims: vec![],
                        data: CData::F(vec![0.0]),
                    },
                    _ => ConstT::ints(vec![], vec![0]),
                };
                cf::binary("Sub", &zero, &a).map_err(e)?
            }
            "Where" => {
                let (cond, a, b) = (c(0)?, c(1)?, c(2)?);
                let ca = cf::binary(
                    "Equal",
                    &cond,
                    &ConstT {
                        dims: vec![],
                        data: CData::B(vec![true]),
                    },
                )
                .map_err(e)?;
                // where = a * cond + b * !cond, elementwise with broadcasting on integers/floats.
                let to_num = |x: &ConstT, like: &ConstT| match like.data {
                    CData::F(_) => ConstT {
                        dims: x.dims.clone(),
                        data: CData::F(x.as_f32s()),
                    },
                    _ => ConstT::ints(x.dims.clone(), x.as_i64s().unwrap_or_default()),
                };
                let one = to_num(&ConstT::ints(vec![], vec![1]), &a);
                let cn = to_num(&ca, &a);
                let ncn = cf::binary("Sub", &one, &cn).map_err(e)?;
                let l = cf::binary("Mul", &a, &cn).map_err(e)?;
                let r = cf::binary("Mul", &b, &ncn).map_err(e)?;
                cf::binary("Add", &l, &r).map_err(e)?
            }
            "Cast" => {
                let a = c(0)?;
                let to = attr_i(n, "to").ok_or_else(|| self.bad(n, "Cast without `to`"))?;
                let data = match to {
                    1 | 10 | 11 | 16 => CData::F(a.as_f32s()),
                    2..=7 | 12 | 13 => CData::I(match &a.data {
                        CData::F(v) => v.iter().map(|&f| f.trunc() as i64).collect(),
                        _ => a.as_i64s().map_err(e)?,
                    }),
                    9 => CData::B(a.as_f32s().iter().map(|&v| v != 0.0).collect()),
                    _ => return Err(self.unsupported(n, format!("Cast to type {to}"))),
                };
                ConstT { dims: a.dims, data }
            }
            "Gather" => cf::gather(&c(0)?, &c(1)?, attr_i(n, "axis").unwrap_or(0)).map_err(e)?,
            "Slice" => {
                let data = c(0)?;
                let st = c(1)?.as_i64s().map_err(e)?;
                let en = c(2)?.as_i64s().map_err(e)?;
                let ax = self
                    .konst(n, 3)?
                    .map(|a| a.as_i64s())
                    .transpose()
                    .map_err(e)?;
                let sp = self
                    .konst(n, 4)?
                    .map(|a| a.as_i64s())
                    .transpose()
                    .map_err(e)?;
                cf::slice(&data, &st, &en, ax.as_deref(), sp.as_deref()).map_err(e)?
            }
            "Concat" => {
                let parts: Vec<ConstT> = (0..n.input.len()).map(c).collect::<Result<_, _>>()?;
                let refs: Vec<&ConstT> = parts.iter().collect();
                cf::concat(&refs, attr_i(n, "axis").unwrap_or(0)).map_err(e)?
            }
            "ConstantOfShape" => {
                let dims: Vec<usize> = c(0)?
                    .as_i64s()
                    .map_err(e)?
                    .iter()
                    .map(|&d| d.max(0) as usize)
                    .collect();
                let len: usize = dims.iter().product();
                let v = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => load_tensor(t, None).map_err(e)?,
                    None => ConstT {
                        dims: vec![1],
                        data: CData::F(vec![0.0]),
                    },
                };
                let data = match v.data {
                    CData::F(x) => CData::F(vec![x[0]; len]),
                    CData::I(x) => CData::I(vec![x[0]; len]),
                    CData::B(x) => CData::B(vec![x[0]; len]),
                };
                ConstT { dims, data }
            }
            "Transpose" => cf::transpose(&c(0)?, attr_ints(n, "perm").as_deref()).map_err(e)?,
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
                let mut a = c(0)?;
                a.dims = self.reshape_target(n, &a.dims)?;
                a
            }
            "Range" => {
                let (s, l, d) = (
                    c(0)?.as_i64s().map_err(e)?,
                    c(1)?.as_i64s().map_err(e)?,
                    c(2)?.as_i64s().map_err(e)?,
                );
                let (s, l, d) = (s[0], l[0], d[0]);
                if d == 0 {
                    return Err(self.bad(n, "Range with delta 0"));
                }
                let v: Vec<i64> = std::iter::successors(Some(s), |x| Some(x + d))
                    .take_while(|x| if d > 0 { *x < l } else { *x > l })
                    .take(1 << 20)
                    .collect();
                ConstT::ints(vec![v.len()], v)
            }
            _ => return Err(self.unsupported(n, "this op is not supported")),
        })
    }

    /// Target dims of Reshape, Flatten, Squeeze and Unsqueeze for an input of `dims`.
    fn reshape_target(&self, n: &NodeProto, dims: &[usize]) -> Result<Vec<usize>, ImportError> {
        let e = |m: String| self.bad(n, m);
        let axes = |k: usize, a: &str| -> Result<Vec<i64>, ImportError> {
            match self.konst(n, k)? {
                Some(c) => c.as_i64s().map_err(e),
                None => Ok(attr_ints(n, a).unwrap_or_default()),
            }
        };
        match n.op_type.as_str() {
            "Reshape" => {
                let t = self.req_const(n, 1)?.as_i64s().map_err(e)?;
                cf::reshape_dims(dims, &t, attr_i(n, "allowzero") == Some(1)).map_err(e)
            }
            "Flatten" => {
                let a = attr_i(n, "axis").unwrap_or(1);
                let a = if a < 0 { a + dims.len() as i64 } else { a };
                if a < 0 || a as usize > dims.len() {
                    return Err(self.bad(n, format!("Flatten axis {a} out of range")));
                }
                let a = a as usize;
                Ok(vec![dims[..a].iter().product(), dims[a..].iter().product()])
            }
            "Squeeze" => cf::squeeze_dims(dims, &axes(1, "axes")?).map_err(e),
            "Unsqueeze" => cf::unsqueeze_dims(dims, &axes(1, "axes")?).map_err(e),
            _ => unreachable!("only reshape-like ops"),
        }
    }

    fn window(
        &self,
        n: &NodeProto,
        kernel_from: Option<&[usize]>,
    ) -> Result<Window3d, ImportError> {
        let k: Vec<i64> = match kernel_from {
            Some(k) => k.iter().map(|&v| v as i64).collect(),
            None => attr_ints(n, "kernel_shape").ok_or_else(|| self.bad(n, "no kernel_shape"))?,
        };
        if k.len() != 3 {
            return Err(self.unsupported(
                n,
                format!("{}-D window; only 3-D (D, H, W) is supported", k.len()),
            ));
        }
        let three = |name: &str, def: i64| -> Result<[usize; 3], ImportError> {
            let v = attr_ints(n, name).unwrap_or_else(|| vec![def; 3]);
            if v.len() != 3 || v.iter().any(|&x| x < 1) {
                return Err(self.bad(n, format!("bad {name} {v:?}")));
            }
            Ok([v[0] as usize, v[1] as usize, v[2] as usize])
        };
        let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 6]);
        if pads.len() != 6 || pads.iter().any(|&p| p < 0) {
            return Err(self.bad(n, format!("bad pads {pads:?}")));
        }
        if let Some(a) = attr(n, "auto_pad") {
            let s = String::from_utf8_lossy(&a.s);
            if s != "NOTSET" && s != "VALID" {
                return Err(self.unsupported(n, format!("auto_pad {s}; export with explicit pads")));
            }
        }
        if attr_i(n, "storage_order").unwrap_or(0) != 0 {
            return Err(self.unsupported(n, "storage_order 1"));
        }
        let kernel = [k[0] as usize, k[1] as usize, k[2] as usize];
        if kernel.contains(&0) {
            return Err(self.bad(n, "zero kernel size"));
        }
        Ok(Window3d {
            kernel,
            stride: three("strides", 1)?,
            dilation: three("dilations", 1)?,
            pads: [
                (pads[0] as usize, pads[3] as usize),
                (pads[1] as usize, pads[4] as usize),
                (pads[2] as usize, pads[5] as usize),
            ],
            ceil_mode: attr_i(n, "ceil_mode").unwrap_or(0) != 0,
        })
    }

    fn data_in(&self, n: &NodeProto, k: usize) -> Result<NodeId, ImportError> {
        match self.req(n, k)? {
            Val::Data(id) => Ok(*id),
            Val::Const(_) => Err(self.unsupported(
                n,
                format!("input {k} is a constant where a tensor is expected"),
            )),
        }
    }

    fn data_node(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let op = n.op_type.as_str();
        match op {
            "Conv" => {
                let x = self.data_in(n, 0)?;
                let w = self.req_const(n, 1)?;
                if attr_i(n, "group").unwrap_or(1) != 1 {
                    return Err(self.unsupported(n, "grouped convolution"));
                }
                if w.dims.len() != 5 {
                    return Err(self.unsupported(
                        n,
                        format!(
                            "{}-D convolution; only 3-D is supported",
                            w.dims.len().saturating_sub(2)
                        ),
                    ));
                }
                let win = self.window(n, Some(&w.dims[2..]))?;
                if let Some(ks) = attr_ints(n, "kernel_shape") {
                    if ks.iter().map(|&v| v as usize).collect::<Vec<_>>() != w.dims[2..] {
                        return Err(self.bad(n, "kernel_shape disagrees with the weights"));
                    }
                }
                let (o, i) = (w.dims[0], w.dims[1]);
                let b = match self.konst(n, 2)? {
                    Some(b) if b.len() == o => b.as_f32s(),
                    Some(_) => {
                        return Err(self.bad(n, "bias length differs from the output channels"))
                    }
                    None => vec![0.0; o],
                };
                let id = self.add(
                    n,
                    Op::Conv3d(Conv3dParams {
                        in_channels: i,
                        out_channels: o,
                        window: win,
                    }),
                    &[x],
                    None,
                )?;
                self.weights.insert(id, (w.as_f32s(), b));
                self.set(n, Val::Data(id));
            }
            "BatchNormalization" => {
                let x = self.data_in(n, 0)?;
                let p: Vec<Vec<f32>> = (1..5)
                    .map(|k| self.req_const(n, k).map(|c| c.as_f32s()))
                    .collect::<Result<_, _>>()?;
                let bn = BatchNorm {
                    gamma: p[0].clone(),
                    beta: p[1].clone(),
                    mean: p[2].clone(),
                    var: p[3].clone(),
                    eps: attr_f(n, "epsilon").unwrap_or(1e-5),
                };
                if attr_i(n, "training_mode") == Some(1) {
                    return Err(self.unsupported(n, "BatchNormalization in training mode"));
                }
                let foldable = matches!(self.graph.node(x).op, Op::Conv3d(_) | Op::Linear { .. })
                    && self.only_use(n);
                if !foldable {
                    return Err(self.unsupported(n, "BatchNormalization must directly follow a Conv or Gemm whose output it alone reads"));
                }
                let (w, b) = self
                    .weights
                    .get_mut(&x)
                    .expect("weighted layer has weights");
                fold_batchnorm(w, b, &bn).map_err(|m| self.bad(n, m.to_string()))?;
                self.folded.batchnorms += 1;
                self.set(n, Val::Data(x));
            }
            "Relu" => {
                let x = self.data_in(n, 0)?;
                let id = self.add(n, Op::Relu, &[x], None)?;
                self.set(n, Val::Data(id));
            }
            "MaxPool" => {
                let x = self.data_in(n, 0)?;
                if n.output.len() > 1 && n.output[1..].iter().any(|o| !o.is_empty()) {
                    return Err(self.unsupported(n, "MaxPool with an indices output"));
                }
                let win = self.window(n, None)?;
                let id = self.add(n, Op::MaxPool3d(win), &[x], None)?;
                self.set(n, Val::Data(id));
            }
            "AveragePool" => {
                let x = self.data_in(n, 0)?;
                let win = self.window(n, None)?;
                if win.dilation != [1; 3] {
                    return Err(self.unsupported(n, "dilated AveragePool"));
                }
                let cip = attr_i(n, "count_include_pad").unwrap_or(0) != 0;
                let id = self.add(
                    n,
                    Op::AvgPool3d {
                        window: win,
                        count_include_pad: cip,
                    },
                    &[x],
                    None,
                )?;
                self.set(n, Val::Data(id));
            }
            "GlobalAveragePool" => {
                let x = self.data_in(n, 0)?;
                let id = self.add(
                    n,
                    Op::Mean {
                        axes: vec![2, 3, 4],
                        keepdims: true,
                    },
                    &[x],
                    None,
                )?;
                self.set(n, Val::Data(id));
            }
            "ReduceMean" => {
                let x = self.data_in(n, 0)?;
                let rank = self.graph.node(x).shape.rank();
                let axes: Vec<i64> = match self.konst(n, 1)? {
                    Some(c) => c.as_i64s().map_err(|m| self.bad(n, m))?,
                    None => attr_ints(n, "axes").unwrap_or_else(|| (0..rank as i64).collect()),
                };
                let mut axes: Vec<usize> = axes
                    .iter()
                    .map(|&a| cf::norm_axis(a, rank))
                    .collect::<Result<_, _>>()
                    .map_err(|m| self.bad(n, m))?;
                axes.sort_unstable();
                axes.dedup();
                if axes.contains(&0) {
                    return Err(self.unsupported(n, "mean over the batch axis"));
                }
                let keep = attr_i(n, "keepdims").unwrap_or(1) != 0;
                let id = self.add(
                    n,
                    Op::Mean {
                        axes,
                        keepdims: keep,
                    },
                    &[x],
                    None,
                )?;
                self.set(n, Val::Data(id));
            }
            "Gemm" => {
                let x = self.data_in(n, 0)?;
                let w = self.req_const(n, 1)?;
                if attr_i(n, "transA").unwrap_or(0) != 0 {
                    return Err(self.unsupported(n, "Gemm with transA"));
                }
                let alpha = attr_f(n, "alpha").unwrap_or(1.0);
                let beta = attr_f(n, "beta").unwrap_or(1.0);
                let wt = if attr_i(n, "transB").unwrap_or(0) != 0 {
                    w
                } else {
                    cf::transpose(&w, None).map_err(|m| self.bad(n, m))?
                };
                if wt.dims.len() != 2 {
                    return Err(self.bad(n, "Gemm weights are not a matrix"));
                }
                let (o, i) = (wt.dims[0], wt.dims[1]);
                let b = match self.konst(n, 2)? {
                    Some(b) if b.len() == o => b.as_f32s().iter().map(|v| v * beta).collect(),
                    Some(b) if b.len() == 1 => vec![b.as_f32s()[0] * beta; o],
                    Some(_) => {
                        return Err(self.bad(n, "Gemm bias does not broadcast to the outputs"))
                    }
                    None => vec![0.0; o],
                };
                let wv: Vec<f32> = wt.as_f32s().iter().map(|v| v * alpha).collect();
                self.add_linear(n, x, (o, i), wv, b)?;
            }
            "MatMul" => {
                let x = self.data_in(n, 0)?;
                let w = self.req_const(n, 1)?;
                if w.dims.len() != 2 {
                    return Err(self.unsupported(n, "MatMul with a non-matrix right operand"));
                }
                let wt = cf::transpose(&w, None).map_err(|m| self.bad(n, m))?;
                let (o, i) = (wt.dims[0], wt.dims[1]);
                self.add_linear(n, x, (o, i), wt.as_f32s(), vec![0.0; o])?;
            }
            "Add" => {
                let (a, b) = (self.req(n, 0)?.clone(), self.req(n, 1)?.clone());
                match (a, b) {
                    (Val::Data(x), Val::Data(y)) => {
                        let id = self.add(n, Op::Add, &[x, y], None)?;
                        self.set(n, Val::Data(id));
                    }
                    (Val::Data(x), Val::Const(c)) | (Val::Const(c), Val::Data(x)) => {
                        self.fold_bias(n, x, &c)?;
                        self.set(n, Val::Data(x));
                    }
                    _ => unreachable!("constant Add folds earlier"),
                }
            }
            "Concat" => {
                let ins: Vec<NodeId> = (0..n.input.len())
                    .map(|k| self.data_in(n, k))
                    .collect::<Result<_, _>>()?;
                let rank = self.graph.node(ins[0]).shape.rank();
                let axis = cf::norm_axis(attr_i(n, "axis").unwrap_or(0), rank)
                    .map_err(|m| self.bad(n, m))?;
                let id = self.add(n, Op::Concat { axis }, &ins, None)?;
                self.set(n, Val::Data(id));
            }
            "Pad" => {
                let x = self.data_in(n, 0)?;
                let mode = attr(n, "mode")
                    .map(|a| String::from_utf8_lossy(&a.s).to_string())
                    .unwrap_or_else(|| "constant".into());
                if mode != "constant" {
                    return Err(self.unsupported(
                        n,
                        format!("Pad mode `{mode}`; only zero padding is supported"),
                    ));
                }
                let rank = self.graph.node(x).shape.rank();
                let pads = match self.konst(n, 1)? {
                    Some(p) => p.as_i64s().map_err(|m| self.bad(n, m))?,
                    None => attr_ints(n, "pads").ok_or_else(|| self.bad(n, "Pad without pads"))?,
                };
                if let Some(v) = self.konst(n, 2)? {
                    if v.as_f32s().iter().any(|&x| x != 0.0) {
                        return Err(self.unsupported(n, "Pad with a non-zero value"));
                    }
                }
                if self.input(n, 3)?.is_some() {
                    return Err(self.unsupported(n, "Pad with explicit axes"));
                }
                if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
                    return Err(self.unsupported(
                        n,
                        format!("pads {pads:?} (negative pads crop, which is not supported)"),
                    ));
                }
                let pp: Vec<(usize, usize)> = (0..rank)
                    .map(|a| (pads[a] as usize, pads[a + rank] as usize))
                    .collect();
                let id = self.add(n, Op::Pad { pads: pp }, &[x], None)?;
                self.set(n, Val::Data(id));
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
                let x = self.data_in(n, 0)?;
                let dims = self.graph.node(x).shape.dims().to_vec();
                let t = self.reshape_target(n, &dims)?;
                let id = self.add(n, Op::Reshape, &[x], Some(Shape::new(t)))?;
                self.set(n, Val::Data(id));
            }
            "Softmax" | "ArgMax" => {
                let x = self.data_in(n, 0)?;
                let rank = self.graph.node(x).shape.rank();
                let def = if op == "Softmax" { -1 } else { 0 };
                let axis = cf::norm_axis(attr_i(n, "axis").unwrap_or(def), rank)
                    .map_err(|m| self.bad(n, m))?;
                let o = if op == "Softmax" {
                    Op::Softmax { axis }
                } else {
                    if attr_i(n, "select_last_index").unwrap_or(0) != 0 {
                        return Err(self.unsupported(n, "ArgMax with select_last_index"));
                    }
                    Op::Argmax {
                        axis,
                        keepdims: attr_i(n, "keepdims").unwrap_or(1) != 0,
                    }
                };
                let id = self.add(n, o, &[x], None)?;
                self.set(n, Val::Data(id));
            }
            _ => return Err(self.unsupported(n, "this op is not supported on video data")),
        }
        Ok(())
    }

    /// Adds a fully connected layer with (out, in) weights and its bias.
    fn add_linear(
        &mut self,
        n: &NodeProto,
        x: NodeId,
        (out_features, in_features): (usize, usize),
        w: Vec<f32>,
        b: Vec<f32>,
    ) -> Result<(), ImportError> {
        let op = Op::Linear {
            in_features,
            out_features,
        };
        let id = self.add(n, op, &[x], None)?;
        self.weights.insert(id, (w, b));
        self.set(n, Val::Data(id));
        Ok(())
    }

    /// `layer + constant`: folds a per-channel constant into the bias of the layer before.
    fn fold_bias(&mut self, n: &NodeProto, x: NodeId, c: &ConstT) -> Result<(), ImportError> {
        let node = self.graph.node(x);
        let channels = match &node.op {
            Op::Conv3d(p) => p.out_channels,
            Op::Linear { out_features, .. } => *out_features,
            _ => {
                return Err(self.unsupported(
                    n,
                    "adding a constant is supported only as the bias of a Conv or MatMul",
                ))
            }
        };
        let data_name = n
            .input
            .iter()
            .find(|i| matches!(self.values.get(*i), Some(Val::Data(d)) if *d == x));
        if data_name.is_none_or(|i| self.uses.get(i) != Some(&1)) {
            return Err(
                self.unsupported(n, "bias Add on a layer output that is also used elsewhere")
            );
        }
        let rank = node.shape.rank();
        let v = c.as_f32s();
        // Accept shapes that broadcast per output channel: [C], [1,C], [C,1,1,1], [1,C,1,1,1].
        let ok = if rank == 2 {
            v.len() == channels && c.dims.last() == Some(&channels)
        } else {
            v.len() == channels && c.dims.iter().filter(|&&d| d != 1).count() <= 1 && {
                let pos = c.dims.len() as i64 - 4;
                c.dims.len() >= 4 && pos >= 0 && c.dims[pos as usize] == channels
            }
        };
        if !ok {
            return Err(self.unsupported(
                n,
                format!("constant of shape {:?} is not a per-channel bias", c.dims),
            ));
        }
        let (_, b) = self.weights.get_mut(&x).expect("weighted layer");
        for (bi, vi) in b.iter_mut().zip(v) {
            *bi += vi;
        }
        Ok(())
    }
}
