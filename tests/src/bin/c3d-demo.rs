//! c3d-demo: the main job's client side on the bundled clips. For each clip of a manifest, a
//! secure session against a running `c3d-run --role server` (through the library API) and the
//! plaintext fixed-point simulation of the same decoded clip, side by side.
//!
//! ```text
//! c3d-demo --plan PLAN [--weights PLAN.weights] [--manifest models/clips/motion/manifest.json]
//!          [--connect 127.0.0.1:7878] [--top 3]
//! ```

#![forbid(unsafe_code)]

use c3d_tests::demo::{read_manifest, render_clip, render_summary, run_clip};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Secure and plaintext predictions of the bundled trained model on its bundled clips.
#[derive(Parser)]
#[command(name = "c3d-demo")]
struct Args {
    /// The plan (from `c3dc compile`).
    #[arg(long)]
    plan: PathBuf,
    /// The weights, for the plaintext simulation (default: PLAN.weights).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The clips and their true labels.
    #[arg(long, default_value = "models/clips/motion/manifest.json")]
    manifest: PathBuf,
    /// The server.
    #[arg(long, default_value = "127.0.0.1:7878")]
    connect: String,
    /// Classes shown per prediction.
    #[arg(long, default_value_t = 3)]
    top: usize,
}

fn main() -> ExitCode {
    let a = Args::parse();
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("c3d-demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs every clip; true when all are correct and equal to the simulation.
fn run(a: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let (plan, _) = c3d_ir::Plan::load(&a.plan)?;
    let wpath = a
        .weights
        .clone()
        .unwrap_or_else(|| c3d_ir::format::weights_path_for(&a.plan));
    let weights = plan.load_weights(&wpath)?;
    let m = read_manifest(&a.manifest)?;
    println!(
        "model `{}` ({} classes: {}); {} clips from {}",
        plan.meta.name,
        plan.meta.class_names.len(),
        plan.meta.class_names.join(", "),
        m.clips.len(),
        a.manifest.display()
    );
    println!();
    let mut results = Vec::new();
    for c in &m.clips {
        let r = run_clip(&plan, &weights, &a.manifest, c, &a.connect)?;
        print!("{}", render_clip(&r, a.top));
        results.push(r);
    }
    println!();
    print!("{}", render_summary(&results));
    Ok(results.iter().all(|r| r.correct() && r.equal()))
}
