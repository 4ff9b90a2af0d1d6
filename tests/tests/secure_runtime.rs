//! The secure two-party run against the plaintext fixed-point simulation: the logits the
//! client learns must equal `simulate`'s bit for bit, with every non-linear layer garbled,
//! every one by OT comparisons, mixed plans, the compiler's own choice, and with some ReLUs
//! squared by Beaver.

use c3d_compiler::{compile, CompileOptions, Compiled};
use c3d_ir::{simulate, NetworkModel, NonlinearChoice, Protocol};
use c3d_passes::cost::plan_cost;
use c3d_passes::QuantConfig;
use c3d_runtime::session::report::{Phase, Report};
use c3d_tests::{export, inputs, run_secure, server_model};

fn compiled(name: &str, approx: &[&str]) -> Compiled {
    compiled_pruned(name, approx, 0.0)
}

fn compiled_pruned(name: &str, approx: &[&str], prune: f64) -> Compiled {
    compiled_as(name, approx, prune, NonlinearChoice::Auto)
}

fn compiled_as(name: &str, approx: &[&str], prune: f64, nonlinear: NonlinearChoice) -> Compiled {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), name, None, 3);
    compile_file(&onnx, approx, prune, nonlinear)
}

fn compile_file(
    onnx: &std::path::Path,
    approx: &[&str],
    prune: f64,
    nonlinear: NonlinearChoice,
) -> Compiled {
    let opts = CompileOptions {
        quant: QuantConfig {
            approx: approx.iter().map(|s| s.to_string()).collect(),
            network: NetworkModel {
                nonlinear,
                ..NetworkModel::default()
            },
            ..QuantConfig::default()
        },
        prune,
        ..CompileOptions::default()
    };
    compile(onnx, &opts, |_| {}).expect("compiles")
}

/// How many non-linear layers run by each exact protocol.
fn protocols(c: &Compiled) -> (usize, usize) {
    let n = |p| c.plan.layers.iter().filter(|l| l.protocol == p).count();
    (n(Protocol::GarbledCircuit), n(Protocol::OtComparison))
}

/// The server's arithmetic on linear layers in a phase, from its report.
fn server_work(r: &Report, phase: Phase) -> u64 {
    r.layers
        .iter()
        .filter(|l| l.phase == phase)
        .map(|l| l.work)
        .sum()
}

/// Runs both parties over a socket pair for each input; checks every revealed value, and
/// the cost model's bytes against the measured traffic. Returns the last server report.
fn secure_equals_simulation(c: &Compiled, n: usize, seed: u64) -> Report {
    let cost = plan_cost(&c.plan, Some(&c.weights)).total;
    let mut last = None;
    let plan_hash = c.plan.hash().unwrap();
    let model = server_model(c);
    for (k, x) in inputs(&c.plan, n, seed).iter().enumerate() {
        let want = simulate(&c.plan, &c.weights, x).unwrap();
        let (got, crep, srep) = run_secure(
            &c.plan,
            &plan_hash,
            &model,
            x,
            seed + 100 + k as u64,
            seed + 200 + k as u64,
        );
        assert_eq!(got.scale, want.scale);
        assert_eq!(got.divisor, want.divisor);
        assert_eq!(got.revealed.shape, want.revealed.shape);
        let bad = got
            .revealed
            .data
            .iter()
            .zip(&want.revealed.data)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            bad,
            0,
            "{} of {} revealed values differ (input {k})",
            bad,
            want.revealed.data.len()
        );
        assert_eq!(
            got.output.data, want.output.data,
            "client-side ops (input {k})"
        );
        // The two sides agree on the traffic.
        assert_eq!(crep.bytes_sent, srep.bytes_received);
        assert_eq!(crep.bytes_received, srep.bytes_sent);
        // The cost model predicts it (within 3 %: handshake, keys and base OTs are not in it),
        // and the HE products the server did exactly.
        for (ph, want) in [(0, cost.bytes_offline()), (1, cost.bytes_online())] {
            let got = crep.phases[ph].bytes_sent + crep.phases[ph].bytes_received;
            let err = (got as f64 - want as f64).abs() / got as f64;
            assert!(
                err < 0.03,
                "phase {ph}: measured {got} B, cost model {want} B"
            );
        }
        assert_eq!(server_work(&srep, Phase::Offline), cost.he_products);
        eprintln!(
            "{}: input {k}: offline {:.2} s, online {:.2} s, client sent {} B, received {} B",
            c.plan.meta.name,
            crep.phases[0].seconds,
            crep.phases[1].seconds,
            crep.bytes_sent,
            crep.bytes_received
        );
        last = Some(srep);
    }
    last.expect("at least one input")
}

#[test]
fn c3d_tiny_secure_equals_simulation() {
    // The compiler's choice on a LAN: OT comparisons for the large layers.
    let c = compiled("c3d-tiny", &[]);
    assert!(protocols(&c).1 >= 6, "{:?}", protocols(&c));
    secure_equals_simulation(&c, 2, 1);
}

