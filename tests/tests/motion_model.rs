//! The bundled trained model (models/motion/): the trainer's forward pass against tract's,
//! SLR's sparsity, the squares variant compiled as trained, training reproduced from the
//! committed settings, and the accuracy table regenerated from the committed weights.

use c3d_compiler::tract_ref::run_tract;
use c3d_compiler::{compile, CompileOptions};
use c3d_models::train::{labelled, train, Net, TrainConfig, LAYERS};
use c3d_tests::motion_table::{
    evaluate, models_dir, rows, secure_output, tensor, test_split, Table,
};
use c3d_tests::{argmax, max_abs_diff, server_model, squared_layers};

fn net(file: &str) -> Net {
    Net::from_onnx(&std::fs::read(models_dir().join(file)).expect("committed model"))
        .expect("c3d-motion model")
}

fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The trainer's float forward pass is an independent implementation of the exported ONNX:
/// tract must agree with it.
#[test]
fn trainer_forward_equals_tract_on_committed_models() {
    for file in ["c3d-motion.onnx", "c3d-motion-slr90.onnx"] {
        let n = net(file);
        for (x, _) in test_split(3) {
            let want = run_tract(&models_dir().join(file), &tensor(&x)).expect("tract");
            let got = softmax(&n.forward(&x));
            let d = max_abs_diff(&got, &want.data);
            assert!(d < 1e-4, "{file}: trainer vs tract differ by {d}");
        }
    }
}

#[test]
fn slr_models_meet_their_sparsity_exactly() {
    for (file, s) in [
        ("c3d-motion-slr50.onnx", 0.5),
        ("c3d-motion-slr90.onnx", 0.9),
        ("c3d-motion-slr95.onnx", 0.95),
    ] {
        let n = net(file);
        for (l, name) in LAYERS.iter().enumerate() {
            let w = &n.params[2 * l];
            let zeros = w.iter().filter(|&&v| v == 0.0).count();
            assert_eq!(
                zeros,
                (s * w.len() as f64).round() as usize,
                "{file}: layer {name}"
            );
        }
    }
}

/// The squares model records its x^2 activation; the compiler squares it without --approx.
/// At f >= 8 its x^2 needs a 57-bit field, whose 185-bit ciphertext modulus cannot carry
/// the session's flooding: refused, naming the layer; with f down to 4 (as the table
/// compiles it) the 41-bit field does.
#[test]
fn squares_model_compiles_as_trained() {
    let path = models_dir().join("c3d-motion-sq.onnx");
    let err = compile(&path, &CompileOptions::default(), |_| {})
        .err()
        .expect("no HE packing at f >= 8")
        .to_string();
    assert!(
        err.contains("no HE packing fits even at 8 fractional bits")
            && err.contains("layer `")
            && err.contains("the parameters have 185 bits"),
        "{err}"
    );
    let spec = rows().into_iter().find(|r| r.file == "c3d-motion-sq.onnx");
    let opts = CompileOptions {
        quant: c3d_passes::QuantConfig {
            min_frac_bits: spec.expect("the table's row").min_frac_bits,
            ..Default::default()
        },
        ..CompileOptions::default()
    };
    let c = compile(&path, &opts, |_| {}).expect("compiles");
    assert_eq!(squared_layers(&c.plan), ["/fc6/Relu"]);
    assert!(c.plan.passes.iter().any(|p| p.name == "approx"));
}

/// `c3d-models motion train` with the settings in the committed log reaches the committed
/// test accuracy (bit-identical weights on the same CPU; across CPUs the matrix kernels may
/// round differently, so the check is on accuracy).
#[test]
fn training_reproduces_the_committed_dense_model() {
    let log: serde_json::Value = serde_json::from_slice(
        &std::fs::read(models_dir().join("c3d-motion.json")).expect("training log"),
    )
    .unwrap();
    let clips = log["clips"].as_u64().unwrap() as usize;
    let epochs = log["epochs"].as_u64().unwrap() as usize;
    let seed = log["seed"].as_u64().unwrap();
    let committed = log["test_accuracy"].as_f64().unwrap();
    let data = labelled(c3d_models::motion::TRAIN_SEED, clips);
    let mut n = Net::init(seed, false);
    let cfg = TrainConfig {
        epochs,
        ..TrainConfig::default()
    };
    assert_eq!(log["sgd"].as_str().unwrap(), format!("{cfg:?}"));
    train(&mut n, &data, &cfg, &|_, _, _| {}, &mut |_| {});
    let (_, acc) = n.evaluate(&test_split(600));
    assert!(
        (acc - committed).abs() <= 0.02,
        "retrained accuracy {acc}, committed {committed}"
    );
    if n == net("c3d-motion.onnx") {
        eprintln!("retrained weights are bit-identical to the committed ones");
    }
}

/// The committed table regenerates: the same float and fixed-point predictions on a prefix
/// of the test split for a dense, a projected, an SLR and a squares row, the same costs, and
/// the secure run's prediction on the first clip of the squares row.
#[test]
fn accuracy_table_regenerates() {
    let table: Table = serde_json::from_slice(
        &std::fs::read(models_dir().join("accuracy.json")).expect("committed table"),
    )
    .expect("table json");
    let specs: Vec<_> = table.rows.iter().map(|r| r.spec.clone()).collect();
    assert_eq!(specs, rows(), "the table's rows are the script's rows");
    let n = 120;
    let test = test_split(n);
    let labels: Vec<u8> = test.iter().map(|(_, y)| *y as u8).collect();
    assert_eq!(labels, table.labels[..n]);
    for label in ["dense", "projection 0.9", "SLR 0.9", "fc6 x^2 (Beaver)"] {
        let want = table.rows.iter().find(|r| r.spec.label == label).unwrap();
        let got = evaluate(&models_dir(), &want.spec, &test, 0, &mut |_| {});
        // The trainer's matrix kernels are chosen at run time (AVX, FMA): on another CPU a
        // near-tie may round the other way, so one float prediction in 120 may differ. The
        // fixed-point ones are integers and must all match.
        let differ = got
            .float_pred
            .iter()
            .zip(&want.float_pred[..n])
            .filter(|(a, b)| a != b)
            .count();
        assert!(differ <= 1, "{label}: {differ} float predictions differ");
        assert_eq!(got.sim_pred, want.sim_pred[..n], "{label}: fixed point");
        assert_eq!(got.cost, want.cost, "{label}: cost");
        assert_eq!((got.p, got.frac_bits), (want.p, want.frac_bits), "{label}");
    }
    let sq = table
        .rows
        .iter()
        .find(|r| r.spec.label.contains("x^2"))
        .unwrap();
    let c = c3d_tests::motion_table::compile_row(&models_dir(), &sq.spec);
    let out = secure_output(&c, &server_model(&c), &tensor(&test[0].0), 7);
    assert_eq!(argmax(&out) as u8, sq.secure_pred[0]);
    assert_eq!(sq.secure_pred[0], sq.sim_pred[0]);
}
