//! ONNX tensors (initializers, `Constant` values) read by tract and turned into constants.

use crate::const_fold::{ConstData, ConstTensor};
use crate::diagnostics::TensorError;
use tract_onnx::pb;
use tract_onnx::prelude::{Datum, DatumType, Tensor};

/// The elements of a tract tensor cast to `T`.
fn elements<T: Datum + Copy>(t: &Tensor) -> Result<Vec<T>, TensorError> {
    let c = t.cast_to::<T>()?;
    let v = c.to_plain_array_view::<T>()?;
    Ok(v.iter().copied().collect())
}

/// A tract tensor as a constant: floats become f32, integers i64.
pub(super) fn tensor_to_const(t: &Tensor) -> Result<ConstTensor, TensorError> {
    let dt = t.datum_type();
    let data = if dt.is_float() {
        ConstData::Float(elements::<f32>(t)?)
    } else if dt == DatumType::Bool {
        ConstData::Bool(elements::<bool>(t)?)
    } else if dt.is_integer() {
        ConstData::Int(elements::<i64>(t)?)
    } else {
        return Err(TensorError::ElementType(dt));
    };
    Ok(ConstTensor {
        dims: t.shape().to_vec(),
        data,
    })
}

/// Loads an ONNX tensor, resolving external data relative to `dir`.
pub(super) fn load_tensor(
    t: &pb::TensorProto,
    dir: Option<&str>,
) -> Result<ConstTensor, TensorError> {
    let tt =
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, t, dir)?;
    tensor_to_const(&tt)
}