#[test]
fn c3d_tiny_garbled_equals_simulation() {
    let c = compiled_as("c3d-tiny", &[], 0.0, NonlinearChoice::Gc);
    assert_eq!(protocols(&c), (10, 0));
    secure_equals_simulation(&c, 1, 11);
}

#[test]
fn c3d_tiny_with_ot_comparisons_equals_simulation() {
    let c = compiled_as("c3d-tiny", &[], 0.0, NonlinearChoice::Ot);
    assert_eq!(protocols(&c), (0, 10));
    secure_equals_simulation(&c, 1, 12);
}

/// Every other comparison layer garbled, the rest by OT: the two protocols hand shares to each
/// other through the linear and local layers between them.
#[test]
fn c3d_tiny_mixed_plan_equals_simulation() {
    let mut c = compiled_as("c3d-tiny", &[], 0.0, NonlinearChoice::Ot);
    let mut k = 0;
    for l in c.plan.layers.iter_mut() {
        if l.protocol == Protocol::OtComparison {
            if k % 2 == 1 {
                l.protocol = Protocol::GarbledCircuit;
            }
            k += 1;
        }
    }
    c.plan.validate().unwrap();
    assert_eq!(protocols(&c), (5, 5));
    secure_equals_simulation(&c, 1, 13);
}

#[test]
fn i3d_tiny_with_ot_comparisons_equals_simulation() {
    // Branches, concatenations and per-axis separable pools.
    let c = compiled_as("i3d-tiny", &[], 0.0, NonlinearChoice::Ot);
    let (gc, ot) = protocols(&c);
    assert!(ot > 10, "{gc} garbled, {ot} by OT");
    secure_equals_simulation(&c, 1, 14);
}

#[test]
fn trained_motion_model_with_ot_comparisons_equals_simulation() {
    let path = c3d_tests::motion_table::models_dir().join("c3d-motion.onnx");
    let c = compile_file(&path, &[], 0.0, NonlinearChoice::Ot);
    assert!(protocols(&c).1 > 0);
    secure_equals_simulation(&c, 1, 15);
}

#[test]
fn c3d_tiny_with_beaver_squares_equals_simulation() {
    let c = compiled("c3d-tiny", &["/relu_1/Relu", "/relu_7/Relu"]);
    assert_eq!(
        c3d_tests::squared_layers(&c.plan),
        ["/relu_1/Relu", "/relu_7/Relu"]
    );
    secure_equals_simulation(&c, 1, 2);
}

#[test]
fn i3d_tiny_secure_equals_simulation() {
    secure_equals_simulation(&compiled("i3d-tiny", &[]), 1, 3);
}

#[test]
fn i3d_tiny_with_beaver_squares_equals_simulation() {
    secure_equals_simulation(
        &compiled("i3d-tiny", &["/Mixed_3c/b0/Relu", "/Mixed_4f/b0/Relu"]),
        1,
        4,
    );
}

#[test]
fn pruned_c3d_tiny_saves_work_and_still_equals_simulation() {
    let dense = compiled("c3d-tiny", &[]);
    let c = compiled_pruned("c3d-tiny", &[], 0.9);
    for l in &c.plan.layers {
        if l.protocol == c3d_ir::Protocol::HeLinear {
            // At least round(0.9 n) zeros (quantization may round a few more to zero), and
            // the plan says how many.
            let w = &c.weights.layers[&l.node].weight;
            let z = w.iter().filter(|&&v| v == 0).count();
            assert!(
                z >= (0.9 * w.len() as f64).round() as usize,
                "{z} of {}",
                w.len()
            );
            let s = l.sparsity.expect("pruned layers record their sparsity");
            assert!((s - z as f64 / w.len() as f64).abs() < 1e-12);
        }
    }
    let cd = plan_cost(&dense.plan, Some(&dense.weights)).total;
    let cp = plan_cost(&c.plan, Some(&c.weights)).total;
    assert!(
        cp.he_products < cd.he_products,
        "{} vs {}",
        cp.he_products,
        cd.he_products
    );
    let srep = secure_equals_simulation(&c, 1, 5);
    // The server's report confirms: fewer HE products than the dense packing needs, and
    // about a tenth of the dense multiply-adds online.
    assert!(server_work(&srep, Phase::Offline) < cd.he_products_dense);
    let online = server_work(&srep, Phase::Online) as f64;
    assert!(
        online < 0.2 * cd.online_macs as f64,
        "{online} vs {}",
        cd.online_macs
    );
}

