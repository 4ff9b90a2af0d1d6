//! Helpers shared by the end-to-end tests: export a generated model, compile it, draw
//! inputs, and the error bound derived from the plan's fractional bits.

use c3d_compiler::{compile, CompileOptions, Compiled};
use c3d_ir::op::OpClass;
use c3d_ir::{Plan, Tensor};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// Writes a generated model as ONNX into `dir`; returns its path.
pub fn export(dir: &Path, name: &str, classes: Option<usize>, seed: u64) -> PathBuf {
    let v = c3d_models::variant(name).expect("known variant");
    let proto = c3d_models::build(&v, classes, None, seed);
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, c3d_models::onnx_builder::to_bytes(&proto)).expect("write onnx");
    path
}

/// Compiles with default options, quietly.
pub fn compile_default(onnx: &Path) -> Compiled {
    compile(onnx, &CompileOptions::default(), |_| {}).expect("compiles")
}

/// Random preprocessed clips (uniform pixels) for a plan, from a seed distinct from the
/// calibration seed.
pub fn inputs(plan: &Plan, n: usize, seed: u64) -> Vec<Tensor<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (inp, _) = plan.graph.io().expect("io");
    (0..n)
        .map(|_| {
            c3d_passes::calibrate::random_input(
                &plan.graph.node(inp).shape,
                &plan.meta.preprocess,
                &mut rng,
            )
        })
        .collect()
}

/// Number of rounding steps on the longest path: secret linear layers (weights rounded to f
/// bits), public-coefficient pools, and truncating non-linear layers.
pub fn rounding_depth(plan: &Plan) -> usize {
    let g = &plan.graph;
    let mut depth = std::collections::HashMap::new();
    let mut best = 0;
    for id in g.topo_order().expect("dag") {
        let n = g.node(id);
        let own = usize::from(
            matches!(n.op.class(), OpClass::SecretLinear | OpClass::NonLinear)
                || matches!(n.op, c3d_ir::Op::AvgPool3d { .. } | c3d_ir::Op::Mean { .. }),
        );
        let d = g.inputs_of(id).iter().map(|i| depth[i]).max().unwrap_or(0) + own;
        best = best.max(d);
        depth.insert(id, d);
    }
    best
}

/// The error bound the tests hold the simulation to: each rounding step on the longest path
/// contributes at most a few units of 2^-f relative to the output's magnitude.
pub fn error_bound(plan: &Plan, reference: &[f32]) -> f32 {
    let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
    4.0 * rounding_depth(plan) as f32 * (-(min_activation_bits(plan) as f32)).exp2() * scale
}

/// The fewest fractional bits any activation carries (the range analysis may lower some
/// layers below the plan's f; never below the best uniform choice).
pub fn min_activation_bits(plan: &Plan) -> u32 {
    plan.lowest_activation_bits()
        .unwrap_or(plan.fixed.frac_bits)
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut b = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[b] {
            b = i;
        }
    }
    b
}

/// Max absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
