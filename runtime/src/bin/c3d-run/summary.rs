//! What the client prints after a run: the human summary, and the `--json` object.

use c3d_ir::Plan;
use c3d_runtime::party::Prediction;
use c3d_runtime::session::{Phase, PhaseReport};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn phase(pred: &Prediction, ph: Phase) -> Option<&PhaseReport> {
    pred.report.phases.iter().find(|p| p.phase == ph)
}

/// The human summary: the top classes, time and bytes per phase.
pub fn text(pred: &Prediction, k: usize, total: f64) -> String {
    let mut s = String::new();
    let k = k.min(pred.top.len());
    let _ = writeln!(s, "secure top-{k}:");
    for c in pred.top.iter().take(k) {
        if pred.softmax {
            let _ = writeln!(s, "  {:>6.2}%  {}", c.probability * 100.0, c.label);
        } else {
            let _ = writeln!(s, "  {:>9.4}  {}", c.probability, c.label);
        }
    }
    let secs = |ph| phase(pred, ph).map_or(0.0, |p| p.seconds);
    let _ = writeln!(
        s,
        "time: setup {:.2} s, offline {:.2} s, online {:.2} s, total {total:.2} s",
        pred.report.setup_seconds,
        secs(Phase::Offline),
        secs(Phase::Online),
    );
    let sent = |ph| phase(pred, ph).map_or(0, |p| p.bytes_sent);
    let recv = |ph| phase(pred, ph).map_or(0, |p| p.bytes_received);
    let _ = writeln!(
        s,
        "bytes: offline {:.1} MB sent / {:.1} MB received, online {:.1} MB sent / {:.1} MB received; peak memory {:.0} MB",
        mb(sent(Phase::Offline)),
        mb(recv(Phase::Offline)),
        mb(sent(Phase::Online)),
        mb(recv(Phase::Online)),
        mb(pred.report.peak_memory)
    );
    if !pred.report.streamed_layers.is_empty() {
        let _ = writeln!(
            s,
            "streamed online (beyond the spool limit): {}; spooled {:.1} MB",
            pred.report.streamed_layers.join(", "),
            mb(pred.report.spooled_bytes)
        );
    }
    s
}

/// The `--json` object: the top classes, time and bytes per phase, the plan hash and the
/// protocol each layer ran with. Every number is the report's.
pub fn json(plan: &Plan, pred: &Prediction, k: usize, total: f64) -> Value {
    let r = &pred.report;
    let phases: BTreeMap<&str, Value> = r
        .phases
        .iter()
        .map(|p| {
            (
                p.phase.name(),
                json!({
                    "seconds": p.seconds,
                    "bytes_sent": p.bytes_sent,
                    "bytes_received": p.bytes_received,
                    "rounds": p.rounds,
                }),
            )
        })
        .collect();
    // A layer's protocol as it ran online (the GPU and streaming refine the plan's).
    let mut layers: Vec<(String, String)> = Vec::new();
    for l in &r.layers {
        let proto = l.protocol.as_str().to_string();
        match layers.iter_mut().find(|(n, _)| *n == l.layer) {
            Some(e) if l.phase == Phase::Online => e.1 = proto,
            Some(_) => {}
            None => layers.push((l.layer.clone(), proto)),
        }
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, p) in &layers {
        *counts.entry(p.as_str()).or_default() += 1;
    }
    json!({
        "model": plan.meta.name,
        "plan_hash": r.plan_hash,
        "softmax": pred.softmax,
        "top": pred.top.iter().take(k).collect::<Vec<_>>(),
        "seconds": {
            "setup": r.setup_seconds,
            "offline": phase(pred, Phase::Offline).map_or(0.0, |p| p.seconds),
            "online": phase(pred, Phase::Online).map_or(0.0, |p| p.seconds),
            "total": total,
        },
        "phases": phases,
        "bytes_sent": r.bytes_sent,
        "bytes_received": r.bytes_received,
        "peak_memory": r.peak_memory,
        "protocols": counts,
        "layers": layers
            .iter()
            .map(|(n, p)| json!({"layer": n, "protocol": p}))
            .collect::<Vec<_>>(),
        "streamed_layers": r.streamed_layers,
    })
}
