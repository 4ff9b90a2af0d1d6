//! c3d-models: writes ONNX exports of C3D, I3D and their scaled variants.

#![forbid(unsafe_code)]

use c3d_models::slr::{alignment_from_plan, slr, SlrConfig};
use c3d_models::train::{train, Net, TrainConfig};
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
    /// The bundled trained model, c3d-motion, and its synthetic data set.
    #[command(subcommand)]
    Motion(MotionCmd),
}

#[derive(Subcommand)]
enum MotionCmd {
    /// Train c3d-motion from scratch on the generated training split.
    Train {
        /// Output .onnx file (a .json training log is written next to it).
        #[arg(short, long)]
        output: PathBuf,
        /// Follow fc6 with x^2 instead of ReLU (for Beaver squaring).
        #[arg(long)]
        square_fc6: bool,
        /// Training clips.
        #[arg(long, default_value_t = 3000)]
        clips: usize,
        /// Epochs.
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = TrainConfig::default().lr)]
        lr: f32,
        /// Initialisation seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// SLR-prune a trained c3d-motion to a sparsity, aligned with a compiled plan's packing.
    Prune {
        /// Trained .onnx model.
        model: PathBuf,
        /// Its plan from `c3dc compile` (the packing the zeros align with).
        #[arg(long)]
        plan: PathBuf,
        /// Fraction of each layer's weights to zero (0 < S < 1).
        #[arg(long)]
        sparsity: f64,
        /// SLR rounds (one epoch of W-step each).
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Training clips.
        #[arg(long, default_value_t = 3000)]
        clips: usize,
        /// Output .onnx file (a .json log next to it).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write one clip of the data set as a .npy input tensor and print its label.
    Clip {
        /// `train` or `test`.
        #[arg(long, default_value = "test")]
        split: String,
        /// Clip index.
        #[arg(long, default_value_t = 0)]
        index: u64,
        /// Output .npy file (the preprocessed model input).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also write the raw RGB24 frames (frame, row, column, channel), as a video encoder
        /// takes them: `ffmpeg -f rawvideo -pix_fmt rgb24 -s 16x16 -i FILE ...`.
        #[arg(long)]
        rgb: Option<PathBuf>,
    },
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
        Cmd::Motion(m) => motion(m),
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

fn write_json(path: &std::path::Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).into_diagnostic()?;
    c3d_ir::format::write_atomic(path, text.as_bytes()).into_diagnostic()
}

fn load_net(path: &PathBuf) -> Result<Net> {
    let bytes = std::fs::read(path)
        .into_diagnostic()
        .map_err(|e| miette!("{}: {e}", path.display()))?;
    Net::from_onnx(&bytes).map_err(|e| miette!("{}: {e}", path.display()))
}

