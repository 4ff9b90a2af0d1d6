//! Control flow resolved at compile time: `If` with a constant condition becomes its branch;
//! `Dropout` and `Identity` (inference) disappear.

use super::attr::attr;
use super::importer::{Importer, Value};
use super::registry::OpRegistry;
use super::tensor::load_tensor;
use crate::diagnostics::ImportError;
use tract_onnx::pb::NodeProto;

/// Registers the control-flow ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.any("Dropout", pass_through);
    reg.any("Identity", pass_through);
    reg.any("If", if_);
    reg.note("If", "constant condition");
}

/// The output is the input.
fn pass_through(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let v = imp.required(n, 0)?.clone();
    imp.folded.removed += 1;
    imp.set(n, v);
    Ok(())
}

/// Imports the branch the constant condition takes, in place of the node.
fn if_(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let cond = imp
        .const_input(n, 0)?
        .ok_or_else(|| imp.bad(n, "If without a condition"))?;
    let c = cond.as_bool().map_err(|e| imp.bad(n, e.to_string()))?;
    let branch = attr(n, if c { "then_branch" } else { "else_branch" })
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| imp.bad(n, "If without its branches"))?;
    for t in &branch.initializer {
        let v = load_tensor(t, imp.dir.as_deref()).map_err(|e| imp.bad(n, e.to_string()))?;
        imp.values.insert(t.name.clone(), Value::Const(v));
    }
    imp.run_nodes(&branch.node)?;
    if branch.output.len() != n.output.len() {
        return Err(imp.bad(n, "branch outputs do not match the If outputs"));
    }
    for (bo, o) in branch.output.iter().zip(&n.output) {
        let v = imp
            .values
            .get(&bo.name)
            .cloned()
            .ok_or_else(|| imp.bad(n, format!("branch output `{}` undefined", bo.name)))?;
        imp.values.insert(o.clone(), v);
    }
    imp.folded.ifs += 1;
    Ok(())
}
