//! The committed ONNX files in PyTorch's export idioms import and simulate correctly.

use c3d_compiler::tract_ref::run_tract;
use c3d_compiler::{import_file, ImportOptions};
use c3d_ir::Op;
use c3d_tests::*;
use std::path::PathBuf;

/// The ops of an imported model in execution order.
fn ops_in_order(m: &c3d_ir::Model) -> Vec<&Op> {
    let g = &m.graph;
    g.topo_order()
        .unwrap()
        .into_iter()
        .map(|i| &g.node(i).op)
        .collect()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn fixtures_are_reproducible_from_the_generator() {
    let a = c3d_models::onnx_builder::to_bytes(&c3d_models::fixtures::c3d_micro(11));
    let b = c3d_models::onnx_builder::to_bytes(&c3d_models::fixtures::branches_micro(12));
    assert_eq!(
        std::fs::read(fixture("c3d_micro.onnx")).unwrap(),
        a,
        "regenerate with `c3d-models fixtures -o tests/fixtures`"
    );
    assert_eq!(std::fs::read(fixture("branches_micro.onnx")).unwrap(), b);
}

#[test]
fn exporter_idioms_fold_away() {
    let (m, folds) = import_file(&fixture("c3d_micro.onnx"), &ImportOptions::default()).unwrap();
    assert_eq!(folds.batchnorms, 1);
    assert_eq!(folds.removed, 2, "Dropout and Identity");
    let ops = ops_in_order(&m);
    // The SAME padding computed through Shape/Gather/.../Cast becomes one zero Pad of one on
    // every spatial side, in ONNX's begin/end order.
    let pads: Vec<_> = ops
        .iter()
        .filter_map(|o| {
            if let Op::Pad { pads } = o {
                Some(pads.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(pads, vec![vec![(0, 0), (0, 0), (1, 1), (1, 1), (1, 1)]]);
    let linear = ops
        .iter()
        .filter(|o| matches!(o, Op::Linear { .. }))
        .count();
    assert_eq!(linear, 2, "Gemm with and without transB");
    assert!(matches!(ops.last(), Some(Op::Softmax { axis: 1 })));

    let (m, folds) =
        import_file(&fixture("branches_micro.onnx"), &ImportOptions::default()).unwrap();
    assert_eq!(folds.ifs, 1);
    assert_eq!(folds.batchnorms, 1);
    let ops = ops_in_order(&m);
    assert_eq!(
        ops.iter()
            .filter(|o| matches!(o, Op::Concat { axis: 1 }))
            .count(),
        1
    );
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Add)).count(),
        1,
        "the residual Add; the MatMul bias Add folds"
    );
    assert_eq!(
        ops.iter().filter(|o| matches!(o, Op::Relu)).count(),
        5,
        "If took the then-branch (Relu)"
    );
}

#[test]
fn fixtures_simulate_like_tract() {
    for name in ["c3d_micro.onnx", "branches_micro.onnx"] {
        let path = fixture(name);
        let c = compile_default(&path);
        for x in inputs(&c.plan, 3, 77) {
            let sim = c3d_ir::simulate(&c.plan, &c.weights, &x).unwrap();
            let float = run_tract(&path, &x).unwrap();
            let err = max_abs_diff(&sim.output.data, &float.data);
            let bound = error_bound(&c.plan, &float.data);
            assert!(err <= bound, "{name}: error {err} over {bound}");
            assert_eq!(argmax(&sim.output.data), argmax(&float.data), "{name}");
        }
        // The IR's own float evaluation of the imported graph agrees with tract closely: the
        // frontend's mapping (folds included) is right independently of quantization.
        let x = &inputs(&c.plan, 1, 78)[0];
        let ours = c3d_ir::eval_float(&c.model, x.clone(), |_, _| {}).unwrap();
        let float = run_tract(&path, x).unwrap();
        assert!(
            max_abs_diff(&ours.data, &float.data) < 1e-4,
            "{name}: float IR differs from tract"
        );
    }
}
