//! Layout ops: the reshapes (`Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`), `Concat` and
//! zero `Pad` on video data or constants; `Transpose`, `Gather` and `Slice` on constants.

use super::attr::{attr_i, attr_ints, attr_s};
use super::importer::Importer;
use super::registry::OpRegistry;
use crate::const_fold::{self as cf, ConstTensor};
use crate::diagnostics::ImportError;
use c3d_ir::{NodeId, Op, Shape};
use tract_onnx::pb::NodeProto;

/// Registers the layout ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Concat", concat_data);
    reg.fold("Concat", concat_fold);
    reg.data("Pad", pad);
    reg.note("Pad", "constant 0");
    // A reshape changes the dims only, so one target function serves data and constants.
    reg.data("Flatten", |imp, n| reshape_data(imp, n, flatten_target));
    reg.fold("Flatten", |imp, n| reshape_fold(imp, n, flatten_target));
    reg.data("Reshape", |imp, n| reshape_data(imp, n, reshape_target));
    reg.fold("Reshape", |imp, n| reshape_fold(imp, n, reshape_target));
    reg.data("Squeeze", |imp, n| reshape_data(imp, n, squeeze_target));
    reg.fold("Squeeze", |imp, n| reshape_fold(imp, n, squeeze_target));
    reg.data("Unsqueeze", |imp, n| reshape_data(imp, n, unsqueeze_target));
    reg.fold("Unsqueeze", |imp, n| reshape_fold(imp, n, unsqueeze_target));
    reg.fold("Transpose", transpose);
    reg.fold("Gather", gather);
    reg.fold("Slice", slice);
}

/// The dims a reshape-like node gives an input of `dims`.
type TargetFn = fn(&Importer, &NodeProto, &[usize]) -> Result<Vec<usize>, ImportError>;

/// A reshape of video data.
fn reshape_data(imp: &mut Importer, n: &NodeProto, target: TargetFn) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let dims = imp.graph.node(x).shape.dims().to_vec();
    let t = target(imp, n, &dims)?;
    imp.add_as_output(n, Op::Reshape, &[x], Some(Shape::new(t)))?;
    Ok(())
}

/// A reshape of a constant.
fn reshape_fold(
    imp: &Importer,
    n: &NodeProto,
    target: TargetFn,
) -> Result<ConstTensor, ImportError> {
    let mut a = imp.required_const(n, 0)?;
    a.dims = target(imp, n, &a.dims)?;
    Ok(a)
}

/// `Reshape` to the constant shape input (0 copies, -1 is inferred).
fn reshape_target(
    imp: &Importer,
    n: &NodeProto,
    dims: &[usize],
) -> Result<Vec<usize>, ImportError> {
    let e = |e: cf::FoldError| imp.bad(n, e.to_string());
    let t = imp.required_const(n, 1)?.as_i64s().map_err(e)?;
    cf::reshape_dims(dims, &t, attr_i(n, "allowzero") == Some(1)).map_err(e)
}

/// `Flatten` at `axis` (default 1) into a matrix.
fn flatten_target(
    imp: &Importer,
    n: &NodeProto,
    dims: &[usize],
) -> Result<Vec<usize>, ImportError> {
    let a = attr_i(n, "axis").unwrap_or(1);
    let a = if a < 0 { a + dims.len() as i64 } else { a };
    if a < 0 || a as usize > dims.len() {
        return Err(imp.bad(n, format!("Flatten axis {a} out of range")));
    }
    let a = a as usize;
    Ok(vec![dims[..a].iter().product(), dims[a..].iter().product()])
}

/// The axes of `Squeeze`/`Unsqueeze`: input 1 (opset 13) or the attribute.
fn axes(imp: &Importer, n: &NodeProto) -> Result<Vec<i64>, ImportError> {
    match imp.const_input(n, 1)? {
        Some(c) => c.as_i64s().map_err(|e| imp.bad(n, e.to_string())),
        None => Ok(attr_ints(n, "axes").unwrap_or_default()),
    }
}

