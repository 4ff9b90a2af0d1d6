//! Activations: `Relu` (garbled, or squared where the model asks for x^2).

use super::importer::Importer;
use super::registry::OpRegistry;
use crate::diagnostics::ImportError;
use c3d_ir::Op;
use tract_onnx::pb::NodeProto;

/// Registers the activations.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Relu", relu);
}

/// max(0, x), elementwise.
fn relu(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    imp.add_as_output(n, Op::Relu, &[x], None)?;
    Ok(())
}
