//! The accuracy table of the bundled trained model (`models/motion/`): for each row (dense,
//! the compiler's retrain-free projection, SLR-pruned, fc6 trained as x^2), test accuracy in
//! float (the trainer's own forward pass), in the fixed-point simulation of the compiled
//! plan, and in the secure two-party run on a sample, with the compiled cost of each.
//! `motion-table` writes it; the tests regenerate parts of it and compare.

use c3d_compiler::{compile, CompileOptions, Compiled};
use c3d_ir::{simulate, Model, Tensor};
use c3d_models::motion::{self, FRAMES, SIZE, TEST_SEED, TRAIN_SEED};
use c3d_models::train::{argmax, labelled, Net, LAYERS};
use c3d_passes::cost::plan_cost;
use c3d_passes::QuantConfig;
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::ServerModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Test clips every row is evaluated on.
pub const TEST_CLIPS: usize = 600;
/// Training clips added to the calibration inputs (real activations, not only noise).
pub const CALIB_CLIPS: usize = 32;

/// One row to evaluate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RowSpec {
    /// Row label.
    pub label: String,
    /// ONNX file, relative to the models folder.
    pub file: String,
    /// `--prune` given to the compiler.
    pub prune: f64,
    /// Smallest fractional bits the range analysis may choose (8 by default).
    pub min_frac_bits: u32,
}

/// The rows of the bundled table.
pub fn rows() -> Vec<RowSpec> {
    let r = |label: &str, file: &str, prune: f64| RowSpec {
        label: label.into(),
        file: file.into(),
        prune,
        min_frac_bits: QuantConfig::default().min_frac_bits,
    };
    vec![
        r("dense", "c3d-motion.onnx", 0.0),
        r("projection 0.5", "c3d-motion.onnx", 0.5),
        r("projection 0.9", "c3d-motion.onnx", 0.9),
        r("projection 0.95", "c3d-motion.onnx", 0.95),
        r("SLR 0.5", "c3d-motion-slr50.onnx", 0.5),
        r("SLR 0.9", "c3d-motion-slr90.onnx", 0.9),
        r("SLR 0.95", "c3d-motion-slr95.onnx", 0.95),
        // x^2 of fc6's untruncated output doubles its scale (input + weight bits) before
        // fc7 multiplies again: at f >= 8 the range analysis needs a 57-bit field (dearer
        // garbled circuits, a tight HE noise budget); letting the tail drop to f = 4 keeps
        // the 41-bit field (the other layers keep f = 16).
        RowSpec {
            min_frac_bits: 4,
            ..r("fc6 x^2 (Beaver)", "c3d-motion-sq.onnx", 0.0)
        },
    ]
}

/// Compiled cost of a row (cost model, zero blocks and weights skipped).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RowCost {
    /// Non-zero secret weights.
    pub nonzero_weights: u64,
    /// All secret weights.
    pub weights: u64,
    /// HE plaintext-ciphertext products offline.
    pub he_products: u64,
    /// The same for dense kernels.
    pub he_products_dense: u64,
    /// Garbled comparisons.
    pub comparisons: u64,
    /// AND gates garbled.
    pub and_gates: u64,
    /// Bytes offline (both directions).
    pub bytes_offline: u64,
    /// Bytes online (both directions).
    pub bytes_online: u64,
    /// Plaintext multiply-adds online (server side).
    pub online_macs: u64,
}

/// One evaluated row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// What was evaluated.
    pub spec: RowSpec,
    /// Activations squared by Beaver triples.
    pub approx: Vec<String>,
    /// Field prime and fractional bits chosen.
    pub p: u64,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Float predictions (trainer's forward pass on the compiled float weights).
    pub float_pred: Vec<u8>,
    /// Fixed-point simulation predictions.
    pub sim_pred: Vec<u8>,
    /// Secure predictions on the first clips.
    pub secure_pred: Vec<u8>,
    /// Compiled cost.
    pub cost: RowCost,
}

/// The whole table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Table {
    /// Test labels, in clip order.
    pub labels: Vec<u8>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// The bundled models' folder.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/motion")
}

/// Inputs as tensors of the model's shape.
pub fn tensor(x: &[f32]) -> Tensor<f32> {
    Tensor::new(
        c3d_ir::Shape::new(vec![1, 3, FRAMES, SIZE, SIZE]),
        x.to_vec(),
    )
}

/// Compiles a row's model as the table does: default options, the row's `--prune`, and
/// training clips added to the calibration.
pub fn compile_row(dir: &Path, spec: &RowSpec) -> Compiled {
    let calib = labelled(TRAIN_SEED, CALIB_CLIPS)
        .iter()
        .map(|(x, _)| tensor(x))
        .collect();
    let opts = CompileOptions {
        quant: QuantConfig {
            calib_inputs: calib,
            min_frac_bits: spec.min_frac_bits,
            // The table's costs are those of garbled comparisons, as it was recorded.
            network: c3d_ir::NetworkModel {
                nonlinear: c3d_ir::NonlinearChoice::Gc,
                ..Default::default()
            },
            ..QuantConfig::default()
        },
        prune: spec.prune,
        ..CompileOptions::default()
    };
    compile(&dir.join(&spec.file), &opts, |_| {}).unwrap_or_else(|e| panic!("{}: {e}", spec.file))
}

