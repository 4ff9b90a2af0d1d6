//! Reading and writing float32 .npy tensors, with clear errors for anything else.

use c3d_ir::{Shape, Tensor};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use std::path::Path;

/// Reads a float32 .npy file.
pub fn read_f32(path: &Path) -> Result<Tensor<f32>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let a = ArrayD::<f32>::read_npy(std::io::BufReader::new(f))
        .map_err(|e| format!("{}: not a float32 .npy array ({e})", path.display()))?;
    let shape = Shape::new(a.shape().to_vec());
    let data: Vec<f32> = a.iter().copied().collect();
    Ok(Tensor::new(shape, data))
}

/// Writes a float32 .npy file atomically.
pub fn write_f32(path: &Path, t: &Tensor<f32>) -> Result<(), String> {
    let a =
        ArrayD::from_shape_vec(IxDyn(t.shape.dims()), t.data.clone()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    a.write_npy(&mut buf).map_err(|e| e.to_string())?;
    c3d_ir::format::write_atomic(path, &buf).map_err(|e| e.to_string())
}
