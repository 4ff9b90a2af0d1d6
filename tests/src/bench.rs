//! The end-to-end benchmark behind `c3d-bench`: for each model, export, compile, run the
//! server and the client as two `c3d-run` processes over loopback on the bundled clip, time
//! the plaintext float inference of the same ONNX with tract on the same preprocessed clip,
//! check the secure output against the plaintext fixed-point simulation, and render a
//! markdown table and per-layer SVG plots.

use crate::shaper::Link;
use c3d_compiler::npy::read_f32;
use c3d_compiler::{compile, CompileOptions};
use c3d_ir::{simulate, NetworkModel, NonlinearChoice, Plan};
use c3d_passes::cost::plan_cost;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// How to run the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Where models, plans, reports and results go.
    pub work: PathBuf,
    /// The clip.
    pub clip: PathBuf,
    /// Threads per party (`c3d-run --threads`).
    pub threads: Option<usize>,
    /// Client spool directory.
    pub spool: Option<PathBuf>,
    /// Client spool limit, GB.
    pub spool_limit: Option<f64>,
    /// Server memory ceiling, MB.
    pub memory_limit: Option<f64>,
    /// Generated calibration clips for the compiler.
    pub calib_samples: usize,
    /// Compare the secure output with the fixed-point simulation.
    pub check: bool,
    /// Loopback port.
    pub port: u16,
    /// Run the server's online linear layers on the GPU (`c3d-run --gpu`).
    pub gpu: bool,
    /// The comparison protocols the plan may use (`c3dc compile --nonlinear`).
    pub nonlinear: NonlinearChoice,
    /// An emulated link between the parties (name and figures), or plain loopback.
    pub link: Option<(String, Link)>,
}

/// One model's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    /// Model name.
    pub model: String,
    /// Input shape.
    pub input: String,
    /// Compile seconds.
    pub compile_s: f64,
    /// Set-up seconds (handshake, keys, base OTs), client side.
    pub setup_s: f64,
    /// Offline seconds, client side.
    pub offline_s: f64,
    /// Online seconds, client side.
    pub online_s: f64,
    /// Client bytes sent, offline and online.
    pub sent: [u64; 2],
    /// Client bytes received, offline and online.
    pub received: [u64; 2],
    /// Peak resident memory, client and server.
    pub peak: [u64; 2],
    /// Bytes the client spooled to disk.
    pub spooled: u64,
    /// Garbled layers streamed online.
    pub streamed: Vec<String>,
    /// Plaintext float inference with tract (best of three), seconds.
    pub tract_s: f64,
    /// Whether the secure output equals the fixed-point simulation (None: not checked).
    pub equals_simulation: Option<bool>,
    /// The cost model's total traffic, bytes.
    pub cost_model_bytes: u64,
    /// Per layer, the server's view: name, offline s, online s, offline bytes, online bytes
    /// (both directions).
    pub layers: Vec<(String, f64, f64, u64, u64)>,
    /// Threads per party.
    pub threads: usize,
    /// The machine, in words.
    pub machine: String,
    /// Date of the run (UTC, YYYY-MM-DD).
    pub date: String,
    /// The comparison protocols and the network, as `--nonlinear` and `--net` name them
    /// (empty in results recorded before they existed: auto... garbled, loopback).
    #[serde(default)]
    pub variant: String,
}

impl BenchResult {
    /// Set-up, offline and online, seconds.
    pub fn total_s(&self) -> f64 {
        self.setup_s + self.offline_s + self.online_s
    }
}

