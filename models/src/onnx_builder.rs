//! A small writer of ONNX graphs in the shape PyTorch's exporter gives them: scoped node
//! names (`/features/conv1a/Conv`), `Constant` nodes for integer operands, dynamic padding
//! computed from `Shape` through `Pad`, opset 17.

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Opset the writer targets (PyTorch 2.x's default).
pub const OPSET: i64 = 17;

/// An attribute value.
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
    /// A string.
    Str(&'static str),
    /// A tensor.
    Tensor(TensorProto),
    /// A subgraph.
    Graph(GraphProto),
}

fn attr(name: &str, a: Attr) -> AttributeProto {
    let mut p = AttributeProto {
        name: name.into(),
        ..Default::default()
    };
    match a {
        Attr::Int(i) => {
            p.i = i;
            p.r#type = AttributeType::Int as i32;
        }
        Attr::Ints(v) => {
            p.ints = v;
            p.r#type = AttributeType::Ints as i32;
        }
        Attr::Float(f) => {
            p.f = f;
            p.r#type = AttributeType::Float as i32;
        }
        Attr::Str(s) => {
            p.s = s.as_bytes().to_vec();
            p.r#type = AttributeType::String as i32;
        }
        Attr::Tensor(t) => {
            p.t = Some(t);
            p.r#type = AttributeType::Tensor as i32;
        }
        Attr::Graph(g) => {
            p.g = Some(g);
            p.r#type = AttributeType::Graph as i32;
        }
    }
    p
}

/// A float tensor stored as raw little-endian bytes, as PyTorch writes initializers.
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 tensor stored as raw bytes.
pub fn tensor_i64(dims: &[usize], data: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A bool scalar tensor.
pub fn tensor_bool(v: bool) -> TensorProto {
    TensorProto {
        dims: vec![],
        data_type: DataType::Bool as i32,
        raw_data: vec![v as u8],
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64], dyn_batch: bool) -> ValueInfoProto {
    let dim = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(if i == 0 && dyn_batch {
                tensor_shape_proto::dimension::Value::DimParam("batch".into())
            } else {
                tensor_shape_proto::dimension::Value::DimValue(d)
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

/// Accumulates nodes and initializers of one graph.
#[derive(Default)]
pub struct OnnxBuilder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    consts: usize,
    meta: Vec<(String, String)>,
}

impl OnnxBuilder {
    /// A new, empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node named `name` (its output is `name_output_0`); returns the output name.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = format!("{name}_output_0");
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: name.into(),
            op_type: op.into(),
            attribute: attrs.into_iter().map(|(n, a)| attr(n, a)).collect(),
            ..Default::default()
        });
        out
    }

    /// Adds a float initializer (a parameter such as `features.conv1a.weight`).
    pub fn param(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.inits.push(tensor_f32(name, dims, data));
        name.into()
    }

    /// `nn.Conv3d(kernel_size=3, padding=1)` as PyTorch exports it: parameters `{name}.weight`
    /// (C_out, C_in, 3, 3, 3) and `{name}.bias`, node `/{name}/Conv`; returns its output.
    pub fn conv3x3x3(&mut self, name: &str, x: &str, weight: &[f32], bias: &[f32]) -> String {
        let (out, cin) = (bias.len(), weight.len() / (27 * bias.len().max(1)));
        let w = self.param(&format!("{name}.weight"), &[out, cin, 3, 3, 3], weight);
        let b = self.param(&format!("{name}.bias"), &[out], bias);
        self.node(
            "Conv",
            &format!("/{name}/Conv"),
            &[x, &w, &b],
            vec![
                ("dilations", Attr::Ints(vec![1, 1, 1])),
                ("group", Attr::Int(1)),
                ("kernel_shape", Attr::Ints(vec![3, 3, 3])),
                ("pads", Attr::Ints(vec![1; 6])),
                ("strides", Attr::Ints(vec![1, 1, 1])),
            ],
        )
    }

    /// `nn.Linear` as PyTorch exports it: parameters `{name}.weight` (out, in) and
    /// `{name}.bias`, node `/{name}/Gemm` with transB; returns its output.
    pub fn linear(&mut self, name: &str, x: &str, weight: &[f32], bias: &[f32]) -> String {
        let (out, inp) = (bias.len(), weight.len() / bias.len().max(1));
        let w = self.param(&format!("{name}.weight"), &[out, inp], weight);
        let b = self.param(&format!("{name}.bias"), &[out], bias);
        self.node(
            "Gemm",
            &format!("/{name}/Gemm"),
            &[x, &w, &b],
            vec![
                ("alpha", Attr::Float(1.0)),
                ("beta", Attr::Float(1.0)),
                ("transB", Attr::Int(1)),
            ],
        )
    }

    /// Adds a `Constant` node holding int64 values (scalar when `dims` is empty).
    pub fn const_i64(&mut self, dims: &[usize], data: &[i64]) -> String {
        self.consts += 1;
        let name = format!("/Constant_{}", self.consts);
        self.node(
            "Constant",
            &name,
            &[],
            vec![("value", Attr::Tensor(tensor_i64(dims, data)))],
        )
    }

    /// Adds a `Constant` float scalar.
    pub fn const_f32(&mut self, v: f32) -> String {
        self.consts += 1;
        let name = format!("/Constant_{}", self.consts);
        self.node(
            "Constant",
            &name,
            &[],
            vec![("value", Attr::Tensor(tensor_f32("", &[], &[v])))],
        )
    }

    /// Records a metadata property of the model.
    pub fn metadata(&mut self, key: &str, value: String) {
        self.meta.push((key.into(), value));
    }

    /// Zero padding of a 5-D tensor to "SAME" output size, computed the way a traced
    /// `F.pad(x, compute_pad(x.size()))` exports: pads derived from `Shape` at run time, then
    /// PyTorch's reordering chain (ConstantOfShape, Concat, Reshape, reversed Slice,
    /// Transpose, Reshape, Cast) into ONNX's begin/end layout.
    pub fn same_pad(
        &mut self,
        scope: &str,
        x: &str,
        kernel: [usize; 3],
        stride: [usize; 3],
    ) -> String {
        let shape = self.node("Shape", &format!("{scope}/Shape"), &[x], vec![]);
        let mut fronts_backs = Vec::new();
        for (a, (&k, &s)) in kernel.iter().zip(&stride).enumerate() {
            let sc = format!("{scope}/dim{a}");
            let idx = self.const_i64(&[], &[(a + 2) as i64]);
            let dim = self.node(
                "Gather",
                &format!("{sc}/Gather"),
                &[&shape, &idx],
                vec![("axis", Attr::Int(0))],
            );
            let sv = self.const_i64(&[], &[s as i64]);
            let rem = self.node("Mod", &format!("{sc}/Mod"), &[&dim, &sv], vec![]);
            let zero = self.const_i64(&[], &[0]);
            let is0 = self.node("Equal", &format!("{sc}/Equal"), &[&rem, &zero], vec![]);
            let kv = self.const_i64(&[], &[k as i64]);
            let k_s = self.node("Sub", &format!("{sc}/Sub"), &[&kv, &sv], vec![]);
            let k_r = self.node("Sub", &format!("{sc}/Sub_1"), &[&kv, &rem], vec![]);
            let need = self.node("Where", &format!("{sc}/Where"), &[&is0, &k_s, &k_r], vec![]);
            let need = self.node("Max", &format!("{sc}/Max"), &[&need, &zero], vec![]);
            let two = self.const_i64(&[], &[2]);
            let front = self.node("Div", &format!("{sc}/Div"), &[&need, &two], vec![]);
            let back = self.node("Sub", &format!("{sc}/Sub_2"), &[&need, &front], vec![]);
            let ax = self.const_i64(&[1], &[0]);
            let f1 = self.node(
                "Unsqueeze",
                &format!("{sc}/Unsqueeze"),
                &[&front, &ax],
                vec![],
            );
            let b1 = self.node(
                "Unsqueeze",
                &format!("{sc}/Unsqueeze_1"),
                &[&back, &ax],
                vec![],
            );
            fronts_backs.push((f1, b1));
        }
        // F.pad order: last dim first: (w0, w1, h0, h1, d0, d1).
        let order: Vec<&str> = fronts_backs
            .iter()
            .rev()
            .flat_map(|(f, b)| [f.as_str(), b.as_str()])
            .collect();
        let pad = self.node(
            "Concat",
            &format!("{scope}/Concat"),
            &order,
            vec![("axis", Attr::Int(0))],
        );
        let pad = self.node(
            "Cast",
            &format!("{scope}/Cast"),
            &[&pad],
            vec![("to", Attr::Int(7))],
        );
        let ext = self.const_i64(&[1], &[4]);
        let zeros = self.node(
            "ConstantOfShape",
            &format!("{scope}/ConstantOfShape"),
            &[&ext],
            vec![("value", Attr::Tensor(tensor_i64(&[1], &[0])))],
        );
        let all = self.node(
            "Concat",
            &format!("{scope}/Concat_1"),
            &[&pad, &zeros],
            vec![("axis", Attr::Int(0))],
        );
        let m12 = self.const_i64(&[2], &[-1, 2]);
        let r = self.node(
            "Reshape",
            &format!("{scope}/Reshape"),
            &[&all, &m12],
            vec![],
        );
        let st = self.const_i64(&[1], &[-1]);
        let en = self.const_i64(&[1], &[-9223372036854775807]);
        let axs = self.const_i64(&[1], &[0]);
        let stp = self.const_i64(&[1], &[-1]);
        let flip = self.node(
            "Slice",
            &format!("{scope}/Slice"),
            &[&r, &st, &en, &axs, &stp],
            vec![],
        );
        let tr = self.node(
            "Transpose",
            &format!("{scope}/Transpose"),
            &[&flip],
            vec![("perm", Attr::Ints(vec![1, 0]))],
        );
        let m1 = self.const_i64(&[1], &[-1]);
        let flat = self.node(
            "Reshape",
            &format!("{scope}/Reshape_1"),
            &[&tr, &m1],
            vec![],
        );
        let pads = self.node(
            "Cast",
            &format!("{scope}/Cast_1"),
            &[&flat],
            vec![("to", Attr::Int(7))],
        );
        let val = self.const_f32(0.0);
        self.node(
            "Pad",
            &format!("{scope}/Pad"),
            &[x, &pads, &val],
            vec![("mode", Attr::Str("constant"))],
        )
    }

    /// Finishes a subgraph (for `If` branches): no inputs, the given outputs.
    pub fn into_subgraph(self, name: &str, outputs: &[(&str, &[i64])]) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.inits,
            output: outputs
                .iter()
                .map(|(n, d)| value_info(n, d, false))
                .collect(),
            ..Default::default()
        }
    }

    /// Finishes the model with one input and one output.
    pub fn finish(self, name: &str, input: (&str, &[i64]), output: (&str, &[i64])) -> ModelProto {
        let graph = GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.inits,
            input: vec![value_info(input.0, input.1, true)],
            output: vec![value_info(output.0, output.1, true)],
            ..Default::default()
        };
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            producer_name: "pytorch".into(),
            producer_version: "2.5.0 (c3d-models)".into(),
            graph: Some(graph),
            metadata_props: self
                .meta
                .into_iter()
                .map(|(key, value)| StringStringEntryProto { key, value })
                .collect(),
            ..Default::default()
        }
    }
}

/// Serializes a model to ONNX bytes.
pub fn to_bytes(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}
