//! The 3-D window attributes that Conv and the pools share: kernel, strides, dilations,
//! explicit pads, ceil mode.

use super::attr::{attr_i, attr_ints, attr_s};
use super::importer::Importer;
use crate::diagnostics::ImportError;
use c3d_ir::Window3d;
use tract_onnx::pb::NodeProto;

/// The node's window; the kernel comes from `kernel_from` (a Conv's weights) or else from
/// the `kernel_shape` attribute.
pub(super) fn window(
    imp: &Importer,
    n: &NodeProto,
    kernel_from: Option<&[usize]>,
) -> Result<Window3d, ImportError> {
    let k: Vec<i64> = match kernel_from {
        Some(k) => k.iter().map(|&v| v as i64).collect(),
        None => attr_ints(n, "kernel_shape").ok_or_else(|| imp.bad(n, "no kernel_shape"))?,
    };
    if k.len() != 3 {
        return Err(imp.unsupported(
            n,
            format!("{}-D window; only 3-D (D, H, W) is supported", k.len()),
        ));
    }
    let three = |name: &str, def: i64| -> Result<[usize; 3], ImportError> {
        let v = attr_ints(n, name).unwrap_or_else(|| vec![def; 3]);
        if v.len() != 3 || v.iter().any(|&x| x < 1) {
            return Err(imp.bad(n, format!("bad {name} {v:?}")));
        }
        Ok([v[0] as usize, v[1] as usize, v[2] as usize])
    };
    let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 6]);
    if pads.len() != 6 || pads.iter().any(|&p| p < 0) {
        return Err(imp.bad(n, format!("bad pads {pads:?}")));
    }
    if let Some(s) = attr_s(n, "auto_pad") {
        if s != "NOTSET" && s != "VALID" {
            return Err(imp.unsupported(n, format!("auto_pad {s}; export with explicit pads")));
        }
    }
    if attr_i(n, "storage_order").unwrap_or(0) != 0 {
        return Err(imp.unsupported(n, "storage_order 1"));
    }
    let kernel = [k[0] as usize, k[1] as usize, k[2] as usize];
    if kernel.contains(&0) {
        return Err(imp.bad(n, "zero kernel size"));
    }
    Ok(Window3d {
        kernel,
        stride: three("strides", 1)?,
        dilation: three("dilations", 1)?,
        pads: [
            (pads[0] as usize, pads[3] as usize),
            (pads[1] as usize, pads[4] as usize),
            (pads[2] as usize, pads[5] as usize),
        ],
        ceil_mode: attr_i(n, "ceil_mode").unwrap_or(0) != 0,
    })
}