/// Runs the benchmark on one model (a `c3d-models` variant name; `i3d` runs at 16 frames).
pub fn run_model(name: &str, o: &BenchOptions) -> Result<BenchResult, String> {
    let v = c3d_models::variant(name).ok_or_else(|| format!("unknown model `{name}`"))?;
    std::fs::create_dir_all(&o.work).map_err(|e| format!("{}: {e}", o.work.display()))?;
    let frames = (name == "i3d").then_some(16);
    let onnx = o.work.join(format!("{name}.onnx"));
    let proto = c3d_models::build(&v, None, frames, 1);
    std::fs::write(&onnx, c3d_models::onnx_builder::to_bytes(&proto))
        .map_err(|e| format!("{}: {e}", onnx.display()))?;
    eprintln!("[{name}] compiling");
    let t0 = Instant::now();
    let mut copts = CompileOptions::default();
    copts.quant.calib_samples = o.calib_samples;
    copts.quant.network = NetworkModel {
        nonlinear: o.nonlinear,
        ..NetworkModel::default()
    };
    if let Some((_, l)) = o.link {
        copts.quant.network.bandwidth_mbit = l.mbit;
        copts.quant.network.rtt_ms = l.rtt_ms;
    }
    let c = compile(&onnx, &copts, |_| {}).map_err(|e| format!("compile: {e}"))?;
    let compile_s = t0.elapsed().as_secs_f64();
    let plan_path = o.work.join(format!("{name}.plan"));
    c.weights
        .save(&c3d_ir::format::weights_path_for(&plan_path))
        .map_err(|e| e.to_string())?;
    c.plan.save(&plan_path).map_err(|e| e.to_string())?;
    let cost = plan_cost(&c.plan, Some(&c.weights)).total;
    let cost_model_bytes = cost.bytes_offline() + cost.bytes_online();
    drop(c);

    let bin = sibling("c3d-run")?;
    let (srep, crep, clip_npy, out_npy) = (
        o.work.join(format!("{name}-server.json")),
        o.work.join(format!("{name}-client.json")),
        o.work.join(format!("{name}-clip.npy")),
        o.work.join(format!("{name}-out.npy")),
    );
    let addr = format!("127.0.0.1:{}", o.port);
    let mut common: Vec<String> = vec!["--timeout".into(), "3600".into()];
    if let Some(t) = o.threads {
        common.extend(["--threads".into(), t.to_string()]);
    }
    let mut server = Command::new(&bin);
    server
        .args(["--role", "server"])
        .arg(&plan_path)
        .args([
            "--listen",
            &addr,
            "--sessions",
            "1",
            "--max-clients",
            "1",
            "--report",
        ])
        .arg(&srep)
        .args(&common)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(m) = o.memory_limit {
        server.args(["--memory-limit", &m.to_string()]);
    }
    if o.gpu {
        server.arg("--gpu");
    }
    let server = Reaped(
        server
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?,
    );
    // Through the emulated link, when there is one: a relay on the next port.
    let client_addr = match o.link {
        Some((_, link)) => {
            let front = format!("127.0.0.1:{}", o.port + 1);
            let l = std::net::TcpListener::bind(&front).map_err(|e| format!("{front}: {e}"))?;
            crate::shaper::relay_once(l, addr.clone(), link);
            front
        }
        None => addr.clone(),
    };
    let mut client = Command::new(&bin);
    client
        .args(["--role", "client"])
        .arg(&plan_path)
        .arg(&o.clip)
        .args([
            "--connect",
            &client_addr,
            "--connect-wait",
            "60",
            "--report",
        ])
        .arg(&crep)
        .arg("--save-input")
        .arg(&clip_npy)
        .arg("--output")
        .arg(&out_npy)
        .args(&common)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(d) = &o.spool {
        client.arg("--spool").arg(d);
    }
    if let Some(g) = o.spool_limit {
        client.args(["--spool-limit", &g.to_string()]);
    }
    eprintln!("[{name}] secure run (server and client over {addr})");
    let st = client
        .status()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let sst = server.wait()?;
    if !st.success() || !sst.success() {
        return Err(format!("secure run failed (client {st}, server {sst})"));
    }
    let cj = read_json(&crep)?;
    let sj = read_json(&o.work.join(format!("{name}-server-1.json")))?;

    let (plan, _) = Plan::load(&plan_path).map_err(|e| e.to_string())?;
    let clip = read_f32(&clip_npy).map_err(|e| e.to_string())?;
    eprintln!("[{name}] tract float inference");
    let mut tract_s = f64::INFINITY;
    for _ in 0..3 {
        let (_, _, run) =
            c3d_compiler::tract_ref::run_tract_timed(&onnx, &clip).map_err(|e| e.to_string())?;
        tract_s = tract_s.min(run);
    }
    let equals_simulation = if o.check {
        eprintln!("[{name}] fixed-point simulation");
        let w = plan
            .load_weights(&c3d_ir::format::weights_path_for(&plan_path))
            .map_err(|e| e.to_string())?;
        let want = simulate(&plan, &w, &clip).map_err(|e| e.to_string())?;
        let got = read_f32(&out_npy).map_err(|e| e.to_string())?;
        Some(got.data == want.output.data)
    } else {
        None
    };

    let ph = |j: &Value, i: usize, k: &str| j["phases"][i][k].as_u64().unwrap_or(0);
    // Per layer from the server's side: it does the linear layers' work online (the client
    // only waits for it, inside the next garbled layer's time), and it waits for the client's
    // evaluation in the garbled ones, so its layer times add up to the phase.
    let mut layers: Vec<(String, f64, f64, u64, u64)> = Vec::new();
    for l in sj["layers"].as_array().into_iter().flatten() {
        let name = l["layer"].as_str().unwrap_or("?").to_string();
        let s = l["seconds"].as_f64().unwrap_or(0.0);
        let b = l["bytes_sent"].as_u64().unwrap_or(0) + l["bytes_received"].as_u64().unwrap_or(0);
        let online = l["phase"] == "online";
        match layers.iter_mut().find(|x| x.0 == name) {
            Some(x) if online => {
                x.2 += s;
                x.4 += b;
            }
            Some(x) => {
                x.1 += s;
                x.3 += b;
            }
            None if online => layers.push((name, 0.0, s, 0, b)),
            None => layers.push((name, s, 0.0, b, 0)),
        }
    }
    let threads = o.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    Ok(BenchResult {
        model: name.to_string(),
        input: plan
            .graph
            .io()
            .map(|(i, _)| plan.graph.node(i).shape.to_string())
            .unwrap_or_default(),
        compile_s,
        setup_s: cj["setup_seconds"].as_f64().unwrap_or(0.0),
        offline_s: cj["phases"][0]["seconds"].as_f64().unwrap_or(0.0),
        online_s: cj["phases"][1]["seconds"].as_f64().unwrap_or(0.0),
        sent: [ph(&cj, 0, "bytes_sent"), ph(&cj, 1, "bytes_sent")],
        received: [ph(&cj, 0, "bytes_received"), ph(&cj, 1, "bytes_received")],
        peak: [
            cj["peak_memory"].as_u64().unwrap_or(0),
            sj["peak_memory"].as_u64().unwrap_or(0),
        ],
        spooled: cj["spooled_bytes"].as_u64().unwrap_or(0),
        streamed: cj["streamed_layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        tract_s,
        equals_simulation,
        cost_model_bytes,
        layers,
        threads,
        machine: machine(o.gpu),
        date: today(),
        variant: variant(o),
    })
}

/// The run's protocol and network, in the flags' words.
pub fn variant(o: &BenchOptions) -> String {
    let n = match o.nonlinear {
        NonlinearChoice::Gc => "gc",
        NonlinearChoice::Ot => "ot",
        NonlinearChoice::Auto => "auto",
    };
    let net = o
        .link
        .as_ref()
        .map_or("loopback", |(name, _)| name.as_str());
    format!("{n}, {net}")
}

/// A child process killed if it is still running when dropped (the server, when the client
/// fails).
struct Reaped(Child);

impl Reaped {
    fn wait(mut self) -> Result<std::process::ExitStatus, String> {
        self.0.wait().map_err(|e| e.to_string())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A binary built beside this one.
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe
        .parent()
        .map(|d| d.join(name))
        .ok_or("no directory of the running binary")?;
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found; build it first (cargo build --release --bins)",
            p.display()
        ))
    }
}

