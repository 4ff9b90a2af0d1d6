//! Fully connected layers: `Gemm` (alpha, beta, transB) and `MatMul` by a constant matrix
//! (its `Add` bias folds in `arith`).

use super::attr::{attr_f, attr_i};
use super::importer::Importer;
use super::registry::OpRegistry;
use crate::const_fold as cf;
use crate::diagnostics::ImportError;
use c3d_ir::{NodeId, Op};
use tract_onnx::pb::NodeProto;

/// Registers the fully connected layers.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Gemm", gemm);
    reg.data("MatMul", mat_mul);
    reg.note("MatMul", "+ Add");
}

/// alpha x W^T + beta b, with W constant.
fn gemm(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let w = imp.required_const(n, 1)?;
    if attr_i(n, "transA").unwrap_or(0) != 0 {
        return Err(imp.unsupported(n, "Gemm with transA"));
    }
    let alpha = attr_f(n, "alpha").unwrap_or(1.0);
    let beta = attr_f(n, "beta").unwrap_or(1.0);
    let wt = if attr_i(n, "transB").unwrap_or(0) != 0 {
        w
    } else {
        cf::transpose(&w, None).map_err(|e| imp.bad(n, e.to_string()))?
    };
    if wt.dims.len() != 2 {
        return Err(imp.bad(n, "Gemm weights are not a matrix"));
    }
    let (o, i) = (wt.dims[0], wt.dims[1]);
    let b = match imp.const_input(n, 2)? {
        Some(b) if b.len() == o => b.as_f32s().iter().map(|v| v * beta).collect(),
        Some(b) if b.len() == 1 => vec![b.as_f32s()[0] * beta; o],
        Some(_) => return Err(imp.bad(n, "Gemm bias does not broadcast to the outputs")),
        None => vec![0.0; o],
    };
    let wv: Vec<f32> = wt.as_f32s().iter().map(|v| v * alpha).collect();
    add_linear(imp, n, x, (o, i), wv, b)
}

/// x W with W a constant matrix; no bias until an `Add` supplies one.
fn mat_mul(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let w = imp.required_const(n, 1)?;
    if w.dims.len() != 2 {
        return Err(imp.unsupported(n, "MatMul with a non-matrix right operand"));
    }
    let wt = cf::transpose(&w, None).map_err(|e| imp.bad(n, e.to_string()))?;
    let (o, i) = (wt.dims[0], wt.dims[1]);
    add_linear(imp, n, x, (o, i), wt.as_f32s(), vec![0.0; o])
}

/// Adds a fully connected layer with (out, in) weights and its bias.
fn add_linear(
    imp: &mut Importer,
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
    let id = imp.add_as_output(n, op, &[x], None)?;
    imp.weights.insert(id, (w, b));
    Ok(())
}