fn motion(cmd: MotionCmd) -> Result<()> {
    use c3d_models::motion::{TEST_SEED, TRAIN_SEED};
    use c3d_models::train::labelled;
    let test = || labelled(TEST_SEED, 600);
    match cmd {
        MotionCmd::Train {
            output,
            square_fc6,
            clips,
            epochs,
            lr,
            seed,
        } => {
            if clips == 0 || epochs == 0 {
                return Err(miette!("--clips and --epochs must be at least 1"));
            }
            let data = labelled(TRAIN_SEED, clips);
            let mut net = Net::init(seed, square_fc6);
            let cfg = TrainConfig {
                epochs,
                lr,
                ..TrainConfig::default()
            };
            let t0 = std::time::Instant::now();
            let logs = train(&mut net, &data, &cfg, &|_, _, _| {}, &mut |e| {
                eprintln!(
                    "epoch {:>2}/{epochs}: loss {:.4}, train accuracy {:.3} ({:.0} s)",
                    e.epoch,
                    e.loss,
                    e.accuracy,
                    t0.elapsed().as_secs_f64()
                )
            });
            let (loss, acc) = net.evaluate(&test());
            eprintln!("test: loss {loss:.4}, accuracy {acc:.3}");
            write(&output, &net.to_onnx())?;
            write_json(
                &output.with_extension("json"),
                &serde_json::json!({
                    "model": "c3d-motion",
                    "square_fc6": square_fc6,
                    "clips": clips, "epochs": epochs, "seed": seed,
                    "sgd": format!("{cfg:?}"),
                    "epochs_log": logs.iter().map(|e| serde_json::json!({"epoch": e.epoch, "loss": e.loss, "accuracy": e.accuracy})).collect::<Vec<_>>(),
                    "test_loss": loss, "test_accuracy": acc,
                    "seconds": t0.elapsed().as_secs_f64(),
                }),
            )
        }
        MotionCmd::Prune {
            model,
            plan,
            sparsity,
            rounds,
            clips,
            output,
        } => {
            if !(sparsity > 0.0 && sparsity < 1.0) {
                return Err(miette!("--sparsity {sparsity} is not in (0, 1)"));
            }
            let mut net = load_net(&model)?;
            let (plan_v, _) =
                c3d_ir::Plan::load(&plan).map_err(|e| miette!("{}: {e}", plan.display()))?;
            let align =
                alignment_from_plan(&plan_v).map_err(|e| miette!("{}: {e}", plan.display()))?;
            let data = labelled(TRAIN_SEED, clips);
            let cfg = SlrConfig {
                rounds,
                ..SlrConfig::for_sparsity(sparsity)
            };
            let t0 = std::time::Instant::now();
            let logs = slr(&mut net, &data, &align, &cfg, &mut |r| {
                eprintln!(
                    "round {}/{rounds}: loss {:.4}, ||W - Z|| {:.4}, rho {:.3}, step {:.4}, conditions {}/{} ({:.0} s)",
                    r.round, r.loss, r.residual, r.rho, r.step, r.w_condition, r.z_condition,
                    t0.elapsed().as_secs_f64()
                )
            })
            .map_err(|e| miette!("{e}"))?;
            let (loss, acc) = net.evaluate(&test());
            eprintln!("hard-pruned to {sparsity}: test loss {loss:.4}, accuracy {acc:.3}");
            write(&output, &net.to_onnx())?;
            write_json(
                &output.with_extension("json"),
                &serde_json::json!({
                    "model": "c3d-motion", "from": model.file_name().map(|f| f.to_string_lossy().to_string()),
                    "sparsity": sparsity, "clips": clips,
                    "slr": format!("{cfg:?}"),
                    "rounds": logs,
                    "test_loss": loss, "test_accuracy": acc,
                    "seconds": t0.elapsed().as_secs_f64(),
                }),
            )
        }
        MotionCmd::Clip {
            split,
            index,
            output,
            rgb,
        } => {
            if output.is_none() && rgb.is_none() {
                return Err(miette!("give --output FILE.npy, --rgb FILE.rgb or both"));
            }
            let seed = match split.as_str() {
                "train" => TRAIN_SEED,
                "test" => TEST_SEED,
                s => return Err(miette!("--split {s}: expected `train` or `test`")),
            };
            let c = c3d_models::motion::clip(seed, index);
            use c3d_models::motion::{FRAMES, SIZE};
            use ndarray_npy::WriteNpyExt;
            if let Some(output) = output {
                let arr = ndarray::Array::from_shape_vec((1, 3, FRAMES, SIZE, SIZE), c.input())
                    .into_diagnostic()?;
                let mut bytes = Vec::new();
                arr.write_npy(&mut bytes).into_diagnostic()?;
                c3d_ir::format::write_atomic(&output, &bytes).into_diagnostic()?;
            }
            if let Some(rgb) = rgb {
                c3d_ir::format::write_atomic(&rgb, &c.rgb_frames()).into_diagnostic()?;
            }
            println!("{}", c3d_models::motion::CLASSES[c.label]);
            Ok(())
        }
    }
}
