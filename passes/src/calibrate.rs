//! Calibration: runs the float model on sample inputs and records each node's largest
//! magnitude, the statistics the range analysis works from.

use crate::quantize::{QuantConfig, QuantError};
use c3d_ir::{eval_float, Model, NodeId, Preprocess, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Largest observed magnitudes.
#[derive(Clone, Debug, Default)]
pub struct ActStats {
    /// Largest |value| per node and channel (axis 1; one entry for rank < 2) over all
    /// calibration inputs.
    pub abs_max: HashMap<NodeId, Vec<f64>>,
    /// Largest |value| each input channel can take (preprocessing range, or larger user
    /// inputs).
    pub input_abs_max: Vec<f64>,
    /// Number of inputs run.
    pub samples: usize,
}

/// A random clip as the client's preprocessing would produce it: every pixel uniform in
/// 0..=255, then scaled, centred and normalised per channel.
pub fn random_input(shape: &Shape, pp: &Preprocess, rng: &mut impl Rng) -> Tensor<f32> {
    let per_channel = shape.dims()[2..].iter().product::<usize>();
    let data = (0..shape.numel())
        .map(|i| {
            let c = (i / per_channel) % 3;
            let px: f32 = rng.random_range(0.0..=255.0);
            (px * pp.pixel_scale - pp.mean[c]) / pp.std[c]
        })
        .collect();
    Tensor::new(shape.clone(), data)
}

/// Runs the calibration inputs.
pub fn calibrate(
    model: &Model,
    cfg: &QuantConfig,
    progress: &mut impl FnMut(&str),
) -> Result<ActStats, QuantError> {
    let pp = &model.meta.preprocess;
    let mut stats = ActStats {
        input_abs_max: (0..3)
            .map(|c| {
                let a = (0.0 * pp.pixel_scale - pp.mean[c]) / pp.std[c];
                let b = (255.0 * pp.pixel_scale - pp.mean[c]) / pp.std[c];
                a.abs().max(b.abs()) as f64
            })
            .collect(),
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (inp, _) = model.graph.io()?;
    let shape = model.graph.node(inp).shape.clone();
    let total = cfg.calib_samples + cfg.calib_inputs.len();
    if total == 0 {
        return Err(QuantError::Config(
            "calibration needs at least one input".into(),
        ));
    }
    for k in 0..total {
        let input = if k < cfg.calib_samples {
            random_input(&shape, &model.meta.preprocess, &mut rng)
        } else {
            cfg.calib_inputs[k - cfg.calib_samples].clone()
        };
        for (c, m) in channel_abs_max(&input).into_iter().enumerate() {
            if let Some(s) = stats.input_abs_max.get_mut(c) {
                *s = s.max(m);
            }
        }
        progress(&format!("calibrate: input {}/{total}", k + 1));
        eval_float(model, input, |id, t| {
            let m = channel_abs_max(t);
            let e = stats
                .abs_max
                .entry(id)
                .or_insert_with(|| vec![0.0; m.len()]);
            for (a, b) in e.iter_mut().zip(m) {
                *a = a.max(b);
            }
        })?;
        stats.samples += 1;
    }
    Ok(stats)
}

/// Largest |value| per channel (axis 1), or one value for tensors of rank below 2.
pub fn channel_abs_max(t: &Tensor<f32>) -> Vec<f64> {
    let dims = t.shape.dims();
    if dims.len() < 2 {
        return vec![t.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64))];
    }
    let (c, inner) = (dims[1], dims[2..].iter().product::<usize>());
    let mut out = vec![0f64; c];
    for (i, v) in t.data.iter().enumerate() {
        let ch = (i / inner) % c;
        out[ch] = out[ch].max(v.abs() as f64);
    }
    out
}
