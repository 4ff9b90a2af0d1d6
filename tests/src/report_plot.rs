//! `c3d-bench --render-report`: a c3d-run session report (`--report r.json`, the runtime's
//! `session::Report`) as an SVG of per-layer time and traffic, offline and online stacked,
//! coloured by how each step ran. Drawn by the compiler's plot module, as the bench plots are.

use c3d_compiler::plot::{protocol_colour, svg as draw, tint, Chart, Group, Panel, Segment};
use serde::Deserialize;
use std::path::Path;

/// The fields of a session report the plot reads (the JSON has more).
#[derive(Debug, Deserialize)]
pub struct SessionReport {
    /// "server" or "client".
    pub role: String,
    /// Model name.
    pub model: String,
    /// Plan hash (hex).
    pub plan_hash: String,
    /// Set-up seconds.
    #[serde(default)]
    pub setup_seconds: f64,
    /// Per phase.
    #[serde(default)]
    pub phases: Vec<PhaseRow>,
    /// Per layer and phase.
    pub layers: Vec<LayerRow>,
}

/// One phase in total.
#[derive(Debug, Deserialize)]
pub struct PhaseRow {
    /// "offline" or "online".
    pub phase: String,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Bytes this party received.
    pub bytes_received: u64,
}

/// One layer in one phase.
#[derive(Debug, Deserialize)]
pub struct LayerRow {
    /// "offline" or "online".
    pub phase: String,
    /// Layer name.
    pub layer: String,
    /// How it ran (the runtime's step protocol names).
    pub protocol: String,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Bytes this party sent.
    pub bytes_sent: u64,
    /// Bytes this party received.
    pub bytes_received: u64,
}

/// The runtime's step protocols, in the order their colours are given.
const PROTOCOLS: [&str; 8] = [
    "input",
    "local",
    "he-linear",
    "he-linear-gpu",
    "garbled",
    "garbled-streamed",
    "beaver-square",
    "ot-comparison",
];

fn colour(protocol: &str) -> &'static str {
    protocol_colour(protocol)
}

/// The chart of a report: one bar group per layer (in the order the layers first ran), its
/// offline step in the protocol's colour and its online step lighter.
pub fn report_svg(r: &SessionReport) -> String {
    let mut names: Vec<&str> = Vec::new();
    for l in &r.layers {
        if !names.contains(&l.layer.as_str()) {
            names.push(&l.layer);
        }
    }
    let groups = names
        .iter()
        .map(|name| {
            let (mut time, mut bytes) = (Vec::new(), Vec::new());
            for phase in ["offline", "online"] {
                for l in r
                    .layers
                    .iter()
                    .filter(|l| l.layer == *name && l.phase == phase)
                {
                    let c = colour(&l.protocol);
                    let fill = if phase == "online" {
                        tint(c, 0.5)
                    } else {
                        c.to_string()
                    };
                    time.push(Segment {
                        value: l.seconds,
                        fill: fill.clone(),
                    });
                    bytes.push(Segment {
                        value: (l.bytes_sent + l.bytes_received) as f64 / 1e6,
                        fill,
                    });
                }
            }
            Group {
                label: name.to_string(),
                bars: vec![time, bytes],
            }
        })
        .collect();
    let legend = PROTOCOLS
        .iter()
        .filter(|p| r.layers.iter().any(|l| l.protocol == **p))
        .map(|p| (p.to_string(), colour(p).to_string()))
        .collect();
    let mut notes: Vec<String> = r
        .phases
        .iter()
        .map(|p| {
            format!(
                "{}: {:.2} s, {:.1} MB sent, {:.1} MB received",
                p.phase,
                p.seconds,
                p.bytes_sent as f64 / 1e6,
                p.bytes_received as f64 / 1e6
            )
        })
        .collect();
    notes.push(format!(
        "set-up {:.2} s; plan {}",
        r.setup_seconds,
        &r.plan_hash[..r.plan_hash.len().min(16)]
    ));
    draw(&Chart {
        title: format!(
            "{} ({}'s report): per-layer time and traffic, offline solid, online light",
            r.model, r.role
        ),
        panels: vec![
            Panel {
                axis: "seconds".into(),
            },
            Panel {
                axis: "MB sent + received".into(),
            },
        ],
        groups,
        legend,
        notes,
    })
}

