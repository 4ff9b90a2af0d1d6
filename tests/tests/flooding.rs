//! The statistical security docs/security.md claims for HE circuit privacy, checked on
//! compiled plans: over a whole session the client decrypts N coefficients of each of R
//! flooded replies, so the session's distance from weight-independent noise is at most
//! sum over layers of N R_l 2^(B_l - b_l - 1), which must stay below 2^-40 (the flooding is
//! sized for 2^-41). R is counted here independently of the compiler and runtime's
//! `session_replies`: by walking the steps both parties execute and listing each linear
//! layer's tiles; b is the width the runtime floods with.

use c3d_ir::he_model::NoiseBudget;
use c3d_passes::cost::plan_cost;
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::schedule::StepKind;
use c3d_runtime::session::Schedule;
use c3d_tests::{compile_default, export};
use std::path::Path;

/// Checks the bound for a compiled plan; returns (R, log2 of the session's bound).
fn session_bound(c: &c3d_compiler::Compiled) -> (u64, f64) {
    let be = FheRs::new(c.plan.fixed.p).unwrap();
    let sched = Schedule::new(&c.plan, &be).unwrap();
    let n = be.degree() as f64;
    // Every reply of every linear step: one per output group (a depthwise layer has one per
    // input block) and tile.
    let mut layers = Vec::new();
    for step in &sched.steps {
        if let StepKind::Linear {
            shape,
            packing,
            weight_mag_bits,
        } = &step.kind
        {
            let groups = if shape.depthwise {
                shape.c_in.div_ceil(packing.c_t)
            } else {
                shape.c_out.div_ceil(packing.m_o)
            };
            let replies = (packing.tiles(shape).len() * groups) as u64;
            layers.push((step.name.clone(), shape, packing, *weight_mag_bits, replies));
        }
    }
    let r: u64 = layers.iter().map(|l| l.4).sum();
    assert!(r > 0, "{}: no HE replies", c.plan.meta.name);
    assert_eq!(sched.flood.replies(), r, "the runtime's R");
    let mut total = 0.0f64;
    for (name, shape, packing, wb, replies) in &layers {
        // What server_linear floods with, over the bound it floods.
        let b = packing.check(shape, &be, *wb, &sched.flood).unwrap();
        let noise = packing.noise_bits(shape, &be, *wb);
        let per_coeff = 2f64.powi(noise as i32 - b as i32 - 1);
        // Even if this layer's noise bound held for every reply of the session.
        assert!(
            n * r as f64 * per_coeff <= 2f64.powi(-41),
            "{name}: noise 2^{noise}, flood 2^{b}, R = {r}"
        );
        total += n * *replies as f64 * per_coeff;
    }
    assert!(total <= 2f64.powi(-40), "session: 2^{}", total.log2());
    // The cost model reports the same R and bound.
    let cost = plan_cost(&c.plan, None);
    assert_eq!(cost.he_replies, r);
    let d = cost.he_distance_log2.expect("a bound");
    assert!((d - total.log2()).abs() < 1e-9, "{d} vs {}", total.log2());
    (r, total.log2())
}

#[test]
fn c3d_tiny_session_flooding_is_within_2_to_minus_40() {
    let dir = tempfile::tempdir().unwrap();
    let c = compile_default(&export(dir.path(), "c3d-tiny", None, 3));
    let (r, d) = session_bound(&c);
    eprintln!("c3d-tiny: R = {r}, session distance <= 2^{d:.2}");
    // Flooding 2^40 over each reply's noise alone would leave N R 2^-41 = 2^-41 * 8192 R:
    // above 2^-40 for any session, about 2^-23 for this one.
    let per_reply_only = (8192.0 * r as f64).log2() - 41.0;
    assert!(per_reply_only > -30.0, "2^{per_reply_only}");
}

#[test]
fn i3d_tiny_and_the_motion_model_sessions_are_within_2_to_minus_40() {
    let dir = tempfile::tempdir().unwrap();
    let c = compile_default(&export(dir.path(), "i3d-tiny", None, 3));
    let (r, d) = session_bound(&c);
    eprintln!("i3d-tiny: R = {r}, session distance <= 2^{d:.2}");
    let motion = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/motion/c3d-motion.onnx");
    let c = compile_default(&motion);
    let (r, d) = session_bound(&c);
    eprintln!("c3d-motion: R = {r}, session distance <= 2^{d:.2}");
}

#[test]
fn parameters_that_cannot_carry_the_flooding_are_refused_naming_the_layer() {
    // A 53-bit prime gets the 185-bit modulus: it floods at most 2^129, less than the
    // session's flooding of any packing of c3d-tiny's layers at 12 fractional bits needs.
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d-tiny", Some(10), 3);
    let p = c3d_ir::fixed::candidate_primes()
        .into_iter()
        .find(|p| 64 - p.leading_zeros() == 53)
        .unwrap();
    let opts = c3d_compiler::CompileOptions {
        quant: c3d_passes::QuantConfig {
            prime: Some(p),
            frac_bits: Some(12),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = match c3d_compiler::compile(&onnx, &opts, |_| {}) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 185-bit modulus cannot flood c3d-tiny at f = 12"),
    };
    for want in [
        "no HE packing fits at the forced 12 fractional bits",
        "layer `",
        "flooded to 2^",
        "statistical security over N = 8192 coefficients",
        "the parameters have 185 bits",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}
