//! Reading and writing float32 .npy tensors, with clear errors for anything else.

use c3d_ir::{Shape, Tensor};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyError, WriteNpyExt};
use std::path::Path;
use thiserror::Error;

/// Why a .npy file could not be read or written.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file cannot be opened.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a float32 .npy array.
    #[error("{path}: not a float32 .npy array ({source})")]
    Read {
        /// The file.
        path: String,
        /// What the reader found.
        source: ReadNpyError,
    },
    /// The tensor's data does not fill its shape.
    #[error("{0}")]
    Shape(#[from] ndarray::ShapeError),
    /// The array could not be encoded.
    #[error("{0}")]
    Encode(#[from] WriteNpyError),
    /// The file could not be written.
    #[error("{0}")]
    Write(#[from] c3d_ir::IrError),
}

/// Reads a float32 .npy file.
pub fn read_f32(path: &Path) -> Result<Tensor<f32>, NpyError> {
    let path_s = || path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| NpyError::Open {
        path: path_s(),
        source,
    })?;
    let a =
        ArrayD::<f32>::read_npy(std::io::BufReader::new(f)).map_err(|source| NpyError::Read {
            path: path_s(),
            source,
        })?;
    let shape = Shape::new(a.shape().to_vec());
    let data: Vec<f32> = a.iter().copied().collect();
    Ok(Tensor::new(shape, data))
}

/// Writes a float32 .npy file atomically.
pub fn write_f32(path: &Path, t: &Tensor<f32>) -> Result<(), NpyError> {
    let a = ArrayD::from_shape_vec(IxDyn(t.shape.dims()), t.data.clone())?;
    let mut buf = Vec::new();
    a.write_npy(&mut buf)?;
    Ok(c3d_ir::format::write_atomic(path, &buf)?)
}
