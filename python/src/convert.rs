//! Between Python values and the crates' types: serialisable structs to Python objects,
//! numpy arrays and clip paths to tensors, tensors to numpy arrays.

use crate::error;
use c3d_ir::{Plan, Shape, Tensor};
use numpy::{PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray};
use numpy::{PyUntypedArrayMethods, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::path::PathBuf;

/// `value` as Python objects (dicts, lists, numbers, strings), through its JSON form: the
/// same keys and values as the CLIs' `--json` output.
pub(crate) fn to_py<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let s = serde_json::to_string(value).map_err(error)?;
    py.import("json")?.call_method1("loads", (s,))
}

/// A float32 numpy array as an owned tensor (any strides), its shape checked against
/// `expected` when given. `what` names the value in messages.
pub(crate) fn array_tensor(
    obj: &Bound<'_, PyAny>,
    expected: Option<&Shape>,
    what: &str,
) -> PyResult<Tensor<f32>> {
    let py = obj.py();
    let untyped = obj.cast::<PyUntypedArray>().map_err(|_| {
        error(format!(
            "{what}: expected a float32 numpy array, got {}",
            type_name(obj)
        ))
    })?;
    let dtype = untyped.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        return Err(error(format!(
            "{what} has dtype {}; the model takes float32 (use x.astype(numpy.float32))",
            dtype.str().map(|s| s.to_string()).unwrap_or_default()
        )));
    }
    let dims = untyped.shape().to_vec();
    if let Some(e) = expected {
        if dims != e.dims() {
            return Err(error(format!(
                "{what} has shape {}; the model's input is {}",
                tuple(&dims),
                tuple(e.dims())
            )));
        }
    }
    let typed = untyped
        .cast::<PyArrayDyn<f32>>()
        .map_err(|_| error(format!("{what}: not a float32 array")))?;
    let view = typed.try_readonly().map_err(error)?;
    let data: Vec<f32> = view.as_array().iter().copied().collect();
    Ok(Tensor {
        shape: Shape::new(dims),
        data,
    })
}

/// A clip argument: a numpy array (checked, converted now, under the GIL) or a path to decode
/// later (without it).
pub(crate) enum Clip {
    /// The preprocessed input itself.
    Array(Tensor<f32>),
    /// A video or a float32 .npy, for `video::load_clip`.
    Path(PathBuf),
}

impl Clip {
    /// Reads `obj`: an array must be float32 of `shape`; anything else must be a path.
    pub(crate) fn from_py(obj: &Bound<'_, PyAny>, shape: &Shape) -> PyResult<Clip> {
        if obj.cast::<PyUntypedArray>().is_ok() {
            return array_tensor(obj, Some(shape), "input array").map(Clip::Array);
        }
        if is_path(obj) {
            return obj.extract::<PathBuf>().map(Clip::Path);
        }
        Err(error(format!(
            "expected a float32 numpy array or a path to a clip (video or .npy), got {}",
            type_name(obj)
        )))
    }

    /// The input tensor: decoded and preprocessed as `plan` says when a path.
    pub(crate) fn load(self, plan: &Plan, shape: &Shape) -> PyResult<Tensor<f32>> {
        match self {
            Clip::Array(t) => Ok(t),
            Clip::Path(p) => {
                c3d_runtime::video::load_clip(&p, &plan.meta.preprocess, shape).map_err(error)
            }
        }
    }
}

/// Whether `obj` is a str or an `os.PathLike`.
pub(crate) fn is_path(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__").unwrap_or(false)
}

/// The plan's input shape.
pub(crate) fn input_shape(plan: &Plan) -> PyResult<Shape> {
    let (inp, _) = plan.graph.io().map_err(error)?;
    Ok(plan.graph.node(inp).shape.clone())
}

/// `t` as a numpy float32 array of its shape.
pub(crate) fn array<'py>(py: Python<'py>, t: &Tensor<f32>) -> PyResult<Bound<'py, PyAny>> {
    let a =
        ndarray::ArrayViewD::from_shape(ndarray::IxDyn(t.shape.dims()), &t.data).map_err(error)?;
    Ok(a.to_pyarray(py).into_any())
}

/// Python's name of `obj`'s type, for messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an unknown type".into())
}

/// Dimensions as Python prints a shape: `(1, 3, 8, 16, 16)`.
fn tuple(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}
