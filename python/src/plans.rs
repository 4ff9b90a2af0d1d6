//! `compile`, `inspect` and `simulate`: what `c3dc` does, as Python functions.

use crate::convert::{array, array_tensor, input_shape, is_path, to_py, Clip};
use crate::{error, guarded};
use c3d_compiler::{
    compile as compile_model, inspect as inspection, CompileOptions, ImportOptions,
};
use c3d_ir::format::{hex, weights_path_for};
use c3d_ir::{NetworkModel, NonlinearChoice, Plan, Preprocess, Tensor, Weights};
use c3d_passes::QuantConfig;
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

/// Compile an ONNX 3D CNN into a secure plan (public) and its weights (the server's secret).
///
/// Writes `output` and `weights_out` (default: `output + ".weights"`) and returns a dict:
/// `plan`, `weights` (the paths written), `hash` (the plan's hex hash), `model`, `p`,
/// `frac_bits`, `class_names`, `layers` (each `{name, op, protocol}`), `plan_bytes`,
/// `weights_bytes`.
///
/// The options are `c3dc compile`'s: `prune` (fraction of each layer's weights, in [0, 1)),
/// `nonlinear` ("gc", "ot" or "auto": the protocol of the exact comparisons, chosen per layer
/// for `bandwidth` Mbit/s and `rtt` ms with "auto"), `name` (the model's name in the plan),
/// `labels` (class names: a list of strings or a file with one per line), `approx` (ReLU node
/// names to replace by x^2), `approx_budget` (MB of traffic to fit by squaring ReLUs),
/// `input_shape` (N, C, D, H, W for a symbolic input), `frac_bits`, `prime`,
/// `calib_samples`, `calib` (extra calibration inputs: float32 arrays or .npy paths),
/// `preprocess` (a dict or a JSON file), `no_rewrite`. `verbose=True` prints the compiler's
/// progress on stderr. Raises `C3dError` with the compiler's message.
#[pyfunction]
#[pyo3(signature = (
    onnx_path, output = PathBuf::from("plan.bin"), *, prune = 0.0, nonlinear = "auto",
    bandwidth = 1000.0, rtt = 0.5, name = None, labels = None, approx = None,
    approx_budget = None, input_shape = None, frac_bits = None, prime = None,
    calib_samples = 4, calib = None, preprocess = None, no_rewrite = false,
    weights_out = None, verbose = false
), text_signature = "(onnx_path, output='plan.bin', *, prune=0.0, nonlinear='auto', bandwidth=1000.0, rtt=0.5, name=None, labels=None, approx=None, approx_budget=None, input_shape=None, frac_bits=None, prime=None, calib_samples=4, calib=None, preprocess=None, no_rewrite=False, weights_out=None, verbose=False)")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn compile<'py>(
    py: Python<'py>,
    onnx_path: PathBuf,
    output: PathBuf,
    prune: f64,
    nonlinear: &str,
    bandwidth: f64,
    rtt: f64,
    name: Option<String>,
    labels: Option<Bound<'py, PyAny>>,
    approx: Option<Vec<String>>,
    approx_budget: Option<f64>,
    input_shape: Option<Vec<usize>>,
    frac_bits: Option<u32>,
    prime: Option<u64>,
    calib_samples: usize,
    calib: Option<Vec<Bound<'py, PyAny>>>,
    preprocess: Option<Bound<'py, PyAny>>,
    no_rewrite: bool,
    weights_out: Option<PathBuf>,
    verbose: bool,
) -> PyResult<Bound<'py, PyAny>> {
    // The checks of `c3dc compile`, named by the keywords used here.
    if !(0.0..1.0).contains(&prune) {
        return Err(error(format!("prune={prune} is not in [0, 1)")));
    }
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        return Err(error(format!(
            "bandwidth={bandwidth}: expected a positive Mbit/s"
        )));
    }
    if !(rtt.is_finite() && rtt >= 0.0) {
        return Err(error(format!(
            "rtt={rtt}: expected a non-negative number of ms"
        )));
    }
    let nonlinear = match nonlinear {
        "gc" => NonlinearChoice::Gc,
        "ot" => NonlinearChoice::Ot,
        "auto" => NonlinearChoice::Auto,
        other => {
            return Err(error(format!(
                "nonlinear={other:?}: expected \"gc\", \"ot\" or \"auto\""
            )))
        }
    };
    let approx_budget = match approx_budget {
        Some(mb) if !(mb.is_finite() && mb > 0.0) => {
            return Err(error(format!(
                "approx_budget={mb}: expected a positive number of MB"
            )))
        }
        mb => mb.map(|mb| (mb * 1e6) as u64),
    };
    let calib_inputs = calib
        .unwrap_or_default()
        .iter()
        .map(|c| {
            if is_path(c) {
                let p: PathBuf = c.extract()?;
                c3d_compiler::npy::read_f32(&p)
                    .map_err(|e| error(format!("calibration input: {e}")))
            } else {
                array_tensor(c, None, "calibration input")
            }
        })
        .collect::<PyResult<Vec<Tensor<f32>>>>()?;
    // With `..default()`, an option the compiler gains keeps its default here until this
    // binding offers it.
    #[allow(clippy::needless_update)]
    let opts = CompileOptions {
        // The compiler's name rules and checks, as for `c3dc compile --name`.
        name,
        import: ImportOptions { input_shape },
        quant: QuantConfig {
            frac_bits,
            prime,
            calib_samples,
            calib_inputs,
            approx: approx.unwrap_or_default(),
            network: NetworkModel {
                nonlinear,
                bandwidth_mbit: bandwidth,
                rtt_ms: rtt,
            },
            ..QuantConfig::default()
        },
        preprocess: preprocess.map(|p| read_preprocess(&p)).transpose()?,
        class_names: labels.map(|l| read_labels(&l)).transpose()?,
        prune,
        no_rewrite,
        approx_budget,
        ..CompileOptions::default()
    };
    let wpath = weights_out.unwrap_or_else(|| weights_path_for(&output));
    let (plan, hash) = py.detach(|| {
        guarded(|| {
            let progress = |s: &str| {
                if verbose {
                    eprintln!("[c3d] {s}");
                }
            };
            let compiled = compile_model(&onnx_path, &opts, progress).map_err(error)?;
            compiled.weights.save(&wpath).map_err(error)?;
            let hash = compiled.plan.save(&output).map_err(error)?;
            Ok((compiled.plan, hash))
        })
    })?;
    let ins = inspection::inspect(&plan, &hash, None);
    let layers: Vec<serde_json::Value> = ins
        .layers
        .iter()
        .map(|r| serde_json::json!({"name": r.name, "op": r.op, "protocol": r.protocol}))
        .collect();
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let summary = serde_json::json!({
        "plan": output.display().to_string(),
        "weights": wpath.display().to_string(),
        "hash": hex(&hash),
        "model": plan.meta.name,
        "p": plan.fixed.p,
        "frac_bits": plan.fixed.frac_bits,
        "class_names": plan.meta.class_names,
        "layers": layers,
        "plan_bytes": size(&output),
        "weights_bytes": size(&wpath),
    });
    to_py(py, &summary)
}

