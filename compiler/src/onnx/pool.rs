//! Pools and means: `MaxPool`, `AveragePool`, `GlobalAveragePool`, `ReduceMean`.

use super::attr::{attr_i, attr_ints};
use super::importer::Importer;
use super::registry::OpRegistry;
use super::window::window;
use crate::const_fold as cf;
use crate::diagnostics::ImportError;
use c3d_ir::Op;
use tract_onnx::pb::NodeProto;

/// Registers the pools and means.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("MaxPool", max_pool);
    reg.data("AveragePool", average_pool);
    reg.data("GlobalAveragePool", global_average_pool);
    reg.data("ReduceMean", reduce_mean);
}

/// The max over each 3-D window (no indices output).
fn max_pool(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    if n.output.len() > 1 && n.output[1..].iter().any(|o| !o.is_empty()) {
        return Err(imp.unsupported(n, "MaxPool with an indices output"));
    }
    let win = window(imp, n, None)?;
    imp.add_as_output(n, Op::MaxPool3d(win), &[x], None)?;
    Ok(())
}

/// The mean over each 3-D window, undilated.
fn average_pool(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let win = window(imp, n, None)?;
    if win.dilation != [1; 3] {
        return Err(imp.unsupported(n, "dilated AveragePool"));
    }
    let op = Op::AvgPool3d {
        window: win,
        count_include_pad: attr_i(n, "count_include_pad").unwrap_or(0) != 0,
    };
    imp.add_as_output(n, op, &[x], None)?;
    Ok(())
}

/// The mean over D, H and W, kept as 1 x 1 x 1.
fn global_average_pool(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let op = Op::Mean {
        axes: vec![2, 3, 4],
        keepdims: true,
    };
    imp.add_as_output(n, op, &[x], None)?;
    Ok(())
}

/// The mean over the given axes (all by default), never the batch axis.
fn reduce_mean(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let x = imp.data_input(n, 0)?;
    let rank = imp.rank(x);
    let axes: Vec<i64> = match imp.const_input(n, 1)? {
        Some(c) => c.as_i64s().map_err(|e| imp.bad(n, e.to_string()))?,
        None => attr_ints(n, "axes").unwrap_or_else(|| (0..rank as i64).collect()),
    };
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| cf::norm_axis(a, rank))
        .collect::<Result<_, _>>()
        .map_err(|e| imp.bad(n, e.to_string()))?;
    axes.sort_unstable();
    axes.dedup();
    if axes.contains(&0) {
        return Err(imp.unsupported(n, "mean over the batch axis"));
    }
    let op = Op::Mean {
        axes,
        keepdims: attr_i(n, "keepdims").unwrap_or(1) != 0,
    };
    imp.add_as_output(n, op, &[x], None)?;
    Ok(())
}
