//! The ops that end a classifier: `Softmax` and `ArgMax` (run by the client on its result).

use super::attr::attr_i;
use super::importer::Importer;
use super::registry::OpRegistry;
use crate::const_fold as cf;
use crate::diagnostics::ImportError;
use c3d_ir::Op;
use tract_onnx::pb::NodeProto;

/// Registers the output ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Softmax", softmax);
    reg.data("ArgMax", arg_max);
}

/// The `axis` attribute (default `def`), normalised against the input's rank.
fn axis(imp: &Importer, n: &NodeProto, rank: usize, def: i64) -> Result<usize, ImportError> {
    cf::norm_axis(attr_i(n, "axis").unwrap_or(def), rank).map_err(|e| imp.bad(n, e.to_string()))
}

/// Softmax along `axis` (default the last).
fn softmax(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let axis = axis(imp, n, imp.rank(x), -1)?;
    imp.add_as_output(n, Op::Softmax { axis }, &[x], None)?;
    Ok(())
}

/// The index of the first maximum along `axis` (default 0).
fn arg_max(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let axis = axis(imp, n, imp.rank(x), 0)?;
    if attr_i(n, "select_last_index").unwrap_or(0) != 0 {
        return Err(imp.unsupported(n, "ArgMax with select_last_index"));
    }
    let op = Op::Argmax {
        axis,
        keepdims: attr_i(n, "keepdims").unwrap_or(1) != 0,
    };
    imp.add_as_output(n, op, &[x], None)?;
    Ok(())
}