/// `Squeeze` of the given length-1 axes (all of them by default).
fn squeeze_target(
    imp: &Importer,
    n: &NodeProto,
    dims: &[usize],
) -> Result<Vec<usize>, ImportError> {
    cf::squeeze_dims(dims, &axes(imp, n)?).map_err(|e| imp.bad(n, e.to_string()))
}

/// `Unsqueeze` with new length-1 axes.
fn unsqueeze_target(
    imp: &Importer,
    n: &NodeProto,
    dims: &[usize],
) -> Result<Vec<usize>, ImportError> {
    cf::unsqueeze_dims(dims, &axes(imp, n)?).map_err(|e| imp.bad(n, e.to_string()))
}

/// `Concat` of video tensors along `axis`.
fn concat_data(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let ins: Vec<NodeId> = (0..n.input.len())
        .map(|k| imp.data_input(n, k))
        .collect::<Result<_, _>>()?;
    let rank = imp.rank(ins[0]);
    let axis = cf::norm_axis(attr_i(n, "axis").unwrap_or(0), rank)
        .map_err(|e| imp.bad(n, e.to_string()))?;
    imp.add_as_output(n, Op::Concat { axis }, &ins, None)?;
    Ok(())
}

/// `Concat` of constants along `axis`.
fn concat_fold(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let parts: Vec<ConstTensor> = (0..n.input.len())
        .map(|k| imp.required_const(n, k))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&ConstTensor> = parts.iter().collect();
    cf::concat(&refs, attr_i(n, "axis").unwrap_or(0)).map_err(|e| imp.bad(n, e.to_string()))
}

/// Zero padding of video data, pads from input 1 (opset 11) or the attribute.
fn pad(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(imp.unsupported(
            n,
            format!("Pad mode `{mode}`; only zero padding is supported"),
        ));
    }
    let rank = imp.rank(x);
    let pads = match imp.const_input(n, 1)? {
        Some(p) => p.as_i64s().map_err(|e| imp.bad(n, e.to_string()))?,
        None => attr_ints(n, "pads").ok_or_else(|| imp.bad(n, "Pad without pads"))?,
    };
    if let Some(v) = imp.const_input(n, 2)? {
        if v.as_f32s().iter().any(|&x| x != 0.0) {
            return Err(imp.unsupported(n, "Pad with a non-zero value"));
        }
    }
    if imp.input(n, 3)?.is_some() {
        return Err(imp.unsupported(n, "Pad with explicit axes"));
    }
    if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
        return Err(imp.unsupported(
            n,
            format!("pads {pads:?} (negative pads crop, which is not supported)"),
        ));
    }
    let pads: Vec<(usize, usize)> = (0..rank)
        .map(|a| (pads[a] as usize, pads[a + rank] as usize))
        .collect();
    imp.add_as_output(n, Op::Pad { pads }, &[x], None)?;
    Ok(())
}

/// `Transpose` of a constant (reversed axes by default).
fn transpose(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let a = imp.required_const(n, 0)?;
    cf::transpose(&a, attr_ints(n, "perm").as_deref()).map_err(|e| imp.bad(n, e.to_string()))
}

/// `Gather` on constants (the dims of a `Shape`, usually).
fn gather(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let (data, idx) = (imp.required_const(n, 0)?, imp.required_const(n, 1)?);
    cf::gather(&data, &idx, attr_i(n, "axis").unwrap_or(0)).map_err(|e| imp.bad(n, e.to_string()))
}

/// `Slice` of a constant, with optional axes and steps (negative steps included).
fn slice(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let e = |e: cf::FoldError| imp.bad(n, e.to_string());
    let data = imp.required_const(n, 0)?;
    let st = imp.required_const(n, 1)?.as_i64s().map_err(e)?;
    let en = imp.required_const(n, 2)?.as_i64s().map_err(e)?;
    let ax = imp
        .const_input(n, 3)?
        .map(|a| a.as_i64s())
        .transpose()
        .map_err(e)?;
    let sp = imp
        .const_input(n, 4)?
        .map(|a| a.as_i64s())
        .transpose()
        .map_err(e)?;
    cf::slice(&data, &st, &en, ax.as_deref(), sp.as_deref()).map_err(e)
}