fn read_json(p: &Path) -> Result<Value, String> {
    let b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

/// The machine, in words: CPU model, cores, memory, and whether the server was asked to use
/// a GPU (its own log says which device, or why it fell back to the CPU).
pub fn machine(gpu: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or("? GiB".into(), |kb| format!("{:.0} GiB", kb / 1048576.0));
    let gpu = if gpu {
        "server run with --gpu"
    } else {
        "no GPU used"
    };
    format!("{cpu}, {cores} cores, {mem} memory, {gpu}")
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// The markdown table of results, with the machine and date of each row below it.
pub fn markdown(rs: &[BenchResult]) -> String {
    let mut s = String::new();
    s.push_str(
        "| model | protocol, network | input | threads | offline s | online s | total s | client sent MB (off / on) | client received MB (off / on) | spooled MB | streamed layers | peak MB client / server | tract float s | total / float | online / float | secure = fixed point |\n",
    );
    s.push_str("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for r in rs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} | {} | {:.0} / {:.0} | {:.4} | {:.0}x | {:.0}x | {} |",
            r.model,
            if r.variant.is_empty() { "gc, loopback" } else { &r.variant },
            r.input,
            r.threads,
            r.offline_s,
            r.online_s,
            r.total_s(),
            mb(r.sent[0]),
            mb(r.sent[1]),
            mb(r.received[0]),
            mb(r.received[1]),
            mb(r.spooled),
            r.streamed.len(),
            mb(r.peak[0]),
            mb(r.peak[1]),
            r.tract_s,
            r.total_s() / r.tract_s,
            r.online_s / r.tract_s,
            match r.equals_simulation {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not checked",
            }
        );
    }
    s.push('\n');
    let mut seen = std::collections::HashSet::new();
    for r in rs {
        let line = format!("- {}: {}, {}.", r.model, r.date, r.machine);
        if seen.insert(line.clone()) {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

/// An SVG of one model's per-layer time and bytes (offline and online stacked), drawn by
/// the compiler's plot module.
pub fn svg(r: &BenchResult) -> String {
    use c3d_compiler::plot::{svg as draw, tint, Chart, Group, Panel, Segment, PALETTE};
    let (off, on) = (PALETTE[0].to_string(), tint(PALETTE[0], 0.5));
    let pair = |a: f64, b: f64| {
        vec![
            Segment {
                value: a,
                fill: off.clone(),
            },
            Segment {
                value: b,
                fill: on.clone(),
            },
        ]
    };
    let groups = r
        .layers
        .iter()
        .filter(|l| l.1 + l.2 > 0.0005 || l.3 + l.4 > 0)
        .map(|l| Group {
            label: l.0.clone(),
            bars: vec![pair(l.1, l.2), pair(mb(l.3), mb(l.4))],
        })
        .collect();
    draw(&Chart {
        title: format!(
            "{}: per-layer time (server's view) and traffic",
            r.model
        ),
        panels: vec![
            Panel {
                axis: "seconds".into(),
            },
            Panel {
                axis: "MB both ways".into(),
            },
        ],
        groups,
        legend: vec![("offline".into(), off.clone()), ("online".into(), on.clone())],
        notes: vec![format!(
            "offline {:.2} s, online {:.2} s; {:.1} MB offline, {:.1} MB online; tract float {:.4} s",
            r.offline_s,
            r.online_s,
            mb(r.sent[0] + r.received[0]),
            mb(r.sent[1] + r.received[1]),
            r.tract_s
        )],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchResult {
        BenchResult {
            model: "m<1>".into(),
            input: "1x3x4x8x8".into(),
            compile_s: 1.0,
            setup_s: 0.5,
            offline_s: 2.0,
            online_s: 1.5,
            sent: [10_000_000, 1_000_000],
            received: [20_000_000, 2_000_000],
            peak: [100_000_000, 200_000_000],
            spooled: 5_000_000,
            streamed: vec!["relu".into()],
            tract_s: 0.01,
            equals_simulation: Some(true),
            cost_model_bytes: 33_000_000,
            layers: vec![
                ("conv".into(), 1.0, 0.5, 100, 10),
                ("relu".into(), 1.0, 1.0, 0, 50),
            ],
            threads: 2,
            machine: "test box".into(),
            date: "2026-11-22".into(),
            variant: "ot, wan".into(),
        }
    }

    #[test]
    fn dates_are_civil() {
        let t = today();
        assert_eq!(t.len(), 10);
        assert!(t.as_str() >= "2026-01-01", "{t}");
    }

    #[test]
    fn table_row_has_the_ratios() {
        let md = markdown(&[sample()]);
        // total 4.0 s over 0.01 s of tract: 400x; online 150x.
        assert!(md.contains("| 4.00 |"), "{md}");
        assert!(md.contains("| 400x | 150x | yes |"), "{md}");
        assert!(md.contains("10.0 / 1.0"), "{md}");
    }

    #[test]
    fn svg_is_well_formed_and_escaped() {
        let s = svg(&sample());
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("m&lt;1&gt;"));
        // The background, two legend swatches, and per layer two panels of two segments.
        assert_eq!(s.matches("<rect").count(), 1 + 2 + 2 * 2 * 2);
        assert_eq!(s.matches(r#"<g class="bar-group">"#).count(), 2);
    }
}
