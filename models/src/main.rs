//! c3d-models: writes ONNX exports of C3D, I3D and their scaled variants.

use clap::{Parser, Subcommand};
use miette::{miette, IntoDiagnostic, Result};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "c3d-models",
    version,
    about = "Writes architecture-faithful ONNX models with seeded weights"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export a model: c3d, c3d-small, c3d-tiny, i3d, i3d-tiny.
    Export {
        /// Model name.
        name: String,
        /// Output .onnx file.
        #[arg(short, long)]
        output: PathBuf,
        /// Number of classes (default: 487 for C3D, 400 for I3D).
        #[arg(long)]
        classes: Option<usize>,
        /// Number of input frames (default: the variant's).
        #[arg(long)]
        frames: Option<usize>,
        /// Weight seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write the PyTorch-idiom micro models used by the frontend tests into a folder.
    Fixtures {
        /// Output folder.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// List the models.
    List,
}

fn write(path: &PathBuf, m: &tract_onnx::pb::ModelProto) -> Result<()> {
    let bytes = c3d_models::onnx_builder::to_bytes(m);
    let tmp = path.with_extension("onnx.tmp");
    std::fs::write(&tmp, &bytes).into_diagnostic()?;
    std::fs::rename(&tmp, path).into_diagnostic()?;
    eprintln!(
        "wrote {} ({:.1} MB)",
        path.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Export {
            name,
            output,
            classes,
            frames,
            seed,
        } => {
            let v = c3d_models::variant(&name).ok_or_else(|| {
                let names: Vec<_> = c3d_models::variants().iter().map(|v| v.name).collect();
                miette!("unknown model `{name}`; known: {}", names.join(", "))
            })?;
            if classes == Some(0) || frames == Some(0) {
                return Err(miette!("--classes and --frames must be at least 1"));
            }
            if let Some(f) = frames {
                if f < 8 {
                    return Err(miette!(
                        "--frames {f}: the architecture's pools need at least 8 frames"
                    ));
                }
            }
            write(&output, &c3d_models::build(&v, classes, frames, seed))
        }
        Cmd::Fixtures { output } => {
            std::fs::create_dir_all(&output).into_diagnostic()?;
            write(
                &output.join("c3d_micro.onnx"),
                &c3d_models::fixtures::c3d_micro(11),
            )?;
            write(
                &output.join("branches_micro.onnx"),
                &c3d_models::fixtures::branches_micro(12),
            )
        }
        Cmd::List => {
            for v in c3d_models::variants() {
                println!(
                    "{:10} {:?} channels/{:<2} input 3x{}x{}x{}  {} classes",
                    v.name, v.family, v.width_div, v.frames, v.size, v.size, v.classes
                );
            }
            Ok(())
        }
    }
}
