//! Helpers shared by the end-to-end tests: export a generated model, compile it, draw
//! inputs, and the error bound derived from the plan's fractional bits.

#![forbid(unsafe_code)]

use c3d_compiler::{compile, CompileOptions, Compiled};
use c3d_ir::op::OpClass;
use c3d_ir::{Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::client::ClientOutcome;
use c3d_runtime::session::report::Report;
use c3d_runtime::session::{client_offline, client_online, serve, ClientOptions, ServerModel};
use c3d_runtime::transport::Channel;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::path::{Path, PathBuf};

pub mod bench;
pub mod demo;
pub mod faults;
pub mod motion_table;
pub mod report_plot;
pub mod shaper;

/// The server's model (default backend) for a compiled plan and its weights (the server
/// checks the plan's salted commitment to them).
pub fn server_model(c: &Compiled) -> ServerModel<FheRs> {
    let (_, plan_hash) = c.plan.to_bytes().expect("plan bytes");
    ServerModel::new(
        c.plan.clone(),
        plan_hash,
        &c.weights,
        FheRs::new(c.plan.fixed.p).expect("backend"),
    )
    .expect("server model")
}

/// Runs both parties of the secure protocol on one input, in this process over a socket
/// pair, the server on its own thread (if it fails, its end closes and the client sees it).
/// Returns what the client learns and both parties' reports.
pub fn run_secure(
    plan: &Plan,
    plan_hash: &[u8; 32],
    model: &ServerModel<FheRs>,
    x: &Tensor<f32>,
    server_seed: u64,
    client_seed: u64,
) -> (ClientOutcome, Report, Report) {
    run_secure_with(
        plan,
        plan_hash,
        model,
        x,
        (server_seed, client_seed),
        &ClientOptions::default(),
    )
}

/// [`run_secure`] with the client's options given (a spool limit, say).
pub fn run_secure_with(
    plan: &Plan,
    plan_hash: &[u8; 32],
    model: &ServerModel<FheRs>,
    x: &Tensor<f32>,
    (server_seed, client_seed): (u64, u64),
    opts: &ClientOptions,
) -> (ClientOutcome, Report, Report) {
    let be = FheRs::new(plan.fixed.p).expect("backend");
    let (mut a, mut b) = Channel::pair().expect("socket pair");
    std::thread::scope(|s| {
        let srv = s.spawn(move || {
            let mut rng = ChaCha20Rng::seed_from_u64(server_seed);
            serve(model, &mut a, &mut rng, &mut |_| {})
        });
        let mut rng = ChaCha20Rng::seed_from_u64(client_seed);
        let prep = client_offline(plan, plan_hash, &be, &mut b, opts, &mut rng, &mut |_| {})
            .expect("client offline");
        let (out, crep) = client_online(prep, &mut b, x, &mut |_| {}).expect("client online");
        let srep = srv.join().expect("server thread").expect("server");
        (out, crep, srep)
    })
}

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

/// Names of the layers a plan squares with Beaver triples, in plan order.
pub fn squared_layers(plan: &Plan) -> Vec<&str> {
    plan.layers
        .iter()
        .filter(|l| l.protocol == c3d_ir::Protocol::BeaverSquare)
        .map(|l| plan.graph.node(l.node).name.as_str())
        .collect()
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
