//! Ops that make constants: `Constant`, `Shape` (of video data too: the input shape is
//! concrete), `ConstantOfShape`, `Range`, `Cast`.

use super::attr::{attr, attr_i};
use super::importer::{Importer, Value};
use super::registry::OpRegistry;
use super::tensor::load_tensor;
use crate::const_fold::{ConstData, ConstTensor};
use crate::diagnostics::ImportError;
use tract_onnx::pb::NodeProto;

/// Registers the constant-making ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.any("Constant", constant);
    reg.any("Shape", shape);
    reg.fold("Cast", cast);
    reg.fold("ConstantOfShape", constant_of_shape);
    reg.fold("Range", range);
}

/// The value attribute, whichever form it takes.
fn constant(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let a = n
        .attribute
        .first()
        .ok_or_else(|| imp.bad(n, "Constant without a value"))?;
    let c = match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| imp.bad(n, "Constant value is not a tensor"))?;
            load_tensor(t, imp.dir.as_deref()).map_err(|e| imp.bad(n, e.to_string()))?
        }
        "value_int" => ConstTensor::ints(vec![], vec![a.i]),
        "value_ints" => ConstTensor::ints(vec![a.ints.len()], a.ints.clone()),
        "value_float" => ConstTensor {
            dims: vec![],
            data: ConstData::Float(vec![a.f]),
        },
        "value_floats" => ConstTensor {
            dims: vec![a.floats.len()],
            data: ConstData::Float(a.floats.clone()),
        },
        other => return Err(imp.unsupported(n, format!("Constant with `{other}`"))),
    };
    imp.set(n, Value::Const(c));
    Ok(())
}

/// The dims `start..end` of the input, which is known even for video data.
fn shape(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let s = imp.shape_of(imp.required(n, 0)?);
    let (st, en) = (attr_i(n, "start").unwrap_or(0), attr_i(n, "end"));
    let r = s.len() as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (a, b) = (fix(st), en.map_or(s.len(), fix));
    let dims: Vec<i64> = s[a..b.max(a)].iter().map(|&d| d as i64).collect();
    imp.folded.constants += 1;
    imp.set(n, Value::Const(ConstTensor::ints(vec![dims.len()], dims)));
    Ok(())
}

/// A constant converted to the ONNX element type `to` (floats truncate to integers).
fn cast(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let a = imp.required_const(n, 0)?;
    let to = attr_i(n, "to").ok_or_else(|| imp.bad(n, "Cast without `to`"))?;
    let data = match to {
        1 | 10 | 11 | 16 => ConstData::Float(a.as_f32s()),
        2..=7 | 12 | 13 => ConstData::Int(match &a.data {
            ConstData::Float(v) => v.iter().map(|&f| f.trunc() as i64).collect(),
            _ => a.as_i64s().map_err(|e| imp.bad(n, e.to_string()))?,
        }),
        9 => ConstData::Bool(a.as_f32s().iter().map(|&v| v != 0.0).collect()),
        _ => return Err(imp.unsupported(n, format!("Cast to type {to}"))),
    };
    Ok(ConstTensor { dims: a.dims, data })
}

/// A tensor of the given dims filled with the `value` attribute (default 0.0).
fn constant_of_shape(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let dims: Vec<usize> = imp
        .required_const(n, 0)?
        .as_i64s()
        .map_err(|e| imp.bad(n, e.to_string()))?
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    let len: usize = dims.iter().product();
    let v = match attr(n, "value").and_then(|a| a.t.as_ref()) {
        Some(t) => load_tensor(t, None).map_err(|e| imp.bad(n, e.to_string()))?,
        None => ConstTensor {
            dims: vec![1],
            data: ConstData::Float(vec![0.0]),
        },
    };
    let data = match v.data {
        ConstData::Float(x) => ConstData::Float(vec![x[0]; len]),
        ConstData::Int(x) => ConstData::Int(vec![x[0]; len]),
        ConstData::Bool(x) => ConstData::Bool(vec![x[0]; len]),
    };
    Ok(ConstTensor { dims, data })
}

/// start, start + delta, ... up to `limit` (exclusive; at most 2^20 elements).
fn range(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let first = |k: usize| -> Result<Vec<i64>, ImportError> {
        imp.required_const(n, k)?
            .as_i64s()
            .map_err(|e| imp.bad(n, e.to_string()))
    };
    let (s, l, d) = (first(0)?, first(1)?, first(2)?);
    let (s, l, d) = (s[0], l[0], d[0]);
    if d == 0 {
        return Err(imp.bad(n, "Range with delta 0"));
    }
    let v: Vec<i64> = std::iter::successors(Some(s), |x| Some(x + d))
        .take_while(|x| if d > 0 { *x < l } else { *x > l })
        .take(1 << 20)
        .collect();
    Ok(ConstTensor::ints(vec![v.len()], v))
}
