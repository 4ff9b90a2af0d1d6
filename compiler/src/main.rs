//! c3dc: compiles ONNX 3D-CNN models into secure execution plans, simulates plans in
//! fixed point, and inspects them.

#![forbid(unsafe_code)]

use c3d_compiler::report::{peak_rss_bytes, LayerTime, Phase, RunReport};
use c3d_compiler::{
    compile, inspect, npy, summary, tract_ref, CompileError, CompileOptions, ImportOptions,
};
use c3d_ir::format::{hex, weights_path_for};
use c3d_ir::{Plan, Preprocess, Tensor};
use c3d_passes::QuantConfig;
use clap::{Parser, Subcommand};
use miette::{miette, Report};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "c3dc",
    version,
    about = "Compiles ONNX 3D-CNN models into secure two-party execution plans"
)]
struct Cli {
    /// No progress lines on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Write a JSON report (phase and layer times, sizes, peak memory) here.
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile an ONNX model into plan.bin (public) and plan.bin.weights (server only).
    Compile {
        /// The ONNX model.
        model: PathBuf,
        /// Output plan.
        #[arg(short, long, default_value = "plan.bin")]
        output: PathBuf,
        /// Output weights (default: the plan path + ".weights").
        #[arg(long)]
        weights_out: Option<PathBuf>,
        /// Concrete input shape N,C,D,H,W when the model's is symbolic.
        #[arg(long, value_delimiter = ',')]
        input_shape: Option<Vec<usize>>,
        /// Fractional bits (default: chosen by range analysis).
        #[arg(long)]
        frac_bits: Option<u32>,
        /// Field prime (default: the smallest candidate that fits).
        #[arg(long)]
        prime: Option<u64>,
        /// Generated calibration clips.
        #[arg(long, default_value_t = 4)]
        calib_samples: usize,
        /// Extra calibration inputs (float32 .npy of the input shape); repeatable.
        #[arg(long)]
        calib: Vec<PathBuf>,
        /// Preprocessing JSON to record instead of the model's metadata.
        #[arg(long)]
        preprocess: Option<PathBuf>,
        /// Class names, one per line.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The model's name in the plan (default: the model's `c3d.model` metadata, else its
        /// graph name unless that is an exporter's default such as `main_graph`, else the
        /// file stem).
        #[arg(long)]
        name: Option<String>,
        /// ReLU layers (node names, comma-separated) to replace by x^2 with Beaver squares.
        #[arg(long, value_delimiter = ',')]
        approx: Vec<String>,
        /// Fraction S of each layer's weights to prune (0 <= S < 1): projection onto at most
        /// (1 - S) n non-zeros, aligned with the HE packing (retrain-free).
        #[arg(long, default_value_t = 0.0)]
        prune: f64,
        /// Skip the e-graph rewrites (ReLU/max-pool fusion, pad folding).
        #[arg(long)]
        no_rewrite: bool,
        /// Traffic budget in MB (offline + online, cost model): square standalone ReLUs,
        /// most garbled traffic first, until the plan fits (check the accuracy with simulate).
        #[arg(long)]
        approx_budget: Option<f64>,
        /// Protocol of the exact comparisons (ReLU, max-pool): garbled circuits, OT-based
        /// comparisons on silent OT, or per layer the faster on the network of --bandwidth and
        /// --rtt by the cost model. Stored in the plan.
        #[arg(long, value_enum, default_value_t = Nonlinear::Auto)]
        nonlinear: Nonlinear,
        /// Network bandwidth the choice is made for, Mbit/s (default: a LAN's 1000).
        #[arg(long, default_value_t = 1000.0)]
        bandwidth: f64,
        /// Network round-trip time the choice is made for, ms (default: a LAN's 0.5).
        #[arg(long, default_value_t = 0.5)]
        rtt: f64,
        /// Print one JSON object on stdout (the summary line and progress go to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Run the plaintext fixed-point simulation of a plan on a float32 .npy input.
    Simulate {
        /// The plan.
        plan: PathBuf,
        /// Input tensor (float32 .npy of the model's input shape).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the output (float32 .npy).
        #[arg(long)]
        output: Option<PathBuf>,
        /// The weights file (default: the plan path + ".weights").
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Also run the original ONNX in float with tract and compare.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// How many top classes to print.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print one JSON object on stdout (the tables go to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Per-layer table of a plan: ops, shapes, protocol, scales and the cost model (HE
    /// products, AND gates, bytes offline and online, online multiply-adds).
    Inspect {
        /// The plan.
        plan: PathBuf,
        /// The weights file, to count pruned work (default: the plan path + ".weights" when
        /// it exists; without it layers count as dense).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw the per-layer cost (bytes offline and online, estimated seconds), coloured
        /// by protocol, as SVG into this file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Write a random preprocessed clip (uniform pixels) for a plan, as float32 .npy.
    RandomInput {
        /// The plan.
        plan: PathBuf,
        /// Output .npy.
        #[arg(short, long)]
        output: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// `--nonlinear`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Nonlinear {
    /// Garbled circuits everywhere.
    Gc,
    /// OT-based comparisons wherever they compute the layer exactly.
    Ot,
    /// Per layer, the faster by the cost model on the network given.
    Auto,
}

struct Failure {
    report: Report,
    code: u8,
}

impl<E: Into<Report>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            report: e.into(),
            code: 1,
        }
    }
}

fn main() -> ExitCode {
    // Before any report exists: a report takes the handler when it is made.
    c3d_compiler::diagnostics::install_report_handler();
    let cli = Cli::parse();
    let quiet = cli.quiet;
    let progress = move |s: &str| {
        if !quiet {
            eprintln!("[c3dc] {s}");
        }
    };
    let mut report = RunReport::default();
    let result = run(cli.cmd, quiet, progress, &mut report);
    if let (Ok(()), Some(path)) = (&result, &cli.report) {
        report.peak_rss_bytes = peak_rss_bytes();
        let json = serde_json::to_vec_pretty(&report).expect("report serializes");
        if let Err(e) = c3d_ir::format::write_atomic(path, &json) {
            eprintln!("{:?}", miette!("cannot write the report: {e}"));
            return ExitCode::from(1);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{:?}", f.report);
            ExitCode::from(f.code)
        }
    }
}

fn load_plan(path: &Path) -> Result<(Plan, [u8; 32]), Failure> {
    Plan::load(path).map_err(|e| Failure {
        report: miette!("{e}"),
        code: 1,
    })
}

fn run(
    cmd: Cmd,
    quiet: bool,
    progress: impl Fn(&str) + Copy,
    report: &mut RunReport,
) -> Result<(), Failure> {
    match cmd {
        Cmd::Compile {
            model,
            output,
            weights_out,
            input_shape,
            frac_bits,
            prime,
            calib_samples,
            calib,
            preprocess,
            labels,
            name,
            approx,
            prune,
            no_rewrite,
            approx_budget,
            nonlinear,
            bandwidth,
            rtt,
            json,
        } => {
            let t0 = Instant::now();
            if !(bandwidth.is_finite() && bandwidth > 0.0) {
                return Err(miette!("--bandwidth {bandwidth}: expected a positive Mbit/s").into());
            }
            if !(rtt.is_finite() && rtt >= 0.0) {
                return Err(miette!("--rtt {rtt}: expected a non-negative number of ms").into());
            }
            let network = c3d_ir::NetworkModel {
                nonlinear: match nonlinear {
                    Nonlinear::Gc => c3d_ir::NonlinearChoice::Gc,
                    Nonlinear::Ot => c3d_ir::NonlinearChoice::Ot,
                    Nonlinear::Auto => c3d_ir::NonlinearChoice::Auto,
                },
                bandwidth_mbit: bandwidth,
                rtt_ms: rtt,
            };
            let approx_budget = match approx_budget {
                Some(mb) if !(mb.is_finite() && mb > 0.0) => {
                    return Err(
                        miette!("--approx-budget {mb}: expected a positive number of MB").into(),
                    )
                }
                Some(mb) => Some((mb * 1e6) as u64),
                None => None,
            };
            let calib_inputs = calib
                .iter()
                .map(|p| npy::read_f32(p).map_err(|e| miette!("calibration input: {e}")))
                .collect::<Result<Vec<Tensor<f32>>, _>>()?;
            let preprocess = match preprocess {
                Some(p) => {
                    let s =
                        std::fs::read_to_string(&p).map_err(|e| miette!("{}: {e}", p.display()))?;
                    Some(serde_json::from_str::<Preprocess>(&s).map_err(|e| {
                        miette!("{}: not valid preprocessing JSON: {e}", p.display())
                    })?)
                }
                None => None,
            };
            let class_names = match labels {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .map_err(|e| miette!("{}: {e}", p.display()))?
                        .lines()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                ),
                None => None,
            };
            let opts = CompileOptions {
                import: ImportOptions { input_shape },
                quant: QuantConfig {
                    frac_bits,
                    prime,
                    calib_samples,
                    calib_inputs,
                    approx,
                    network,
                    ..QuantConfig::default()
                },
                preprocess,
                class_names,
                name,
                prune,
                no_rewrite,
                approx_budget,
            };
            let compiled = compile(&model, &opts, progress).map_err(|e| {
                let code = if matches!(e, CompileError::Import(_)) {
                    2
                } else {
                    1
                };
                Failure {
                    report: Report::new(e),
                    code,
                }
            })?;
            let wpath = weights_out.unwrap_or_else(|| weights_path_for(&output));
            compiled.weights.save(&wpath).map_err(|e| miette!("{e}"))?;
            let hash = compiled.plan.save(&output).map_err(|e| miette!("{e}"))?;
            let psize = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            let wsize = std::fs::metadata(&wpath).map(|m| m.len()).unwrap_or(0);
            report.command = "compile".into();
            report.model = compiled.plan.meta.name.clone();
            report.p = Some(compiled.plan.fixed.p);
            report.frac_bits = Some(compiled.plan.fixed.frac_bits);
            report.lowest_activation_bits = compiled.plan.lowest_activation_bits();
            report.plan_bytes = Some(psize);
            report.weights_bytes = Some(wsize);
            for (name, secs) in &compiled.timings {
                report.phase(name, *secs);
            }
            let total = t0.elapsed().as_secs_f64();
            report.phase("total", total);
            let line = format!(
                "compiled {} -> {} ({} bytes, hash {}) and {} ({} bytes) in {:.2} s; p = {}, f = {}",
                model.display(),
                output.display(),
                psize,
                &hex(&hash)[..16],
                wpath.display(),
                wsize,
                total,
                compiled.plan.fixed.p,
                compiled.plan.fixed.frac_bits
            );
            if !json {
                println!("{line}");
                return Ok(());
            }
            eprintln!("{line}");
            let plan = &compiled.plan;
            let (protocols, layers) = summary::protocols(plan);
            print_json(&summary::CompileSummary {
                model: plan.meta.name.clone(),
                input: model.display().to_string(),
                plan: output.display().to_string(),
                plan_hash: hex(&hash),
                plan_bytes: psize,
                weights: wpath.display().to_string(),
                weights_bytes: wsize,
                p: plan.fixed.p,
                frac_bits: plan.fixed.frac_bits,
                seconds: total,
                phases: compiled
                    .timings
                    .iter()
                    .map(|(name, seconds)| Phase {
                        name: name.clone(),
                        seconds: *seconds,
                    })
                    .collect(),
                classes: plan.meta.class_names.clone(),
                protocols,
                layers,
            })
        }
        Cmd::Simulate {
            plan,
            input,
            output,
            weights,
            reference,
            top,
            json,
        } => {
            let (plan_v, plan_hash) = load_plan(&plan)?;
            let wpath = weights.unwrap_or_else(|| weights_path_for(&plan));
            let w = plan_v.load_weights(&wpath).map_err(|e| miette!("{e}"))?;
            let x = npy::read_f32(&input).map_err(|e| miette!("input: {e}"))?;
            let t0 = Instant::now();
            let mut times = Vec::new();
            let n_layers = plan_v.layers.len();
            // Per-layer progress on a terminal only (one line, rewritten in place).
            let live = !quiet && std::io::stderr().is_terminal();
            let sim = c3d_ir::simulate_timed(&plan_v, &w, &x, |id, d| {
                times.push((id, d.as_secs_f64()));
                if live {
                    let name = &plan_v.graph.node(id).name;
                    eprint!(
                        "\r\x1b[2K[c3dc] simulate: layer {}/{n_layers} {name}",
                        times.len()
                    );
                }
            })
            .map_err(|e| miette!("{e}"))?;
            if live {
                eprint!("\r\x1b[2K");
            }
            let dt = t0.elapsed().as_secs_f64();
            report.command = "simulate".into();
            report.model = plan_v.meta.name.clone();
            report.p = Some(plan_v.fixed.p);
            report.frac_bits = Some(plan_v.fixed.frac_bits);
            report.phase("simulate", dt);
            report.layers = times
                .iter()
                .map(|(id, s)| {
                    let n = plan_v.graph.node(*id);
                    LayerTime {
                        name: n.name.clone(),
                        op: n.op.name().into(),
                        seconds: *s,
                    }
                })
                .collect();
            progress(&format!("simulate: {dt:.3} s"));
            // With --json, stdout carries the JSON object alone.
            let say = |s: &str| {
                if json {
                    eprint!("{s}");
                } else {
                    print!("{s}");
                }
            };
            let ranked = summary::top(&plan_v, &sim.output.data, top);
            say(&top_table(&ranked, "fixed-point simulation"));
            let mut comparison = None;
            if let Some(r) = reference {
                let (f, load, dt) =
                    tract_ref::run_tract_timed(&r, &x).map_err(|e| miette!("{e}"))?;
                report.phase("tract load+optimise", load);
                report.phase("tract float reference", dt);
                let ranked_f = summary::top(&plan_v, &f.data, top);
                say(&top_table(
                    &ranked_f,
                    &format!("tract float reference ({dt:.3} s)"),
                ));
                if f.data.len() != sim.output.data.len() {
                    return Err(miette!(
                        "reference output has {} values, the plan {}",
                        f.data.len(),
                        sim.output.data.len()
                    )
                    .into());
                }
                let err = f
                    .data
                    .iter()
                    .zip(&sim.output.data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                let agree = summary::argmax(&f.data) == summary::argmax(&sim.output.data);
                say(&format!(
                    "max |float - fixed| = {err:.3e}; top-1 {}\n",
                    if agree { "agrees" } else { "DIFFERS" }
                ));
                comparison = Some(summary::ReferenceComparison {
                    model: r.display().to_string(),
                    seconds: dt,
                    load_seconds: load,
                    max_abs_diff: err,
                    top1_agrees: agree,
                    top: ranked_f,
                    output: f.data,
                });
            }
            if let Some(o) = output {
                npy::write_f32(&o, &sim.output).map_err(|e| miette!("{e}"))?;
            }
            if json {
                print_json(&summary::SimulateSummary {
                    model: plan_v.meta.name.clone(),
                    plan: plan.display().to_string(),
                    plan_hash: hex(&plan_hash),
                    output_kind: summary::OutputKind::of(&plan_v),
                    top: ranked,
                    output: sim.output.data,
                    seconds: dt,
                    layers: report.layers.clone(),
                    reference: comparison,
                })?;
            }
            Ok(())
        }
        Cmd::Inspect {
            plan,
            weights,
            json,
            svg,
        } => {
            let (p, hash) = load_plan(&plan)?;
            let wpath = weights.clone().unwrap_or_else(|| weights_path_for(&plan));
            let w = if weights.is_some() || wpath.exists() {
                Some(p.load_weights(&wpath).map_err(|e| miette!("{e}"))?)
            } else {
                None
            };
            let ins = inspect::inspect(&p, &hash, w.as_ref());
            if let Some(path) = &svg {
                c3d_ir::format::write_atomic(path, inspect::svg(&ins).as_bytes())
                    .map_err(|e| miette!("cannot write the SVG {}: {e}", path.display()))?;
                progress(&format!("wrote {}", path.display()));
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&ins).map_err(|e| miette!("{e}"))?
                );
            } else {
                print!("{}", inspect::render(&ins));
            }
            Ok(())
        }
        Cmd::RandomInput { plan, output, seed } => {
            use rand::SeedableRng;
            let (p, _) = load_plan(&plan)?;
            let (inp, _) = p.graph.io().map_err(|e| miette!("{e}"))?;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let t = c3d_passes::calibrate::random_input(
                &p.graph.node(inp).shape,
                &p.meta.preprocess,
                &mut rng,
            );
            npy::write_f32(&output, &t).map_err(|e| miette!("{e}"))?;
            println!("wrote {} ({})", output.display(), t.shape);
            Ok(())
        }
    }
}

/// Prints one JSON object on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| miette!("{e}"))?
    );
    Ok(())
}

/// The ranked classes as the text output shows them.
fn top_table(ranked: &[summary::Ranked], title: &str) -> String {
    let mut s = format!("{title}: top {}\n", ranked.len());
    for r in ranked {
        let name = r
            .label
            .clone()
            .unwrap_or_else(|| format!("class {}", r.index));
        s += &format!("  {:>5}  {:<24} {:.6}\n", r.index, name, r.value);
    }
    s
}
