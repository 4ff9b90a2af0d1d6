//! Fits the rates progress bars weight steps by (`party::progress::TYPICAL`) to a measured
//! session: per step kind, the work counts of the plan's schedule against the seconds of a
//! client's `--report`. Prints the fitted rates and, per phase, each step's estimated and
//! measured share of the phase.
//!
//! ```text
//! cargo run --release -p c3d-runtime --example progress_fit -- plan.bin client-report.json
//! ```

use c3d_ir::Plan;
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::party::progress::TYPICAL;
use c3d_runtime::session::deadline::step_work;
use c3d_runtime::session::schedule::StepKind;
use c3d_runtime::session::{Phase, Schedule};
use std::collections::HashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (plan, report) = match (args.next(), args.next()) {
        (Some(p), Some(r)) => (p, r),
        _ => return Err("usage: progress_fit PLAN REPORT.json".into()),
    };
    let (plan, _) = Plan::load(plan.as_ref())?;
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    let be = FheRs::new(plan.fixed.p)?;
    let sched = Schedule::new(&plan, &be)?;
    // Measured seconds per (phase, layer).
    let mut secs: HashMap<(String, String), f64> = HashMap::new();
    for l in rep["layers"].as_array().ok_or("report without layers")? {
        let key = (
            l["phase"].as_str().unwrap_or("").to_string(),
            l["layer"].as_str().unwrap_or("").to_string(),
        );
        *secs.entry(key).or_default() += l["seconds"].as_f64().unwrap_or(0.0);
    }
    let measured = |ph: &str, name: &str| {
        secs.get(&(ph.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0.0)
    };
    // HE offline: seconds = a * products + b * ciphertexts, least squares over the layers.
    let (mut spp, mut spc, mut scc, mut sp, mut sc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    // OT: COTs expanded ahead offline, and all COTs online (with the rest of the expansion).
    let mut ahead = TYPICAL.expand_ahead_cots.unwrap_or(u64::MAX);
    let (mut early, mut early_s, mut late, mut used, mut online_s) = (0u64, 0.0, 0u64, 0u64, 0.0);
    // Layers that expand nothing ahead: their offline time is the rounds' preparation.
    let (mut prep_n, mut prep_s, mut early_n) = (0u64, 0.0, 0u64);
    let (mut macs, mut macs_s) = (0.0, 0.0);
    for step in &sched.steps {
        match &step.kind {
            StepKind::Linear { shape, packing, .. } => {
                let p = packing.products(shape) as f64;
                let c = (packing.cts_in(shape) + packing.cts_out(shape)) as f64;
                let t = measured("offline", &step.name);
                (spp, spc, scc, sp, sc) = (
                    spp + p * p,
                    spc + p * c,
                    scc + c * c,
                    sp + p * t,
                    sc + c * t,
                );
                macs += shape.weight_len() as f64 * shape.output_len() as f64
                    / shape.c_out.max(1) as f64;
                macs_s += measured("online", &step.name);
            }
            StepKind::Compared(l) => {
                let (f, r) = l.cots();
                let e = (f + r).min(ahead);
                ahead -= e;
                late += f + r - e;
                used += f + r;
                if e == 0 {
                    prep_n += f + r;
                    prep_s += measured("offline", &step.name);
                } else {
                    early += e;
                    early_n += f + r;
                    early_s += measured("offline", &step.name);
                }
                online_s += measured("online", &step.name);
            }
            _ => {}
        }
    }
    let det = spp * scc - spc * spc;
    let (a, b) = if det.abs() > 0.0 {
        ((sp * scc - sc * spc) / det, (spp * sc - spc * sp) / det)
    } else {
        (sp / spp.max(1.0), 0.0)
    };
    println!("fitted: he_product_s {a:.3e}, he_ciphertext_s {b:.3e}");
    let prep = if prep_s > 0.0 {
        prep_n as f64 / prep_s
    } else {
        f64::INFINITY
    };
    println!("fitted: cots_prepared_per_s {prep:.3e} ({prep_n} COTs in {prep_s:.2} s)");
    let early_s = early_s - early_n as f64 / prep;
    if early > 0 && early_s > 0.0 {
        let exp = early as f64 / early_s;
        println!("fitted: cots_expanded_per_s {exp:.3e} ({early} COTs in {early_s:.2} s)");
        let rest = online_s - late as f64 / exp;
        if rest > 0.0 {
            println!(
                "fitted: cots_used_per_s {:.3e} ({used} COTs, {rest:.2} s)",
                used as f64 / rest
            );
        }
    }
    if macs_s > 0.0 {
        println!("fitted: macs_per_s {:.3e}", macs / macs_s);
    }
    for (ph, name) in [(Phase::Offline, "offline"), (Phase::Online, "online")] {
        let w = step_work(&sched, &[], ph, &TYPICAL);
        let total_w: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let total_m: f64 = sched
            .steps
            .iter()
            .map(|s| measured(name, &s.name))
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        println!("\n{name}: step, estimated share, measured share");
        for (s, x) in sched.steps.iter().zip(&w) {
            let m = measured(name, &s.name);
            if x / total_w > 0.005 || m / total_m > 0.005 {
                println!(
                    "  {:<28} {:>5.1} % {:>5.1} %",
                    s.name,
                    100.0 * x / total_w,
                    100.0 * m / total_m
                );
            }
        }
    }
    Ok(())
}
