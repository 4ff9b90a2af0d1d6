//! The budget policy for protocol choice (`--approx-budget`): standalone ReLUs are squared,
//! most garbled traffic first, until the cost model's traffic fits; an unreachable budget is
//! refused with the reason.

use c3d_compiler::{compile, CompileOptions};
use c3d_ir::Op;
use c3d_passes::cost::plan_cost;
use c3d_tests::{export, squared_layers};

/// The budget policy weighs garbled traffic: these plans keep every comparison garbled.
fn gc() -> CompileOptions {
    let mut o = CompileOptions::default();
    o.quant.network.nonlinear = c3d_ir::NonlinearChoice::Gc;
    o
}

fn bytes(plan: &c3d_ir::Plan) -> u64 {
    let t = plan_cost(plan, None).total;
    t.bytes_offline() + t.bytes_online()
}

#[test]
fn budget_squares_the_costliest_standalone_relus_until_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d-tiny", Some(10), 3);
    let dense = compile(&onnx, &gc(), |_| {}).unwrap();
    let full = bytes(&dense.plan);
    // Every standalone garbled ReLU, by its garbled traffic, from the dense plan's cost.
    let cost = plan_cost(&dense.plan, None);
    let mut relus: Vec<(u64, String)> = cost
        .layers
        .iter()
        .filter(|(id, _)| matches!(dense.plan.graph.node(*id).op, Op::Relu))
        .map(|(id, c)| {
            (
                c.gc_bytes_offline + c.gc_bytes_online,
                dense.plan.graph.node(*id).name.clone(),
            )
        })
        .collect();
    relus.sort_by_key(|r| std::cmp::Reverse(r.0));
    assert!(relus.len() >= 2, "c3d-tiny has standalone fc ReLUs");

    // At the default f >= 8, squaring an fc ReLU needs a field too large for the HE
    // packings: the budget just under the dense cost is refused, naming the skipped layers.
    let err = compile(
        &onnx,
        &CompileOptions {
            approx_budget: Some(full - 1),
            ..gc()
        },
        |_| {},
    )
    .err()
    .expect("no square fits at f >= 8");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot be met") && msg.contains(&relus[0].1),
        "{msg}"
    );

    // With f allowed down to 4, one ReLU is enough, and it is the costliest.
    let low = CompileOptions {
        quant: c3d_passes::QuantConfig {
            min_frac_bits: 4,
            network: gc().quant.network,
            ..Default::default()
        },
        ..gc()
    };
    let opts = CompileOptions {
        approx_budget: Some(full - 1),
        ..low.clone()
    };
    let c = compile(&onnx, &opts, |_| {}).unwrap();
    assert_eq!(squared_layers(&c.plan), [relus[0].1.as_str()]);
    assert!(bytes(&c.plan) < full);
    assert!(c.plan.passes.iter().any(|p| p.name == "approx-budget"));

    // A budget the dense plan meets changes nothing.
    let c = compile(
        &onnx,
        &CompileOptions {
            approx_budget: Some(full),
            ..gc()
        },
        |_| {},
    )
    .unwrap();
    assert!(squared_layers(&c.plan).is_empty());

    // Max-pools stay garbled: 1 MB cannot be met, and the error says why.
    let err = compile(
        &onnx,
        &CompileOptions {
            approx_budget: Some(1_000_000),
            ..low.clone()
        },
        |_| {},
    )
    .err()
    .expect("unreachable budget");
    let msg = err.to_string();
    assert!(
        msg.contains("--approx-budget 1.0 MB cannot be met"),
        "{msg}"
    );
    assert!(msg.contains(&relus[0].1), "{msg}");
}