/// The trainer's network with the weights the compiler ended up with (projected when the
/// row prunes), so the float column is the float model that was compiled.
pub fn float_net(c: &Compiled, square_fc6: bool) -> Net {
    let mut net = Net::init(0, square_fc6);
    for (l, name) in LAYERS.iter().enumerate() {
        let (w, b) = layer_weights(&c.model, name);
        net.params[2 * l] = w;
        net.params[2 * l + 1] = b;
    }
    net
}

fn layer_weights(m: &Model, name: &str) -> (Vec<f32>, Vec<f32>) {
    let prefix = format!("/{name}/");
    let id = m
        .weights
        .keys()
        .copied()
        .find(|&id| m.graph.node(id).name.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no layer {name}"));
    m.weights[&id].clone()
}

/// Runs the secure protocol on one clip; returns the client's output probabilities.
pub fn secure_output(
    c: &Compiled,
    model: &ServerModel<FheRs>,
    x: &Tensor<f32>,
    seed: u64,
) -> Vec<f32> {
    let plan_hash = c.plan.hash().unwrap();
    crate::run_secure(&c.plan, &plan_hash, model, x, seed, seed ^ 0x5eed)
        .0
        .output
        .data
}

/// Evaluates one row on the first `clips` test clips, `secure` of them in the secure run.
pub fn evaluate(
    dir: &Path,
    spec: &RowSpec,
    test: &[(Vec<f32>, usize)],
    secure: usize,
    progress: &mut dyn FnMut(&str),
) -> Row {
    let c = compile_row(dir, spec);
    let square = !c.model.meta.approx.is_empty();
    let net = float_net(&c, square);
    let float_pred = test.iter().map(|(x, _)| net.predict(x) as u8).collect();
    let sim_pred = test
        .iter()
        .map(|(x, _)| {
            let out = simulate(&c.plan, &c.weights, &tensor(x)).expect("simulate");
            argmax(&out.output.data) as u8
        })
        .collect();
    let mut secure_pred = Vec::new();
    if secure > 0 {
        let model = crate::server_model(&c);
        for (k, (x, _)) in test.iter().take(secure).enumerate() {
            progress(&format!("{}: secure clip {}/{secure}", spec.label, k + 1));
            let out = secure_output(&c, &model, &tensor(x), 1000 + k as u64);
            secure_pred.push(argmax(&out) as u8);
        }
    }
    let total = plan_cost(&c.plan, Some(&c.weights)).total;
    let (mut nz, mut all) = (0u64, 0u64);
    for lw in c.weights.layers.values() {
        nz += lw.weight.iter().filter(|&&v| v != 0).count() as u64;
        all += lw.weight.len() as u64;
    }
    Row {
        spec: spec.clone(),
        approx: c.model.meta.approx.clone(),
        p: c.plan.fixed.p,
        frac_bits: c.plan.fixed.frac_bits,
        float_pred,
        sim_pred,
        secure_pred,
        cost: RowCost {
            nonzero_weights: nz,
            weights: all,
            he_products: total.he_products,
            he_products_dense: total.he_products_dense,
            comparisons: total.comparisons,
            and_gates: total.and_gates,
            bytes_offline: total.bytes_offline(),
            bytes_online: total.bytes_online(),
            online_macs: total.online_macs,
        },
    }
}

/// The test split as the table uses it.
pub fn test_split(n: usize) -> Vec<(Vec<f32>, usize)> {
    labelled(TEST_SEED, n)
}

fn accuracy(pred: &[u8], labels: &[u8]) -> f64 {
    let hits = pred.iter().zip(labels).filter(|(a, b)| a == b).count();
    100.0 * hits as f64 / pred.len().max(1) as f64
}

/// The table as Markdown.
pub fn markdown(t: &Table) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Test split: {} clips ({} classes: {}); secure column on the first {} clips.\n\n",
        t.labels.len(),
        motion::CLASSES.len(),
        motion::CLASSES.join(", "),
        t.rows
            .iter()
            .map(|r| r.secure_pred.len())
            .max()
            .unwrap_or(0)
    ));
    s.push_str("| model | non-zero weights | float % | fixed-point % | secure: right, = fixed point | fixed point = float | p bits, f | HE products | AND gates | offline MB | online MB | online MACs |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &t.rows {
        let n = r.secure_pred.len();
        let sec_hits = r
            .secure_pred
            .iter()
            .zip(&t.labels)
            .filter(|(a, b)| a == b)
            .count();
        let same = r
            .secure_pred
            .iter()
            .zip(&r.sim_pred)
            .filter(|(a, b)| a == b)
            .count();
        let agree = r
            .float_pred
            .iter()
            .zip(&r.sim_pred)
            .filter(|(a, b)| a == b)
            .count();
        s.push_str(&format!(
            "| {} | {} / {} | {:.1} | {:.1} | {sec_hits}/{n}, {same}/{n} | {:.1} % | {}, {} | {} / {} | {:.2} M | {:.1} | {:.1} | {:.2} M |\n",
            r.spec.label,
            r.cost.nonzero_weights,
            r.cost.weights,
            accuracy(&r.float_pred, &t.labels),
            accuracy(&r.sim_pred, &t.labels),
            100.0 * agree as f64 / r.float_pred.len().max(1) as f64,
            64 - r.p.leading_zeros(),
            r.frac_bits,
            r.cost.he_products,
            r.cost.he_products_dense,
            r.cost.and_gates as f64 / 1e6,
            r.cost.bytes_offline as f64 / 1e6,
            r.cost.bytes_online as f64 / 1e6,
            r.cost.online_macs as f64 / 1e6,
        ));
    }
    s
}
