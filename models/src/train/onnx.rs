//! c3d-motion as ONNX: export in PyTorch's idioms (what `c3d-models export c3d-motion`
//! writes) and the import back into a [`Net`] for fine-tuning, checked against its shapes.

use super::{features, param_dims, Net, FC6_ACT, LAYERS, POOLS};
use crate::motion::{self, FRAMES, SIZE};
use crate::onnx_builder::{Attr, OnnxBuilder};
use prost::Message;
use thiserror::Error;
use tract_onnx::pb::ModelProto;

/// Why [`Net::from_onnx`] could not read a network back.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The model has no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// A parameter of c3d-motion is missing.
    #[error("no initializer `{0}`: not a c3d-motion model")]
    Missing(String),
    /// A parameter has another shape than c3d-motion's.
    #[error("`{name}` has shape {dims:?}, c3d-motion wants {want:?}")]
    Shape {
        /// The parameter.
        name: String,
        /// Its dims in the file.
        dims: Vec<i64>,
        /// c3d-motion's dims.
        want: Vec<i64>,
    },
    /// A parameter holds another number of values than its shape.
    #[error("`{name}` holds {len} values, wants {want}")]
    Len {
        /// The parameter.
        name: String,
        /// The values in the file.
        len: usize,
        /// The values its shape wants.
        want: usize,
    },
}

impl Net {
    /// The model as ONNX, in PyTorch's export idioms, with the data set's preprocessing and
    /// class names as metadata. The squares variant records its approximated activation in
    /// `c3d.approx`, so the compiler squares it without being told.
    pub fn to_onnx(&self) -> ModelProto {
        let mut b = OnnxBuilder::new();
        let mut x = "input".to_string();
        for l in 0..3 {
            let name = LAYERS[l];
            x = b.conv3x3x3(name, &x, &self.params[2 * l], &self.params[2 * l + 1]);
            x = b.node("Relu", &format!("/{name}/Relu"), &[&x], vec![]);
            let k: Vec<i64> = POOLS[l].iter().map(|&v| v as i64).collect();
            x = b.node(
                "MaxPool",
                &format!("/pool{}/MaxPool", l + 1),
                &[&x],
                vec![
                    ("ceil_mode", Attr::Int(0)),
                    ("kernel_shape", Attr::Ints(k.clone())),
                    ("pads", Attr::Ints(vec![0; 6])),
                    ("strides", Attr::Ints(k)),
                ],
            );
        }
        let shape = b.const_i64(&[2], &[-1, features() as i64]);
        x = b.node("Reshape", "/Reshape", &[&x, &shape], vec![]);
        x = b.linear(LAYERS[3], &x, &self.params[6], &self.params[7]);
        x = b.node("Relu", FC6_ACT, &[&x], vec![]);
        x = b.linear(LAYERS[4], &x, &self.params[8], &self.params[9]);
        x = b.node("Softmax", "/Softmax", &[&x], vec![("axis", Attr::Int(1))]);
        b.metadata("c3d.preprocess", motion::preprocess_json());
        let classes: Vec<String> = motion::CLASSES.iter().map(|c| format!("\"{c}\"")).collect();
        b.metadata("c3d.classes", format!("[{}]", classes.join(",")));
        b.metadata("c3d.model", "c3d-motion".into());
        if self.square_fc6 {
            b.metadata("c3d.approx", format!("[\"{FC6_ACT}\"]"));
        }
        let input = [1, 3, FRAMES as i64, SIZE as i64, SIZE as i64];
        let classes = motion::CLASSES.len() as i64;
        b.finish("c3d-motion", ("input", &input), (&x, &[1, classes]))
    }

    /// Reads the parameters back from an ONNX file written by [`Net::to_onnx`].
    pub fn from_onnx(bytes: &[u8]) -> Result<Net, ReadError> {
        let m = ModelProto::decode(bytes)?;
        let g = m.graph.as_ref().ok_or(ReadError::NoGraph)?;
        let mut params = Vec::new();
        for (i, dims) in param_dims().iter().enumerate() {
            let name = format!(
                "{}.{}",
                LAYERS[i / 2],
                if i % 2 == 0 { "weight" } else { "bias" }
            );
            let t = g
                .initializer
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| ReadError::Missing(name.clone()))?;
            let want: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            if t.dims != want {
                return Err(ReadError::Shape {
                    name,
                    dims: t.dims.clone(),
                    want,
                });
            }
            let n: usize = dims.iter().product();
            let v: Vec<f32> = if !t.float_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            if v.len() != n {
                return Err(ReadError::Len {
                    name,
                    len: v.len(),
                    want: n,
                });
            }
            params.push(v);
        }
        let square_fc6 = m
            .metadata_props
            .iter()
            .any(|p| p.key == "c3d.approx" && p.value.contains(FC6_ACT));
        Ok(Net { params, square_fc6 })
    }
}