/// Reads the report at `input` and writes its chart to `output` atomically.
pub fn render_report(input: &Path, output: &Path) -> Result<(), String> {
    let b = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let r: SessionReport = serde_json::from_slice(&b)
        .map_err(|e| format!("{}: not a c3d-run report: {e}", input.display()))?;
    c3d_ir::format::write_atomic(output, report_svg(&r).as_bytes())
        .map_err(|e| format!("{}: {e}", output.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_runtime::session::report::{LayerReport, PhaseReport};
    use c3d_runtime::session::{Phase, Report, StepProtocol};

    fn layer(phase: Phase, name: &str, protocol: StepProtocol, s: f64, b: u64) -> LayerReport {
        LayerReport {
            phase,
            layer: name.into(),
            protocol,
            seconds: s,
            bytes_sent: b,
            bytes_received: b,
            rounds: 1,
            work: 0,
        }
    }

    /// A report as the runtime serialises it.
    fn sample() -> Report {
        use Phase::*;
        use StepProtocol::*;
        Report {
            role: "client".into(),
            model: "m<&>".into(),
            plan_hash: "ab".repeat(32),
            layers: vec![
                layer(Offline, "input", Input, 0.0, 0),
                layer(Offline, "conv<1>", HeLinear, 1.0, 2_000_000),
                layer(Offline, "relu", Garbled, 0.5, 1_000_000),
                layer(Online, "input", Input, 0.01, 1000),
                layer(Online, "conv<1>", HeLinear, 0.1, 0),
                layer(Online, "relu", Garbled, 0.2, 500_000),
            ],
            phases: vec![PhaseReport {
                phase: Offline,
                seconds: 1.5,
                bytes_sent: 3_000_000,
                bytes_received: 3_000_000,
                rounds: 3,
                peak_memory: 0,
            }],
            ..Report::default()
        }
    }

    /// Every tag closed in order (a chart has no comments or CDATA).
    fn balanced(svg: &str) -> bool {
        let mut stack = Vec::new();
        for tag in svg.split('<').skip(1) {
            let Some(t) = tag.split('>').next() else {
                return false;
            };
            if let Some(name) = t.strip_prefix('/') {
                if stack.pop() != Some(name.to_string()) {
                    return false;
                }
            } else if !t.ends_with('/') {
                stack.push(t.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        stack.is_empty()
    }

    #[test]
    fn a_runtime_report_draws_one_group_per_layer() {
        let r = sample();
        let json = serde_json::to_vec(&r).unwrap();
        let parsed: SessionReport = serde_json::from_slice(&json).unwrap();
        let s = report_svg(&parsed);
        assert!(balanced(&s), "{s}");
        let distinct: std::collections::BTreeSet<&str> =
            r.layers.iter().map(|l| l.layer.as_str()).collect();
        assert_eq!(
            s.matches(r#"<g class="bar-group">"#).count(),
            distinct.len()
        );
        assert!(s.contains("m&lt;&amp;&gt;") && s.contains("conv&lt;1&gt;"));
        assert!(!s.contains("conv<1>"));
        for p in ["he-linear", "garbled", "input"] {
            assert!(s.contains(&format!(">{p}</text>")), "legend {p}");
        }
        // Online steps are the lighter shade of their protocol's colour.
        assert!(s.contains(&tint(colour("garbled"), 0.5)));
    }

    #[test]
    fn bad_paths_and_bad_json_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("none.json");
        let e = render_report(&missing, &d.path().join("o.svg")).unwrap_err();
        assert!(e.contains("none.json"), "{e}");
        let junk = d.path().join("junk.json");
        std::fs::write(&junk, b"{\"role\": 3}").unwrap();
        let e = render_report(&junk, &d.path().join("o.svg")).unwrap_err();
        assert!(e.contains("not a c3d-run report"), "{e}");
        let good = d.path().join("r.json");
        std::fs::write(&good, serde_json::to_vec(&sample()).unwrap()).unwrap();
        let e = render_report(&good, &d.path().join("no/dir/o.svg")).unwrap_err();
        assert!(e.contains("no/dir/o.svg"), "{e}");
        render_report(&good, &d.path().join("o.svg")).unwrap();
        assert!(balanced(
            &std::fs::read_to_string(d.path().join("o.svg")).unwrap()
        ));
    }
}
