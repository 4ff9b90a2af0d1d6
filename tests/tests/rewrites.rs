//! The compiler passes against the fixed-point simulation: the e-graph rewrites must leave
//! every simulated integer unchanged and cut comparisons; the cost model's AND gates follow.

use c3d_compiler::{compile, CompileOptions, Compiled};
use c3d_ir::{simulate, Op};
use c3d_passes::cost::plan_cost;
use c3d_tests::{export, inputs};

fn build(name: &str, no_rewrite: bool) -> Compiled {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), name, None, 3);
    let mut opts = CompileOptions {
        no_rewrite,
        ..CompileOptions::default()
    };
    // The same scales with and without the rewrites: garbled comparisons, whose scales do
    // not depend on which pools are fused (OT pools reserve headroom on their inputs).
    opts.quant.network.nonlinear = c3d_ir::NonlinearChoice::Gc;
    compile(&onnx, &opts, |_| {}).expect("compiles")
}

fn same_integers(name: &str, fused_at_least: usize, pads_folded: bool) {
    let before = build(name, true);
    let after = build(name, false);
    let count = |c: &Compiled, f: fn(&Op) -> bool| {
        c.plan
            .layers
            .iter()
            .filter(|l| f(&c.plan.graph.node(l.node).op))
            .count()
    };
    assert!(count(&after, |o| matches!(o, Op::MaxPoolRelu3d(_))) >= fused_at_least);
    if pads_folded {
        assert!(
            count(&after, |o| matches!(o, Op::Pad { .. }))
                < count(&before, |o| matches!(o, Op::Pad { .. }))
        );
    }
    assert_eq!(before.plan.fixed, after.plan.fixed, "same field and scale");
    for (k, x) in inputs(&before.plan, 3, 11).iter().enumerate() {
        let a = simulate(&before.plan, &before.weights, x).unwrap();
        let b = simulate(&after.plan, &after.weights, x).unwrap();
        assert_eq!(a.scale, b.scale);
        assert_eq!(a.divisor, b.divisor);
        assert_eq!(a.revealed.data, b.revealed.data, "{name}: input {k}");
    }
    let (cb, ca) = (
        plan_cost(&before.plan, Some(&before.weights)).total,
        plan_cost(&after.plan, Some(&after.weights)).total,
    );
    eprintln!(
        "{name}: comparisons {} -> {}, AND gates {} -> {}, offline MB {:.1} -> {:.1}, online MB {:.1} -> {:.1}",
        cb.comparisons,
        ca.comparisons,
        cb.and_gates,
        ca.and_gates,
        cb.bytes_offline() as f64 / 1e6,
        ca.bytes_offline() as f64 / 1e6,
        cb.bytes_online() as f64 / 1e6,
        ca.bytes_online() as f64 / 1e6
    );
    assert!(ca.comparisons < cb.comparisons);
    assert!(ca.and_gates < cb.and_gates);
    assert_eq!(ca.he_products, cb.he_products, "linear work unchanged");
}

#[test]
fn c3d_tiny_rewrites_keep_every_integer() {
    same_integers("c3d-tiny", 5, false);
}

#[test]
fn i3d_tiny_rewrites_keep_every_integer() {
    same_integers("i3d-tiny", 2, true);
}
