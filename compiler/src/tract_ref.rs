//! Float inference of the original ONNX with tract: the independent reference the fixed-point
//! simulation is compared with.

use c3d_ir::{Shape, Tensor};
use std::path::Path;
use tract_onnx::prelude::*;

/// Runs the ONNX model at `path` on `input` in f32 with tract; returns its first output.
pub fn run_tract(path: &Path, input: &Tensor<f32>) -> Result<Tensor<f32>, String> {
    run_tract_timed(path, input).map(|(t, _, _)| t)
}

/// [`run_tract`], also returning the seconds spent loading and optimising the model and the
/// seconds of the inference itself.
pub fn run_tract_timed(
    path: &Path,
    input: &Tensor<f32>,
) -> Result<(Tensor<f32>, f64, f64), String> {
    let t0 = std::time::Instant::now();
    let e = |x: TractError| format!("tract: {x:#}");
    let dims = input.shape.dims().to_vec();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(e)?
        .with_input_fact(0, f32::fact(&dims).into())
        .map_err(e)?
        .into_optimized()
        .map_err(e)?
        .into_runnable()
        .map_err(e)?;
    let t = tract_ndarray::ArrayD::from_shape_vec(dims, input.data.clone())
        .map_err(|x| x.to_string())?
        .into_tensor();
    let load = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let out = model.run(tvec!(t.into())).map_err(e)?;
    let run = t1.elapsed().as_secs_f64();
    let o = out[0].cast_to::<f32>().map_err(e)?;
    let view = o.to_plain_array_view::<f32>().map_err(e)?;
    let t = Tensor::new(
        Shape::new(view.shape().to_vec()),
        view.iter().copied().collect(),
    );
    Ok((t, load, run))
}
