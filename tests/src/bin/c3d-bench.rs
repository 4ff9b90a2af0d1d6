//! c3d-bench: secure end-to-end runs of the generated models against their plaintext float
//! inference (tract), with a markdown table and per-layer SVG plots.
//!
//! ```text
//! c3d-bench [MODEL...] [--threads N] [--spool DIR] [--spool-limit GB] [--memory-limit MB]
//! c3d-bench --render
//! c3d-bench --render-report REPORT.json [--svg OUT.svg]
//! ```
//!
//! Each model's result is kept as JSON under `--results` (default docs/bench/results), so
//! models run at different times (full C3D takes most of an hour on two cores) end up in one
//! table: docs/bench.md's table between its markers, and docs/bench/MODEL.svg.
//! `--render-report` draws one c3d-run `--report` JSON instead, and runs nothing.

#![forbid(unsafe_code)]

use c3d_ir::NonlinearChoice;
use c3d_tests::bench::{markdown, run_model, svg, BenchOptions, BenchResult};
use c3d_tests::shaper::Link;
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Benchmarks secure inference against plaintext float inference.
#[derive(Parser, Debug)]
#[command(name = "c3d-bench")]
struct Args {
    /// Models (c3d-models variants): c3d-tiny, c3d-small, c3d, i3d-tiny, i3d (16 frames).
    #[arg(default_values_t = ["c3d-tiny".to_string(), "i3d-tiny".to_string(), "c3d-small".to_string()])]
    models: Vec<String>,
    /// Only re-render the table and plots from the results kept so far.
    #[arg(long)]
    render: bool,
    /// Only draw this c3d-run session report (`--report` JSON) as SVG, per layer and phase.
    #[arg(long)]
    render_report: Option<PathBuf>,
    /// Where --render-report writes (default: the report's path with .svg).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Threads per party (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Client spool directory.
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Client spool limit in GB (beyond it garbled layers are streamed online).
    #[arg(long)]
    spool_limit: Option<f64>,
    /// Server memory ceiling in MB.
    #[arg(long)]
    memory_limit: Option<f64>,
    /// Generated calibration clips for the compiler.
    #[arg(long, default_value_t = 2)]
    calib_samples: usize,
    /// Skip the check against the plaintext fixed-point simulation.
    #[arg(long)]
    no_check: bool,
    /// The clip.
    #[arg(long, default_value = "models/clips/demo.mp4")]
    clip: PathBuf,
    /// Models, plans and reports.
    #[arg(long, default_value = "out/bench")]
    work: PathBuf,
    /// Per-model results (JSON).
    #[arg(long, default_value = "docs/bench/results")]
    results: PathBuf,
    /// The markdown file whose table is rewritten (between its markers).
    #[arg(long, default_value = "docs/bench.md")]
    doc: PathBuf,
    /// Loopback port.
    #[arg(long, default_value_t = 7990)]
    port: u16,
    /// Server: online linear layers on the GPU (a c3d-run built with --features cuda).
    #[arg(long)]
    gpu: bool,
    /// Comparison protocols: garbled circuits, OT comparisons, or the compiler's choice for
    /// the network of --net.
    #[arg(long, default_value = "auto", value_parser = ["gc", "ot", "auto"])]
    nonlinear: String,
    /// The network between the parties: plain loopback, or an emulated LAN (1 Gbit/s, 0.5 ms
    /// RTT) or WAN (200 Mbit/s, 40 ms RTT) through a user-space relay.
    #[arg(long, default_value = "loopback", value_parser = ["loopback", "lan", "wan"])]
    net: String,
}

const ORDER: [&str; 5] = ["c3d-tiny", "c3d-small", "c3d", "i3d-tiny", "i3d"];
const BEGIN: &str = "<!-- c3d-bench table begin -->";
const END: &str = "<!-- c3d-bench table end -->";

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("c3d-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: &Args) -> Result<(), String> {
    if let Some(report) = &a.render_report {
        let out = a
            .svg
            .clone()
            .unwrap_or_else(|| report.with_extension("svg"));
        c3d_tests::report_plot::render_report(report, &out)?;
        eprintln!("wrote {}", out.display());
        return Ok(());
    }
    if a.svg.is_some() {
        return Err("--svg goes with --render-report".into());
    }
    std::fs::create_dir_all(&a.results).map_err(|e| format!("{}: {e}", a.results.display()))?;
    if !a.render {
        let o = BenchOptions {
            work: a.work.clone(),
            clip: a.clip.clone(),
            threads: a.threads,
            spool: a.spool.clone(),
            spool_limit: a.spool_limit,
            memory_limit: a.memory_limit,
            calib_samples: a.calib_samples,
            check: !a.no_check,
            port: a.port,
            gpu: a.gpu,
            nonlinear: match a.nonlinear.as_str() {
                "gc" => NonlinearChoice::Gc,
                "ot" => NonlinearChoice::Ot,
                _ => NonlinearChoice::Auto,
            },
            link: Link::named(&a.net).map(|l| (a.net.clone(), l)),
        };
        for m in &a.models {
            let r = run_model(m, &o).map_err(|e| format!("{m}: {e}"))?;
            eprintln!(
                "[{m}] offline {:.2} s, online {:.2} s, tract {:.4} s, secure = fixed point: {:?}",
                r.offline_s, r.online_s, r.tract_s, r.equals_simulation
            );
            let j = serde_json::to_vec_pretty(&r).map_err(|e| e.to_string())?;
            let file = if a.nonlinear == "auto" && a.net == "loopback" {
                format!("{m}.json")
            } else {
                format!("{m}-{}-{}.json", a.nonlinear, a.net)
            };
            write(&a.results.join(file), &j)?;
        }
    }
    render(a)
}

fn write(p: &Path, b: &[u8]) -> Result<(), String> {
    c3d_ir::format::write_atomic(p, b).map_err(|e| format!("{}: {e}", p.display()))
}

fn render(a: &Args) -> Result<(), String> {
    let mut rs: Vec<BenchResult> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.results)
        .map_err(|e| format!("{}: {e}", a.results.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for p in files {
        let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let r: BenchResult =
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))?;
        if ORDER.contains(&r.model.as_str()) {
            rs.push(r);
        }
    }
    rs.sort_by_key(|r| {
        let at = ORDER
            .iter()
            .position(|m| *m == r.model)
            .unwrap_or(ORDER.len());
        (at, r.variant.clone())
    });
    let dir = a.doc.with_extension("");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for r in &rs {
        let name = if r.variant.is_empty() || r.variant == "auto, loopback" {
            r.model.clone()
        } else {
            format!("{}-{}", r.model, r.variant.replace(", ", "-"))
        };
        write(&dir.join(format!("{name}.svg")), svg(r).as_bytes())?;
    }
    let table = markdown(&rs);
    let doc = std::fs::read_to_string(&a.doc).unwrap_or_default();
    let new = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]),
        _ => format!("{doc}\n{BEGIN}\n{table}{END}\n"),
    };
    write(&a.doc, new.as_bytes())?;
    print!("{table}");
    Ok(())
}