/// Describe a plan: the same dict as `c3dc inspect --json`.
///
/// Keys: `model`, `p`, `frac_bits`, `plan_hash`, `passes`, `network`, `layers` (per layer:
/// `name`, `op`, `inputs`, `output`, `macs`, `comparisons`, `protocol`, scales, `sparsity`,
/// `cost`, `choices`), and the totals. `weights` (default: `plan_path + ".weights"` when it
/// exists) lets pruned layers count as sparse. Raises `C3dError` for an unreadable plan.
#[pyfunction]
#[pyo3(signature = (plan_path, weights = None))]
pub(crate) fn inspect<'py>(
    py: Python<'py>,
    plan_path: PathBuf,
    weights: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let (plan, hash) = Plan::load(&plan_path).map_err(error)?;
    let wpath = weights
        .clone()
        .unwrap_or_else(|| weights_path_for(&plan_path));
    let w = if weights.is_some() || wpath.exists() {
        Some(plan.load_weights(&wpath).map_err(error)?)
    } else {
        None
    };
    to_py(py, &inspection::inspect(&plan, &hash, w.as_ref()))
}

/// Run the plaintext fixed-point simulation of a plan: the exact output a secure run gives.
///
/// `input` is a float32 numpy array of the model's input shape (already preprocessed) or a
/// path to a clip (a video, decoded and preprocessed as the plan says, or a float32 .npy).
/// `weights` defaults to `plan_path + ".weights"`. Returns the model output as a float32
/// numpy array. Raises `C3dError` for a bad plan, weights or input.
#[pyfunction]
#[pyo3(signature = (plan_path, input, weights = None))]
pub(crate) fn simulate<'py>(
    py: Python<'py>,
    plan_path: PathBuf,
    input: Bound<'py, PyAny>,
    weights: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    let (plan, _) = Plan::load(&plan_path).map_err(error)?;
    let shape = input_shape(&plan)?;
    let clip = Clip::from_py(&input, &shape)?;
    let wpath = weights.unwrap_or_else(|| weights_path_for(&plan_path));
    let out = py.detach(|| {
        guarded(|| {
            let w: Weights = plan.load_weights(&wpath).map_err(error)?;
            let x = clip.load(&plan, &shape)?;
            c3d_ir::simulate(&plan, &w, &x).map_err(error)
        })
    })?;
    array(py, &out.output)
}

/// Class names from a list of strings or a file with one per line (blank lines skipped, as
/// `c3dc compile --labels`).
fn read_labels(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if is_path(obj) {
        let p: PathBuf = obj.extract()?;
        let text =
            std::fs::read_to_string(&p).map_err(|e| error(format!("{}: {e}", p.display())))?;
        Ok(text
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    } else {
        obj.extract()
    }
}

/// Preprocessing from a dict (the plan's JSON form) or a JSON file.
fn read_preprocess(obj: &Bound<'_, PyAny>) -> PyResult<Preprocess> {
    let (text, what) = if is_path(obj) {
        let p: PathBuf = obj.extract()?;
        let text =
            std::fs::read_to_string(&p).map_err(|e| error(format!("{}: {e}", p.display())))?;
        (text, p.display().to_string())
    } else {
        let json = obj.py().import("json")?.call_method1("dumps", (obj,))?;
        (json.extract::<String>()?, "preprocess".to_string())
    };
    serde_json::from_str(&text)
        .map_err(|e| error(format!("{what}: not valid preprocessing JSON: {e}")))
}
