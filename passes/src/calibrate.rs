//! Calibration: runs the float model on sample inputs and records each node's largest
//! magnitude, the statistics the range analysis works from.

use c3d_ir::{eval_float, Model, NodeId, Preprocess, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// What to calibrate on.
#[derive(Clone, Copy, Debug)]
pub struct CalibConfig<'a> {
    /// Generated inputs (uniform over the preprocessed pixel range).
    pub samples: usize,
    /// Seed of the generated inputs.
    pub seed: u64,
    /// Extra inputs from the user, run after the generated ones.
    pub inputs: &'a [Tensor<f32>],
}

/// Why calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    /// Neither generated nor user inputs.
    #[error("calibration needs at least one input")]
    NoInputs,
    /// The float model failed on an input.
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
}

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
    cfg: &CalibConfig,
    progress: &mut impl FnMut(&str),
) -> Result<ActStats, CalibError> {
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
    let total = cfg.samples + cfg.inputs.len();
    if total == 0 {
        return Err(CalibError::NoInputs);
    }
    for k in 0..total {
        let input = if k < cfg.samples {
            random_input(&shape, &model.meta.preprocess, &mut rng)
        } else {
            cfg.inputs[k - cfg.samples].clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::{Graph, ModelMeta, Op};

    #[test]
    fn channel_maxima_are_taken_per_channel() {
        // (1, 2, 1, 1, 3): channel 0 holds 1, -4, 2; channel 1 holds 0.5, 3, -3.5.
        let t = Tensor::new(
            Shape::new(vec![1, 2, 1, 1, 3]),
            vec![1.0, -4.0, 2.0, 0.5, 3.0, -3.5],
        );
        assert_eq!(channel_abs_max(&t), vec![4.0, 3.5]);
        let flat = Tensor::new(Shape::new(vec![3]), vec![1.0, -2.5, 2.0]);
        assert_eq!(channel_abs_max(&flat), vec![2.5]);
    }

    fn relu_model() -> Model {
        let shape = Shape::new(vec![1, 3, 1, 2, 2]);
        let mut g = Graph::new();
        let x = g.add_input("x", shape.clone());
        let r = g.add("relu", Op::Relu, &[x], None).unwrap();
        g.set_outputs(vec![r]);
        Model {
            graph: g,
            weights: Default::default(),
            meta: ModelMeta {
                name: "relu".into(),
                producer: String::new(),
                preprocess: Preprocess::default_for(&shape),
                class_names: vec![],
                approx: vec![],
            },
        }
    }

    #[test]
    fn user_inputs_count_and_widen_the_input_range() {
        let m = relu_model();
        let big = Tensor::new(Shape::new(vec![1, 3, 1, 2, 2]), vec![-9.0; 12]);
        let cfg = CalibConfig {
            samples: 2,
            seed: 1,
            inputs: std::slice::from_ref(&big),
        };
        let stats = calibrate(&m, &cfg, &mut |_| {}).unwrap();
        assert_eq!(stats.samples, 3);
        assert_eq!(stats.input_abs_max, vec![9.0; 3]);
        let (_, out) = m.graph.io().unwrap();
        // The ReLU of -9 is 0: its maximum comes from the generated inputs alone, below the
        // preprocessing's range.
        let pp = &m.meta.preprocess;
        let range = (255.0 * pp.pixel_scale - pp.mean[0]) / pp.std[0];
        assert!(stats.abs_max[&out][0] <= range as f64 + 1e-6);
    }

    #[test]
    fn no_inputs_is_refused() {
        let cfg = CalibConfig {
            samples: 0,
            seed: 1,
            inputs: &[],
        };
        let e = calibrate(&relu_model(), &cfg, &mut |_| {}).unwrap_err();
        assert!(matches!(e, CalibError::NoInputs));
    }
}
