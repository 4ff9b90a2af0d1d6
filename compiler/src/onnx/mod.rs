//! The ONNX frontend: reads a model with tract-onnx's protobuf reader and maps its nodes to
//! the IR, one small function per ONNX op (`registry`, with one module per op family).
//! Shape computations fold to constants against the concrete input shape;
//! BatchNormalization folds into the layer before it; Dropout and Identity disappear; `If`
//! with a constant condition is replaced by its branch.
//!
//! To support a new op, write its function in the module of its family and register it in
//! that module's `register`; the supported-op list of the diagnostics follows.

mod activation;
mod arith;
mod attr;
mod constant;
mod control;
mod conv;
mod importer;
mod linear;
mod output;
mod pool;
mod registry;
mod shape;
mod tensor;
mod window;

use crate::diagnostics::ImportError;
use c3d_ir::{FloatWeights, Graph, Model, ModelMeta, NodeId, Op, Preprocess, Shape};
use importer::{Importer, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

/// Import options.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Concrete input shape, when the model's is symbolic beyond the batch dimension.
    pub input_shape: Option<Vec<usize>>,
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

/// The ONNX ops the frontend maps (data path and folded constants), with the supported form
/// where it is narrower than ONNX's ("Conv (3-D, group 1)"), in the registry's order.
pub fn supported_ops() -> Vec<String> {
    op_registry().supported()
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
    let mut imp = Importer::new(dir);
    count_uses(g, &mut imp.uses);
    for t in &g.initializer {
        let c = tensor::load_tensor(t, dir).map_err(|source| ImportError::Initializer {
            name: t.name.clone(),
            source,
        })?;
        imp.values.insert(t.name.clone(), Value::Const(c));
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
    imp.values.insert(input.name.clone(), Value::Data(id));
    imp.run_nodes(&g.node)?;
    if g.output.len() != 1 {
        return Err(model_err(format!(
            "the model has {} outputs; exactly one is supported",
            g.output.len()
        )));
    }
    let out = match imp.values.get(&g.output[0].name) {
        Some(Value::Data(id)) => *id,
        Some(Value::Const(_)) => return Err(model_err("the model output is a constant".into())),
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
    let meta = model_meta(proto, &g.name, fallback_name, &shape)?;
    Ok((
        Model {
            graph,
            weights: imp.weights,
            meta,
        },
        imp.folded,
    ))
}

/// The model's metadata: the `c3d.*` properties, or defaults for the input shape; the name
/// by [`crate::name::from_model`].
fn model_meta(
    proto: &pb::ModelProto,
    graph_name: &str,
    fallback_name: &str,
    shape: &[usize],
) -> Result<ModelMeta, ImportError> {
    let model_err = |m: String| ImportError::Model(m);
    let meta_map: HashMap<&str, &str> = proto
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let preprocess = match meta_map.get("c3d.preprocess") {
        Some(j) => serde_json::from_str::<Preprocess>(j)
            .map_err(|e| model_err(format!("metadata c3d.preprocess is not valid: {e}")))?,
        None => Preprocess::default_for(&Shape::new(shape.to_vec())),
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
    let name = crate::name::from_model(
        meta_map.get("c3d.model").copied(),
        graph_name,
        fallback_name,
    )
    .map_err(|e| model_err(format!("metadata c3d.model is not a usable name: {e}")))?;
    Ok(ModelMeta {
        name,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string(),
        preprocess,
        class_names,
        approx,
    })
}

/// The concrete input shape: the option, or the model's with a symbolic batch as 1.
fn input_shape(
    input: &pb::ValueInfoProto,
    opts: &ImportOptions,
) -> Result<Vec<usize>, ImportError> {
    if let Some(s) = &opts.input_shape {
        return Ok(s.clone());
    }
    use pb::tensor_shape_proto::dimension::Value as Dim;
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
            Some(Dim::DimValue(v)) if *v > 0 => Ok(*v as usize),
            // A symbolic batch dimension becomes 1: one clip at a time.
            Some(Dim::DimParam(_)) | None if i == 0 => Ok(1),
            _ => Err(err(format!(
                "dimension {i} is not concrete; pass --input-shape"
            ))),
        })
        .collect()
}

/// Counts the readers of each name, subgraphs (If branches) included.
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
    let mut live = HashSet::new();
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

/// Every op the frontend imports, family by family.
fn build() -> registry::OpRegistry {
    let mut reg = registry::OpRegistry::default();
    conv::register(&mut reg);
    activation::register(&mut reg);
    pool::register(&mut reg);
    linear::register(&mut reg);
    arith::register(&mut reg);
    shape::register(&mut reg);
    output::register(&mut reg);
    control::register(&mut reg);
    constant::register(&mut reg);
    reg
}

/// The registry, built once.
fn op_registry() -> &'static registry::OpRegistry {
    static REGISTRY: OnceLock<registry::OpRegistry> = OnceLock::new();
    REGISTRY.get_or_init(build)
}

#[cfg(test)]
mod tests;
