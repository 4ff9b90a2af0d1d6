//! The chosen field leaves no wrap-around: simulating the same plan and weights in a much
//! larger prime (where nothing can wrap) gives bit-identical results.

use c3d_compiler::Compiled;
use c3d_ir::fixed::candidate_primes;
use c3d_ir::op::OpClass;
use c3d_ir::{LayerQuant, Tensor};
use c3d_tests::*;
use std::collections::HashMap;

/// The plan's public bounds are whole bits that still bound every value: on clip-like
/// inputs, run in a prime far too wide to wrap, each secure node's largest magnitude is at
/// most 2^bound_bits, and the headroom (a function of p and the bound only, so it reveals
/// nothing more) leaves that magnitude within (p-1)/2 / 2^headroom_bits.
fn public_bounds_hold(name: &str, c: &Compiled) {
    let plan = &c.plan;
    let mut wide = plan.clone();
    wide.fixed.p = *candidate_primes().last().unwrap();
    let g = &plan.graph;
    let layers: HashMap<_, _> = wide.layers.iter().map(|l| (l.node, l)).collect();
    let mut seen: HashMap<_, u64> = HashMap::new();
    let (inp, _) = g.io().unwrap();
    for x in inputs(plan, 3, 4242) {
        let s = layers[&inp].quant.out_scale;
        let enc = x.map(|&v| wide.fixed.encode(v as f64, s));
        let m = enc.data.iter().map(|v| v.unsigned_abs()).max().unwrap();
        let e = seen.entry(inp).or_default();
        *e = (*e).max(m);
        c3d_ir::exec::run_graph(g, enc, |id, node, ins| {
            let out = if node.op.class() == OpClass::ClientOutput {
                vec![0; node.shape.numel()]
            } else {
                let v = c3d_ir::simulate::step_fixed(
                    &wide.fixed,
                    id,
                    node,
                    layers[&id],
                    &c.weights,
                    ins,
                )?;
                let m = v.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
                let e = seen.entry(id).or_default();
                *e = (*e).max(m);
                v
            };
            Ok(Tensor::new(node.shape.clone(), out))
        })
        .unwrap();
    }
    for l in &plan.layers {
        let q = &l.quant;
        let n = &g.node(l.node).name;
        assert_eq!(
            q.headroom_bits,
            LayerQuant::headroom_bits_of(&plan.fixed, q.bound_bits),
            "{name}: `{n}`: headroom not derived from the public bound"
        );
        let Some(&m) = seen.get(&l.node) else {
            continue;
        };
        assert!(
            (m as f64) <= 2f64.powi(q.bound_bits as i32),
            "{name}: `{n}` reached {m}, over its public bound 2^{}",
            q.bound_bits
        );
        assert!(
            ((m as u128) << q.headroom_bits) <= plan.fixed.max_signed() as u128,
            "{name}: `{n}` reached {m}: {} bits of headroom overstated",
            q.headroom_bits
        );
    }
}

#[test]
fn chosen_prime_never_wraps_on_clip_like_inputs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["c3d-tiny", "i3d-tiny"] {
        let onnx = export(dir.path(), name, Some(10), 3);
        let c = compile_default(&onnx);
        let mut wide = c.plan.clone();
        wide.fixed.p = *candidate_primes().last().unwrap();
        assert!(wide.fixed.p > 1 << 60);
        for x in inputs(&c.plan, 3, 4242) {
            let a = c3d_ir::simulate(&c.plan, &c.weights, &x).unwrap();
            let b = c3d_ir::simulate(&wide, &c.weights, &x).unwrap();
            assert_eq!(a.revealed, b.revealed, "{name}: a value wrapped mod p");
        }
        public_bounds_hold(name, &c);
    }
}

#[test]
fn a_prime_too_small_is_refused_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d-tiny", Some(10), 3);
    let opts = c3d_compiler::CompileOptions {
        quant: c3d_passes::QuantConfig {
            prime: Some(c3d_ir::fixed::batching_prime(25, 14).unwrap()),
            frac_bits: Some(12),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = match c3d_compiler::compile(&onnx, &opts, |_| {}) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 25-bit prime cannot hold 12-bit fixed point through C3D"),
    };
    assert!(
        err.contains("no field fits") && err.contains("layer `"),
        "{err}"
    );
}