/// Garbled layers beyond the client's spool limit or the server's memory limit are streamed
/// in the online phase; the result is still the simulation's, bit for bit, and the bytes the
/// spool did not take move from the offline phase to the online one.
#[test]
fn streamed_garbled_layers_equal_simulation() {
    use c3d_runtime::session::placement::{choose_streamed, garbled_costs};
    use c3d_runtime::session::{ClientOptions, Schedule};
    use c3d_tests::run_secure_with;
    let c = compiled_as("c3d-tiny", &[], 0.0, NonlinearChoice::Gc);
    let plan_hash = c.plan.hash().unwrap();
    let be = c3d_runtime::he::fhers::FheRs::new(c.plan.fixed.p).unwrap();
    let sched = Schedule::new(&c.plan, &be).unwrap();
    let costs = garbled_costs(&sched);
    assert!(costs.len() >= 3, "c3d-tiny has several garbled layers");
    let all: u64 = costs.iter().map(|c| c.spool).sum();
    let biggest = costs.iter().map(|c| c.spool).max().unwrap();
    let x = &inputs(&c.plan, 1, 41)[0];
    let want = simulate(&c.plan, &c.weights, x).unwrap();
    let name_of = |i: usize| sched.steps[i].name.clone();
    // (client spool limit, server keep limit): all streamed; the biggest streamed by the
    // spool limit; some streamed by the server's memory limit.
    let keep_all: u64 = costs.iter().map(|c| c.keep).sum();
    for (k, (spool, keep)) in [
        (0, u64::MAX),
        (all - biggest, u64::MAX),
        (u64::MAX, keep_all / 3),
    ]
    .into_iter()
    .enumerate()
    {
        let model = server_model(&c).with_keep_limit(keep);
        let opts = ClientOptions {
            spool_limit: Some(spool),
            ..ClientOptions::default()
        };
        let streamed = choose_streamed(&costs, spool, keep);
        assert!(!streamed.is_empty(), "case {k} streams something");
        let (got, crep, srep) =
            run_secure_with(&c.plan, &plan_hash, &model, x, (300 + k as u64, 400), &opts);
        assert_eq!(got.revealed.data, want.revealed.data, "case {k}");
        let names: Vec<String> = streamed.iter().map(|&i| name_of(i)).collect();
        assert_eq!(crep.streamed_layers, names, "case {k}: client");
        assert_eq!(srep.streamed_layers, names, "case {k}: server");
        let kept: u64 = costs
            .iter()
            .filter(|c| !streamed.contains(&c.step))
            .map(|c| c.spool)
            .sum();
        assert!(crep.spooled_bytes <= spool, "case {k}: spool limit kept");
        assert_eq!(
            crep.spooled_bytes, kept,
            "case {k}: spooled what was planned"
        );
        // A streamed layer's tables travel online.
        let online_in = crep.phases[1].bytes_received;
        let tables: u64 = streamed
            .iter()
            .map(|&i| costs.iter().find(|c| c.step == i).unwrap().spool)
            .sum();
        assert!(
            online_in > tables / 2,
            "case {k}: {online_in} B online, {tables} B streamed"
        );
        let protos: Vec<&str> = crep
            .layers
            .iter()
            .filter(|l| l.phase == Phase::Online && names.contains(&l.layer))
            .map(|l| l.protocol.as_str())
            .collect();
        assert!(
            protos.iter().all(|p| *p == "garbled-streamed"),
            "case {k}: {protos:?}"
        );
    }
}

/// The cost model counts the silent-OT rounds the runtime prepares: the same rule on both
/// sides of the crate boundary (passes cannot depend on the runtime).
#[test]
fn the_cost_model_counts_the_runtimes_silent_rounds() {
    use c3d_runtime::ot::cot_pool::{round_params, rounds_for};
    for total in [
        0u64,
        1,
        100,
        1 << 14,
        (1 << 14) + 1,
        3 << 20,
        1 << 21,
        (1 << 21) + 7,
        5 << 22,
        123_456_789,
    ] {
        let p = round_params(total).unwrap();
        assert_eq!(
            c3d_passes::cost::silent_rounds(total),
            (rounds_for(&p, total), p.n),
            "{total} COTs"
        );
        assert_eq!(
            c3d_passes::cost::silent_round_bytes(p.n),
            p.round_bytes() + 10,
            "n = {}",
            p.n
        );
    }
}

/// A plan whose OT pool lacks the headroom its window differences need is refused by the
/// runtime's schedule, naming the layer and the reason (the compiler never writes one; a
/// tampered or hand-made plan might).
#[test]
fn an_ot_layer_the_rule_rejects_is_refused_by_name() {
    use c3d_runtime::session::Schedule;
    let mut c = compiled_as("c3d-tiny", &[], 0.0, NonlinearChoice::Ot);
    let g = &c.plan.graph;
    let pool = c
        .plan
        .layers
        .iter()
        .find(|l| matches!(g.node(l.node).op, c3d_ir::Op::MaxPoolRelu3d(_)))
        .expect("c3d-tiny has fused pools");
    let (pool, name) = (pool.node, g.node(pool.node).name.clone());
    let input = g.inputs_of(pool)[0];
    for l in c.plan.layers.iter_mut().filter(|l| l.node == input) {
        l.quant.headroom_bits = 0;
    }
    let be = c3d_runtime::he::fhers::FheRs::new(c.plan.fixed.p).unwrap();
    let Err(e) = Schedule::new(&c.plan, &be) else {
        panic!("a plan that breaks the OT rule is accepted");
    };
    let e = e.to_string();
    assert!(
        e.contains(&name) && e.contains("cannot run by OT comparisons") && e.contains("headroom"),
        "{e}"
    );
}
