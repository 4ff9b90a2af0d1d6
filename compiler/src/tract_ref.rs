//! Float inference of the original ONNX with tract: the independent reference the fixed-point
//! simulation is compared with.

use c3d_ir::{Shape, Tensor};
use std::path::Path;
use tract_onnx::prelude::*;

/// Why tract could not run the reference inference.
#[derive(Debug, thiserror::Error)]
pub enum TractRefError {
    /// tract could not load, optimise or run the model.
    #[error("tract: {0:#}")]
    Tract(#[from] TractError),
    /// The input's data does not fill its shape.
    #[error("tract: input: {0}")]
    Input(#[from] tract_ndarray::ShapeError),
}

/// Runs the ONNX model at `path` on `input` in f32 with tract; returns its first output.
pub fn run_tract(path: &Path, input: &Tensor<f32>) -> Result<Tensor<f32>, TractRefError> {
    run_tract_timed(path, input).map(|(t, _, _)| t)
}

/// [`run_tract`], also returning the seconds spent loading and optimising the model and the
/// seconds of the inference itself.
pub fn run_tract_timed(
    path: &Path,
    input: &Tensor<f32>,
) -> Result<(Tensor<f32>, f64, f64), TractRefError> {
    let t0 = std::time::Instant::now();
    let dims = input.shape.dims().to_vec();
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(&dims).into())?
        .into_optimized()?
        .into_runnable()?;
    let t = tract_ndarray::ArrayD::from_shape_vec(dims, input.data.clone())?.into_tensor();
    let load = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let out = model.run(tvec!(t.into()))?;
    let run = t1.elapsed().as_secs_f64();
    let o = out[0].cast_to::<f32>()?;
    let view = o.to_plain_array_view::<f32>()?;
    let t = Tensor::new(
        Shape::new(view.shape().to_vec()),
        view.iter().copied().collect(),
    );
    Ok((t, load, run))
}
