//! The chosen field leaves no wrap-around: simulating the same plan and weights in a much
//! larger prime (where nothing can wrap) gives bit-identical results.

use c3d_ir::fixed::candidate_primes;
use c3d_tests::*;

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
        for l in &c.plan.layers {
            assert!(
                l.quant.headroom_bits >= 0.0,
                "{name}: negative headroom recorded"
            );
        }
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
