//! Convolution: `Conv` (3-D, group 1) and the `BatchNormalization` folded into the layer
//! before it.

use super::attr::{attr_f, attr_i, attr_ints};
use super::importer::{Importer, Value};
use super::registry::OpRegistry;
use super::window::window;
use crate::diagnostics::ImportError;
use c3d_ir::{Conv3dParams, Op};
use c3d_passes::fold::{fold_batchnorm, BatchNorm};
use tract_onnx::pb::NodeProto;

/// Registers the convolution ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Conv", conv);
    reg.note("Conv", "3-D, group 1");
    reg.data("BatchNormalization", batch_normalization);
}

/// A 3-D convolution with constant weights and bias.
fn conv(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let w = imp.required_const(n, 1)?;
    if attr_i(n, "group").unwrap_or(1) != 1 {
        return Err(imp.unsupported(n, "grouped convolution"));
    }
    if w.dims.len() != 5 {
        return Err(imp.unsupported(
            n,
            format!(
                "{}-D convolution; only 3-D is supported",
                w.dims.len().saturating_sub(2)
            ),
        ));
    }
    let win = window(imp, n, Some(&w.dims[2..]))?;
    if let Some(ks) = attr_ints(n, "kernel_shape") {
        if ks.iter().map(|&v| v as usize).collect::<Vec<_>>() != w.dims[2..] {
            return Err(imp.bad(n, "kernel_shape disagrees with the weights"));
        }
    }
    let (o, i) = (w.dims[0], w.dims[1]);
    let b = match imp.const_input(n, 2)? {
        Some(b) if b.len() == o => b.as_f32s(),
        Some(_) => return Err(imp.bad(n, "bias length differs from the output channels")),
        None => vec![0.0; o],
    };
    let op = Op::Conv3d(Conv3dParams {
        in_channels: i,
        out_channels: o,
        window: win,
    });
    let id = imp.add_as_output(n, op, &[x], None)?;
    imp.weights.insert(id, (w.as_f32s(), b));
    Ok(())
}

/// Inference-mode batch normalization, folded into the Conv or Gemm it follows.
fn batch_normalization(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let p: Vec<Vec<f32>> = (1..5)
        .map(|k| imp.required_const(n, k).map(|c| c.as_f32s()))
        .collect::<Result<_, _>>()?;
    let bn = BatchNorm {
        gamma: p[0].clone(),
        beta: p[1].clone(),
        mean: p[2].clone(),
        var: p[3].clone(),
        eps: attr_f(n, "epsilon").unwrap_or(1e-5),
    };
    if attr_i(n, "training_mode") == Some(1) {
        return Err(imp.unsupported(n, "BatchNormalization in training mode"));
    }
    let foldable =
        matches!(imp.graph.node(x).op, Op::Conv3d(_) | Op::Linear { .. }) && imp.only_use(n);
    if !foldable {
        return Err(imp.unsupported(
            n,
            "BatchNormalization must directly follow a Conv or Gemm whose output it alone reads",
        ));
    }
    let (w, b) = imp.weights.get_mut(&x).expect("weighted layer has weights");
    // `to_string` whatever the pass's error type: the diagnostic names this node.
    if let Err(e) = fold_batchnorm(w, b, &bn) {
        return Err(imp.bad(n, e.to_string()));
    }
    imp.folded.batchnorms += 1;
    imp.set(n, Value::Data(x));
    Ok(())
}
