//! Arithmetic: the elementwise ops evaluated on constants (shape arithmetic, comparisons,
//! logic, `Where`), and `Add` on video data (two tensors, or a bias folded into the layer
//! before).

use super::attr::attr_i;
use super::importer::{Importer, Value};
use super::registry::OpRegistry;
use crate::const_fold::{self as cf, ConstData, ConstTensor};
use crate::diagnostics::ImportError;
use c3d_ir::{NodeId, Op};
use tract_onnx::pb::NodeProto;

/// The variadic or binary elementwise ops `const_fold::binary` evaluates, by ONNX name.
const ELEMENTWISE: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Pow", "Equal", "Less", "Greater", "And",
    "Or", "Xor",
];

/// Registers the arithmetic ops.
pub(super) fn register(reg: &mut OpRegistry) {
    reg.data("Add", add);
    for &op in ELEMENTWISE {
        reg.fold(op, elementwise);
    }
    reg.fold("Where", where_);
    reg.fold("Not", not);
    reg.fold("Neg", neg);
}

/// A scalar constant.
fn scalar(data: ConstData) -> ConstTensor {
    ConstTensor { dims: vec![], data }
}

/// A binary op of `const_fold`, on the node's constant inputs.
fn binary(
    imp: &Importer,
    n: &NodeProto,
    op: &str,
    a: &ConstTensor,
    b: &ConstTensor,
) -> Result<ConstTensor, ImportError> {
    cf::binary(op, a, b).map_err(|e| imp.bad(n, e.to_string()))
}

/// The elementwise op named by the node, folded left over its inputs, with broadcasting.
fn elementwise(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let op = n.op_type.as_str();
    if op == "Mod" && attr_i(n, "fmod") == Some(1) {
        return Err(imp.unsupported(n, "Mod with fmod=1"));
    }
    let mut acc = imp.required_const(n, 0)?;
    for k in 1..n.input.len() {
        acc = binary(imp, n, op, &acc, &imp.required_const(n, k)?)?;
    }
    Ok(acc)
}

/// Logical not, as xor with true.
fn not(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let a = imp.required_const(n, 0)?;
    binary(imp, n, "Xor", &a, &scalar(ConstData::Bool(vec![true])))
}

/// Negation, as 0 - x.
fn neg(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let a = imp.required_const(n, 0)?;
    let zero = match a.data {
        ConstData::Float(_) => scalar(ConstData::Float(vec![0.0])),
        _ => ConstTensor::ints(vec![], vec![0]),
    };
    binary(imp, n, "Sub", &zero, &a)
}

/// `cond ? a : b`, elementwise with broadcasting.
fn where_(imp: &Importer, n: &NodeProto) -> Result<ConstTensor, ImportError> {
    let (cond, a, b) = (
        imp.required_const(n, 0)?,
        imp.required_const(n, 1)?,
        imp.required_const(n, 2)?,
    );
    let ca = binary(imp, n, "Equal", &cond, &scalar(ConstData::Bool(vec![true])))?;
    // where = a * cond + b * !cond, on integers or floats like `a`.
    let to_num = |x: &ConstTensor, like: &ConstTensor| match like.data {
        ConstData::Float(_) => ConstTensor {
            dims: x.dims.clone(),
            data: ConstData::Float(x.as_f32s()),
        },
        _ => ConstTensor::ints(x.dims.clone(), x.as_i64s().unwrap_or_default()),
    };
    let one = to_num(&ConstTensor::ints(vec![], vec![1]), &a);
    let cn = to_num(&ca, &a);
    let ncn = binary(imp, n, "Sub", &one, &cn)?;
    let l = binary(imp, n, "Mul", &a, &cn)?;
    let r = binary(imp, n, "Mul", &b, &ncn)?;
    binary(imp, n, "Add", &l, &r)
}

/// `Add` on video data: of two tensors, or of a per-channel constant to a layer's output.
fn add(imp: &mut Importer, n: &NodeProto) -> Result<(), ImportError> {
    let (a, b) = (imp.required(n, 0)?.clone(), imp.required(n, 1)?.clone());
    match (a, b) {
        (Value::Data(x), Value::Data(y)) => {
            imp.add_as_output(n, Op::Add, &[x, y], None)?;
        }
        (Value::Data(x), Value::Const(c)) | (Value::Const(c), Value::Data(x)) => {
            fold_bias(imp, n, x, &c)?;
            imp.set(n, Value::Data(x));
        }
        _ => unreachable!("constant Add folds earlier"),
    }
    Ok(())
}

/// `layer + constant`: folds a per-channel constant into the bias of the layer before.
fn fold_bias(
    imp: &mut Importer,
    n: &NodeProto,
    x: NodeId,
    c: &ConstTensor,
) -> Result<(), ImportError> {
    let node = imp.graph.node(x);
    let channels = match &node.op {
        Op::Conv3d(p) => p.out_channels,
        Op::Linear { out_features, .. } => *out_features,
        _ => {
            return Err(imp.unsupported(
                n,
                "adding a constant is supported only as the bias of a Conv or MatMul",
            ))
        }
    };
    let data_name = n
        .input
        .iter()
        .find(|i| matches!(imp.values.get(*i), Some(Value::Data(d)) if *d == x));
    if data_name.is_none_or(|i| imp.uses.get(i) != Some(&1)) {
        return Err(imp.unsupported(n, "bias Add on a layer output that is also used elsewhere"));
    }
    let rank = node.shape.rank();
    let v = c.as_f32s();
    // Accept shapes that broadcast per output channel: [C], [1,C], [C,1,1,1], [1,C,1,1,1].
    let ok = if rank == 2 {
        v.len() == channels && c.dims.last() == Some(&channels)
    } else {
        v.len() == channels && c.dims.iter().filter(|&&d| d != 1).count() <= 1 && {
            let pos = c.dims.len() as i64 - 4;
            c.dims.len() >= 4 && pos >= 0 && c.dims[pos as usize] == channels
        }
    };
    if !ok {
        return Err(imp.unsupported(
            n,
            format!("constant of shape {:?} is not a per-channel bias", c.dims),
        ));
    }
    let (_, b) = imp.weights.get_mut(&x).expect("weighted layer");
    for (bi, vi) in b.iter_mut().zip(v) {
        *bi += vi;
    }
    Ok(())
}
