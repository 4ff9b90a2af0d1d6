//! Float evaluation of an imported model (weights not yet quantized). Used for calibration;
//! tests check it against tract's inference of the original ONNX.

use crate::error::{IrError, Result};
use crate::exec::run_graph;
use crate::graph::{Graph, Node, NodeId};
use crate::kernels::{self, Tensor};
use crate::op::Op;
use crate::plan::ModelMeta;
use std::collections::BTreeMap;

/// Float weights and biases by node, in the op's weight layout.
pub type FloatWeights = BTreeMap<NodeId, (Vec<f32>, Vec<f32>)>;

/// An imported model: graph, float weights and public metadata.
#[derive(Clone, Debug)]
pub struct Model {
    /// The graph.
    pub graph: Graph,
    /// Float weights of the layers that have them.
    pub weights: FloatWeights,
    /// Name, preprocessing, classes.
    pub meta: ModelMeta,
}

/// Softmax along `axis`.
pub fn softmax(x: &[f32], shape: &crate::Shape, axis: usize) -> Vec<f32> {
    let dims = shape.dims();
    let inner: usize = dims[axis + 1..].iter().product();
    let len = dims[axis];
    let outer: usize = dims[..axis].iter().product();
    let mut y = x.to_vec();
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| (o * len + k) * inner + i;
            let m = (0..len)
                .map(|k| x[idx(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = (0..len).map(|k| ((x[idx(k)] - m) as f64).exp()).sum();
            for k in 0..len {
                y[idx(k)] = (((x[idx(k)] - m) as f64).exp() / s) as f32;
            }
        }
    }
    y
}

/// Index of the maximum along `axis` (first one on ties), as floats.
pub fn argmax(x: &[f32], shape: &crate::Shape, axis: usize) -> Vec<f32> {
    let dims = shape.dims();
    let inner: usize = dims[axis + 1..].iter().product();
    let len = dims[axis];
    let outer: usize = dims[..axis].iter().product();
    let mut y = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for k in 1..len {
                if x[(o * len + k) * inner + i] > x[(o * len + best) * inner + i] {
                    best = k;
                }
            }
            y.push(best as f32);
        }
    }
    y
}

/// The client-side output ops, shared by both evaluators (they run on plain floats).
pub fn client_op(op: &Op, x: &Tensor<f32>, out: &crate::Shape) -> Option<Tensor<f32>> {
    match op {
        Op::Softmax { axis } => Some(Tensor::new(out.clone(), softmax(&x.data, &x.shape, *axis))),
        Op::Argmax { axis, .. } => Some(Tensor::new(out.clone(), argmax(&x.data, &x.shape, *axis))),
        _ => None,
    }
}

fn missing(node: &Node) -> IrError {
    IrError::Weights(format!("no float weights for `{}`", node.name))
}

/// Evaluates the model in f32. `observe` sees every node's output (for range analysis).
pub fn eval_float(
    model: &Model,
    input: Tensor<f32>,
    mut observe: impl FnMut(NodeId, &Tensor<f32>),
) -> Result<Tensor<f32>> {
    let g = &model.graph;
    observe(g.io()?.0, &input);
    run_graph(g, input, |id, node, ins| {
        let out = &node.shape;
        let x = ins[0];
        let t = match &node.op {
            Op::Input => unreachable!("input is not stepped"),
            Op::Conv3d(p) => {
                let (w, b) = model.weights.get(&id).ok_or_else(|| missing(node))?;
                let mut y = kernels::conv3d(&x.data, &x.shape, w, p, out);
                let plane = y.len() / (out.dims()[0] * p.out_channels);
                for (i, v) in y.iter_mut().enumerate() {
                    *v += b[(i / plane) % p.out_channels];
                }
                Tensor::new(out.clone(), y)
            }
            Op::Linear {
                in_features,
                out_features,
            } => {
                let (w, b) = model.weights.get(&id).ok_or_else(|| missing(node))?;
                let n = x.shape.dims()[0];
                let mut y = kernels::linear(&x.data, n, w, *in_features, *out_features);
                for (i, v) in y.iter_mut().enumerate() {
                    *v += b[i % out_features];
                }
                Tensor::new(out.clone(), y)
            }
            Op::MaxPool3d(win) => Tensor::new(
                out.clone(),
                kernels::pool3d(&x.data, &x.shape, win, out, |it, _| {
                    it.fold(f32::NEG_INFINITY, f32::max)
                }),
            ),
            Op::MaxPoolRelu3d(win) => Tensor::new(
                out.clone(),
                kernels::pool3d(&x.data, &x.shape, win, out, |it, _| it.fold(0.0, f32::max)),
            ),
            Op::AvgPool3d {
                window,
                count_include_pad,
            } => Tensor::new(
                out.clone(),
                kernels::pool3d(&x.data, &x.shape, window, out, |it, padded| {
                    let (s, n) = it.fold((0f32, 0usize), |(s, n), v| (s + v, n + 1));
                    s / if *count_include_pad { padded } else { n } as f32
                }),
            ),
            Op::Relu => x.map(|v| v.max(0.0)),
            Op::Reshape => Tensor::new(out.clone(), x.data.clone()),
            Op::Concat { axis } => {
                let parts: Vec<(&[f32], &crate::Shape)> =
                    ins.iter().map(|t| (&t.data[..], &t.shape)).collect();
                Tensor::new(out.clone(), kernels::concat(&parts, *axis, out))
            }
            Op::Add => Tensor::new(
                out.clone(),
                x.data
                    .iter()
                    .zip(&ins[1].data)
                    .map(|(a, b)| a + b)
                    .collect(),
            ),
            Op::Pad { pads } => {
                Tensor::new(out.clone(), kernels::pad(&x.data, &x.shape, pads, out, 0.0))
            }
            Op::Mean { axes, .. } => {
                let (s, n) = kernels::sum_axes(&x.data, &x.shape, axes);
                Tensor::new(out.clone(), s.into_iter().map(|v| v / n as f32).collect())
            }
            Op::Softmax { .. } | Op::Argmax { .. } => {
                client_op(&node.op, x, out).expect("client op")
            }
        };
        observe(id, &t);
        Ok(t)
    })
}
