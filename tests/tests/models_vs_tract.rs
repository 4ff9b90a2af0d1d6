//! Every generated model: the fixed-point simulation of its plan has the same argmax as
//! tract's float inference of the same ONNX, within the error bound derived from f.

use c3d_compiler::tract_ref::run_tract;
use c3d_tests::*;

fn check(name: &str, classes: Option<usize>, n_inputs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), name, classes, 7);
    let c = compile_default(&onnx);
    let depth = rounding_depth(&c.plan);
    for (k, x) in inputs(&c.plan, n_inputs, 1000).iter().enumerate() {
        let sim = c3d_ir::simulate(&c.plan, &c.weights, x).unwrap();
        let float = run_tract(&onnx, x).unwrap();
        assert_eq!(
            sim.output.shape, float.shape,
            "{name}: output shapes differ"
        );
        let err = max_abs_diff(&sim.output.data, &float.data);
        let bound = error_bound(&c.plan, &float.data);
        eprintln!(
            "{name} input {k}: p = {}, f = {} (lowest {}), depth {depth}, max error {err:.3e} (bound {bound:.3e})",
            c.plan.fixed.p,
            c.plan.fixed.frac_bits,
            min_activation_bits(&c.plan)
        );
        assert!(
            err <= bound,
            "{name} input {k}: error {err} over the bound {bound}"
        );
        assert_eq!(
            argmax(&sim.output.data),
            argmax(&float.data),
            "{name} input {k}: argmax differs"
        );
    }
}

#[test]
fn c3d_tiny_matches_tract() {
    check("c3d-tiny", None, 4);
}

#[test]
fn c3d_small_matches_tract() {
    check("c3d-small", Some(101), 2);
}

#[test]
fn i3d_tiny_matches_tract() {
    check("i3d-tiny", None, 4);
}

/// Full size: minutes on two cores; run with `cargo test -- --ignored`.
#[test]
#[ignore]
fn c3d_full_matches_tract() {
    check("c3d", None, 1);
}

/// Full size: minutes on two cores; run with `cargo test -- --ignored`.
#[test]
#[ignore]
fn i3d_full_matches_tract() {
    check("i3d", None, 1);
}
