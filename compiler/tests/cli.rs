//! c3dc through its command line: plans round-trip, inspect adds up, and every bad input
//! gets a clear error and a non-zero exit, never a panic or a half-written output.

use c3d_models::onnx_builder::{to_bytes, OnnxBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn c3dc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_c3dc"))
        .arg("-q")
        .args(args)
        .output()
        .expect("run c3dc")
}

/// Stdout and stderr, with miette's line wrapping and gutter undone.
fn text(o: &Output) -> String {
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    raw.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The run failed, did not panic, and said `needle`.
fn refused(o: &Output, needle: &str) {
    assert!(!o.status.success(), "accepted: {}", text(o));
    no_panic(o);
    assert!(
        text(o).contains(needle),
        "missing `{needle}` in: {}",
        text(o)
    );
}

fn no_panic(o: &Output) {
    let t = text(o);
    assert!(
        !t.contains("panicked") && !t.contains("RUST_BACKTRACE"),
        "panic: {t}"
    );
}

/// Exports c3d-tiny and compiles it; returns (onnx, plan) paths.
fn compiled(dir: &Path, seed: u64, tag: &str) -> (PathBuf, PathBuf) {
    let v = c3d_models::variant("c3d-tiny").unwrap();
    let onnx = dir.join(format!("m{tag}.onnx"));
    std::fs::write(
        &onnx,
        to_bytes(&c3d_models::build(&v, Some(10), None, seed)),
    )
    .unwrap();
    let plan = dir.join(format!("p{tag}.bin"));
    let o = c3dc(&[
        "compile",
        onnx.to_str().unwrap(),
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    (onnx, plan)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn compile_inspect_simulate_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let (onnx, plan) = compiled(d.path(), 1, "a");
    let weights = PathBuf::from(format!("{}.weights", s(&plan)));
    assert!(weights.exists());
    // The plan holds no weights: it is tiny beside the weights file.
    let (ps, ws) = (
        std::fs::metadata(&plan).unwrap().len(),
        std::fs::metadata(&weights).unwrap().len(),
    );
    assert!(ps * 20 < ws, "plan {ps} bytes, weights {ws} bytes");
    // The weights are the server's secret: readable by their owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&weights).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "weights file mode {mode:o}");
    }

    // Round trip: load and save again gives the same bytes and hash.
    let (p, h) = c3d_ir::Plan::load(&plan).unwrap();
    let again = d.path().join("again.bin");
    assert_eq!(p.save(&again).unwrap(), h);
    assert_eq!(
        std::fs::read(&plan).unwrap(),
        std::fs::read(&again).unwrap()
    );

    // inspect --json: the totals are the sums of the rows, and the MACs match a brute count.
    let o = c3dc(&["inspect", s(&plan), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = j["layers"].as_array().unwrap();
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("macs"), j["total_macs"].as_u64().unwrap());
    assert_eq!(sum("comparisons"), j["total_comparisons"].as_u64().unwrap());
    // The public headroom is whole bits (the plan keeps no exact log2 of a weight norm), and
    // so is every bound the plan records.
    for r in rows {
        assert!(
            r["headroom_bits"].is_u64(),
            "headroom {}",
            r["headroom_bits"]
        );
    }
    // Every HE layer lists the plan's packing (chosen, its counts the plan's) and the slot
    // packing beside it, whose flooding needs more modulus than the parameters have.
    for (r, l) in rows.iter().zip(&p.layers) {
        let packs = r["packings"].as_array().unwrap();
        if l.protocol != c3d_ir::Protocol::HeLinear {
            assert!(packs.is_empty());
            continue;
        }
        let pk = l.packing.as_ref().unwrap();
        let shape = c3d_ir::packing::ConvShape::of_node(&p.graph, l.node).unwrap();
        assert_eq!(packs[0]["encoding"], "coefficient");
        assert_eq!(packs[0]["chosen"], true);
        assert_eq!(packs[0]["products"], pk.products(&shape) as u64);
        assert_eq!(packs[0]["cts_out"], pk.cts_out(&shape) as u64);
        assert!(packs[0]["modulus_needed"].as_u64() <= packs[0]["modulus_have"].as_u64());
        assert!(packs.len() >= 2, "{}", r["name"]);
        for c in &packs[1..] {
            assert_eq!(c["chosen"], false);
            assert!(c["rotations"].as_u64().unwrap() > 0);
            assert!(c["modulus_needed"].as_u64() > c["modulus_have"].as_u64());
        }
    }
    for l in &p.layers {
        let n = &p.graph.node(l.node).name;
        assert!(
            l.quant.bound_bits <= 62,
            "`{n}`: bound {}",
            l.quant.bound_bits
        );
    }
    let quantize = j["passes"].as_array().unwrap().iter().find_map(|p| {
        p.as_str()
            .filter(|p| p.starts_with("quantize:"))
            .map(str::to_string)
    });
    let quantize = quantize.expect("a quantize record");
    assert!(quantize.contains("whole bits"), "{quantize}");
    // c3d-tiny: convs 3x3x3 padded (output = input size), channels 3->4->8->16->16->32x4.
    let conv = |cin: u64, cout: u64, dhw: u64| cin * cout * 27 * dhw;
    let brute = conv(3, 4, 8 * 32 * 32)
        + conv(4, 8, 8 * 16 * 16)
        + conv(8, 16, 4 * 8 * 8)
        + conv(16, 16, 4 * 8 * 8)
        + conv(16, 32, 2 * 4 * 4)
        + conv(32, 32, 2 * 4 * 4)
        + conv(32, 32, 2 * 2)
        + conv(32, 32, 2 * 2)
        + 128 * 256
        + 256 * 256
        + 256 * 10;
    let conv_macs: u64 = rows
        .iter()
        .filter(|r| r["op"] == "Conv3d" || r["op"] == "Linear")
        .map(|r| r["macs"].as_u64().unwrap())
        .sum();
    assert_eq!(conv_macs, brute);
    let o = c3dc(&["inspect", s(&plan)]);
    assert!(text(&o).contains("total:"), "{}", text(&o));
    // The session's flooding bound is shown and within the claim (2^-40 over a session).
    assert!(text(&o).contains("circuit privacy:"), "{}", text(&o));
    assert!(j["he_replies"].as_u64().unwrap() > 0);
    assert!(
        j["he_distance_log2"].as_f64().unwrap() <= -40.0,
        "{}",
        j["he_distance_log2"]
    );

    // simulate writes the same output the library computes.
    let x = d.path().join("x.npy");
    assert!(c3dc(&["random-input", s(&plan), "-o", s(&x)])
        .status
        .success());
    let y = d.path().join("y.npy");
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&x),
        "--output",
        s(&y),
        "--reference",
        s(&onnx),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("top-1 agrees"), "{}", text(&o));
    let w = p.load_weights(&weights).unwrap();
    let xin = c3d_compiler::npy::read_f32(&x).unwrap();
    let lib = c3d_ir::simulate(&p, &w, &xin).unwrap();
    assert_eq!(c3d_compiler::npy::read_f32(&y).unwrap(), lib.output);
}

#[test]
fn damaged_plans_and_mismatched_weights_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (_, plan) = compiled(d.path(), 1, "a");
    let (_, other) = compiled(d.path(), 2, "b");
    let x = d.path().join("x.npy");
    assert!(c3dc(&["random-input", s(&plan), "-o", s(&x)])
        .status
        .success());
    let bytes = std::fs::read(&plan).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        ("header only", bytes[..20].to_vec(), "shorter than"),
        (
            "corrupted",
            {
                let mut b = bytes.clone();
                let n = b.len();
                b[n - 10] ^= 0x55;
                b
            },
            "corrupted",
        ),
        (
            "not a plan",
            b"hello, this is not a plan at all, not even close to one".to_vec(),
            "bad magic",
        ),
        (
            "future version",
            {
                let mut b = bytes.clone();
                b[8] = 9;
                b
            },
            "format version 9",
        ),
        (
            "old version",
            {
                let mut b = bytes.clone();
                b[8..12].copy_from_slice(&4u32.to_le_bytes());
                b
            },
            "format version 4 is older than this build's 6: recompile the model with `c3dc compile`",
        ),
        ("empty", vec![], "shorter than"),
    ];
    for (what, b, expect) in cases {
        let p = d.path().join(format!("bad-{}.bin", what.replace(' ', "-")));
        std::fs::write(&p, b).unwrap();
        let o = c3dc(&["inspect", s(&p)]);
        eprintln!("case: {what}");
        refused(&o, expect);
    }

    // Weights of another compilation: the hash check names the mismatch.
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&x),
        "--weights",
        &format!("{}.weights", s(&other)),
    ]);
    refused(&o, "does not match the plan");
    // Weights of an older format: refused, with the way out.
    let mut old = std::fs::read(format!("{}.weights", s(&plan))).unwrap();
    old[8..12].copy_from_slice(&4u32.to_le_bytes());
    let old_path = d.path().join("old.weights");
    std::fs::write(&old_path, old).unwrap();
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&x),
        "--weights",
        s(&old_path),
    ]);
    refused(&o, "weights: format version 4 is older than this build's 6");
    refused(&o, "recompile the model with `c3dc compile`");
    // A plan passed where the weights go.
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&x),
        "--weights",
        s(&plan),
    ]);
    refused(&o, "this is a plan, not a weights file");
    // Missing weights file.
    std::fs::remove_file(format!("{}.weights", s(&other))).unwrap();
    let o = c3dc(&["simulate", s(&other), "--input", s(&x)]);
    refused(&o, "weights");
}

#[test]
fn bad_inputs_to_simulate_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (_, plan) = compiled(d.path(), 1, "a");
    // Wrong shape.
    let wrong = d.path().join("wrong.npy");
    let t = c3d_ir::Tensor::new(
        c3d_ir::Shape::new(vec![1, 3, 8, 32, 31]),
        vec![0.0f32; 3 * 8 * 32 * 31],
    );
    c3d_compiler::npy::write_f32(&wrong, &t).unwrap();
    let out = d.path().join("y.npy");
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&wrong),
        "--output",
        s(&out),
    ]);
    refused(&o, "1x3x8x32x31");
    refused(&o, "1x3x8x32x32");
    assert!(!out.exists(), "no output on failure");
    // Not an .npy at all.
    let junk = d.path().join("junk.npy");
    std::fs::write(&junk, b"\x93NUMPY garbage").unwrap();
    let o = c3dc(&["simulate", s(&plan), "--input", s(&junk)]);
    refused(&o, "not a float32 .npy");
    // Non-finite values.
    let nan = d.path().join("nan.npy");
    let mut t = c3d_ir::Tensor::new(
        c3d_ir::Shape::new(vec![1, 3, 8, 32, 32]),
        vec![0.0f32; 3 * 8 * 32 * 32],
    );
    t.data[5] = f32::NAN;
    c3d_compiler::npy::write_f32(&nan, &t).unwrap();
    let o = c3dc(&["simulate", s(&plan), "--input", s(&nan)]);
    refused(&o, "non-finite");
}

#[test]
fn unsupported_op_is_a_diagnostic_with_exit_2_and_no_plan() {
    let d = tempfile::tempdir().unwrap();
    let mut b = OnnxBuilder::new();
    let w = b.param("conv.weight", &[2, 3, 1, 1, 1], &[0.1; 6]);
    let y = b.node("Conv", "/conv/Conv", &["input", &w], vec![]);
    let y = b.node("Sigmoid", "/act/Sigmoid", &[&y], vec![]);
    let m = b.finish("bad", ("input", &[1, 3, 2, 4, 4]), (&y, &[1, 2, 2, 4, 4]));
    let onnx = d.path().join("bad.onnx");
    std::fs::write(&onnx, to_bytes(&m)).unwrap();
    let plan = d.path().join("plan.bin");
    let o = c3dc(&["compile", s(&onnx), "-o", s(&plan)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    no_panic(&o);
    let t = text(&o);
    for needle in [
        "/act/Sigmoid",
        "Sigmoid",
        "/conv/Conv_output_0",
        "supported ops",
        "BatchNormalization",
    ] {
        assert!(t.contains(needle), "missing `{needle}` in: {t}");
    }
    assert!(
        !plan.exists() && !d.path().join("plan.bin.weights").exists(),
        "no plan written"
    );

    // Not an ONNX file, and an empty one.
    let junk = d.path().join("junk.onnx");
    std::fs::write(&junk, b"definitely not protobuf \xff\xff\xff").unwrap();
    let o = c3dc(&["compile", s(&junk), "-o", s(&plan)]);
    refused(&o, "cannot read ONNX model");
    no_panic(&o);
    std::fs::write(&junk, b"").unwrap();
    let o = c3dc(&["compile", s(&junk), "-o", s(&plan)]);
    refused(&o, "empty");
    assert!(!plan.exists());
}

#[test]
fn two_d_models_and_data_dependent_shapes_are_explained() {
    let d = tempfile::tempdir().unwrap();
    // A 2-D convolution: the frontend says only 3-D is supported.
    let mut b = OnnxBuilder::new();
    let shape = b.const_i64(&[4], &[1, 3, 8, 8]);
    let x = b.node("Reshape", "/r/Reshape", &["input", &shape], vec![]);
    let w2 = b.param("conv2.weight", &[2, 3, 3, 3], &[0.1; 54]);
    let y = b.node("Conv", "/conv2d/Conv", &[&x, &w2], vec![]);
    let m = b.finish("twod", ("input", &[1, 3, 1, 8, 8]), (&y, &[1, 2, 6, 6]));
    let onnx = d.path().join("twod.onnx");
    std::fs::write(&onnx, to_bytes(&m)).unwrap();
    let o = c3dc(&["compile", s(&onnx), "-o", s(&d.path().join("p.bin"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("only 3-D"), "{}", text(&o));
}

/// Compiles a model file that does not exist with `--{flag}=v` for each bad value: the
/// option is checked first, so the refusal must name it, and nothing is written.
fn refused_before_import(flag: &str, values: &[&str], message: &str) {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("none.onnx");
    for v in values {
        let arg = format!("--{flag}={v}");
        let o = c3dc(&[
            "compile",
            s(&missing),
            "-o",
            s(&d.path().join("p.bin")),
            &arg,
        ]);
        refused(&o, message);
        assert!(!d.path().join("p.bin").exists());
    }
}

#[test]
fn bad_prune_values_are_refused_before_import() {
    refused_before_import("prune", &["1.5", "-0.1", "1", "NaN"], "is not in [0, 1)");
}

#[test]
fn bad_approx_budgets_are_refused_before_import() {
    refused_before_import(
        "approx-budget",
        &["0", "-3", "NaN", "inf"],
        "expected a positive number of MB",
    );
}

#[test]
fn a_failing_pass_is_reported_with_its_cause_once_and_exit_1() {
    // c3d-motion-sq at f >= 8 needs a field whose HE parameters cannot flood the session.
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/motion/c3d-motion-sq.onnx");
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.bin");
    let o = c3dc(&["compile", s(&onnx), "-o", s(&plan)]);
    refused(&o, "no HE packing fits even at 8 fractional bits");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        text(&o).matches("the parameters have 185 bits").count(),
        1,
        "the cause is named once: {}",
        text(&o)
    );
    assert!(!plan.exists(), "no plan written");
}

#[test]
fn bad_network_figures_are_refused_before_import() {
    refused_before_import(
        "bandwidth",
        &["0", "-3", "NaN", "inf"],
        "expected a positive Mbit/s",
    );
    refused_before_import(
        "rtt",
        &["-1", "NaN", "inf"],
        "expected a non-negative number of ms",
    );
    let d = tempfile::tempdir().unwrap();
    let o = c3dc(&[
        "compile",
        s(&d.path().join("none.onnx")),
        "--nonlinear",
        "yao",
    ]);
    refused(&o, "invalid value 'yao' for '--nonlinear");
}

/// `--nonlinear` decides the comparison protocols, the plan records the network, and
/// `inspect --json` gives both protocols' costs for every comparison layer.
#[test]
fn the_comparison_protocol_follows_nonlinear_and_inspect_shows_both() {
    let d = tempfile::tempdir().unwrap();
    let (onnx, _) = compiled(d.path(), 1, "n");
    for (choice, want) in [("gc", "GarbledCircuit"), ("ot", "OtComparison")] {
        let plan = d.path().join(format!("{choice}.bin"));
        let o = c3dc(&[
            "compile",
            s(&onnx),
            "-o",
            s(&plan),
            "--nonlinear",
            choice,
            "--bandwidth",
            "200",
            "--rtt",
            "40",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let o = c3dc(&["inspect", s(&plan), "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["network"]["bandwidth_mbit"], 200.0);
        assert_eq!(j["network"]["rtt_ms"], 40.0);
        let rows: Vec<&serde_json::Value> = j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["choices"].as_array().unwrap().is_empty())
            .collect();
        assert_eq!(rows.len(), 10, "c3d-tiny's comparison layers");
        for r in rows {
            assert_eq!(r["protocol"], want, "{}", r["name"]);
            let c = r["choices"].as_array().unwrap();
            let (gc, ot) = (
                c[0]["bytes"].as_u64().unwrap(),
                c[1]["bytes"].as_u64().unwrap(),
            );
            assert!(ot < gc, "{}: OT {ot} B, GC {gc} B", r["name"]);
        }
        let table = text(&c3dc(&["inspect", s(&plan)]));
        assert!(
            table.contains("comparison protocols (--nonlinear"),
            "{table}"
        );
    }
}

/// c3d_micro (5 classes, Softmax output) with graph name `graph`, and `c3d.model` metadata
/// when `meta` is given, written to `dir/file`.
fn micro(dir: &Path, file: &str, graph: &str, meta: Option<&str>) -> PathBuf {
    let mut m = c3d_models::fixtures::c3d_micro(3);
    m.graph.as_mut().unwrap().name = graph.into();
    m.metadata_props.retain(|e| e.key != "c3d.model");
    if let Some(v) = meta {
        m.metadata_props
            .push(tract_onnx::pb::StringStringEntryProto {
                key: "c3d.model".into(),
                value: v.into(),
            });
    }
    let p = dir.join(file);
    std::fs::write(&p, to_bytes(&m)).unwrap();
    p
}

/// The name `c3dc compile ARGS` records in the plan.
fn compiled_name(dir: &Path, onnx: &Path, extra: &[&str]) -> String {
    let plan = dir.join("named.bin");
    let mut args = vec!["compile", s(onnx), "-o", s(&plan), "--calib-samples", "1"];
    args.extend_from_slice(extra);
    let o = c3dc(&args);
    assert!(o.status.success(), "{}", text(&o));
    c3d_ir::Plan::load(&plan).unwrap().0.meta.name
}

/// --name, then `c3d.model`, then a graph name that is not an exporter's default, then the
/// file stem.
#[test]
fn model_names_skip_exporter_defaults_and_name_overrides() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("r2plus1d_18.onnx", "torch_jit", None, "r2plus1d_18"),
        ("slowfast.onnx", "main_graph", None, "slowfast"),
        ("x.onnx", "torch-jit-export", None, "x"),
        ("tf.onnx", "tf2onnx", None, "tf"),
        ("empty.onnx", "", None, "empty"),
        ("file.onnx", "x3d_s", None, "x3d_s"),
        (
            "file.onnx",
            "main_graph",
            Some("kinetics-c3d"),
            "kinetics-c3d",
        ),
    ];
    for (file, graph, meta, want) in cases {
        let onnx = micro(d.path(), file, graph, meta);
        assert_eq!(compiled_name(d.path(), &onnx, &[]), want, "{file} {graph}");
    }
    let onnx = micro(d.path(), "file.onnx", "x3d_s", Some("kinetics-c3d"));
    assert_eq!(
        compiled_name(d.path(), &onnx, &["--name", "  demo model  "]),
        "demo model"
    );
    // inspect shows it.
    let o = c3dc(&["inspect", s(&d.path().join("named.bin"))]);
    assert!(text(&o).contains("model demo model"), "{}", text(&o));
}

#[test]
fn bad_names_are_refused_before_import() {
    refused_before_import("name", &["", "   "], "the name is empty");
    refused_before_import("name", &["a\u{7}b"], "control character");
    refused_before_import("name", &[&"n".repeat(129)], "more than the 128 allowed");
}

const LABELS: [&str; 5] = ["walk", "run", "jump", "a <b> & c", "wave"];

/// c3d_micro compiled with LABELS; returns (onnx, plan, compile's stdout and stderr).
fn labelled(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf, Output) {
    let onnx = micro(dir, "micro.onnx", "micro", None);
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, LABELS.join("\n")).unwrap();
    let plan = dir.join("micro.bin");
    let mut args = vec![
        "compile",
        s(&onnx),
        "-o",
        s(&plan),
        "--labels",
        s(&labels),
        "--calib-samples",
        "1",
    ];
    args.extend_from_slice(extra);
    let o = c3dc(&args);
    assert!(o.status.success(), "{}", text(&o));
    (onnx, plan, o)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn compile_json_is_one_object_that_matches_the_plan_files() {
    let d = tempfile::tempdir().unwrap();
    let (onnx, plan, o) = labelled(d.path(), &["--json"]);
    // All of stdout is one JSON value (from_slice refuses trailing text).
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("compiled "));
    let (p, hash) = c3d_ir::Plan::load(&plan).unwrap();
    let weights = PathBuf::from(format!("{}.weights", s(&plan)));
    assert_eq!(j["model"], "micro");
    assert_eq!(j["input"], s(&onnx));
    assert_eq!(j["plan"], s(&plan));
    assert_eq!(j["plan_hash"], hex(&hash));
    assert_eq!(j["plan_bytes"], std::fs::metadata(&plan).unwrap().len());
    assert_eq!(j["weights"], s(&weights));
    assert_eq!(
        j["weights_bytes"],
        std::fs::metadata(&weights).unwrap().len()
    );
    assert_eq!(j["p"], p.fixed.p);
    assert_eq!(j["frac_bits"], p.fixed.frac_bits);
    assert_eq!(j["classes"], serde_json::json!(LABELS));
    let phases = j["phases"].as_array().unwrap();
    assert!(
        phases.iter().any(|x| x["name"] == "import+fold"),
        "{phases:?}"
    );
    let sum: f64 = phases.iter().map(|x| x["seconds"].as_f64().unwrap()).sum();
    assert!(
        sum <= j["seconds"].as_f64().unwrap(),
        "{sum} > {}",
        j["seconds"]
    );
    // The per-layer list and the counts, against the plan read back.
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), p.layers.len());
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for (l, r) in p.layers.iter().zip(layers) {
        let n = p.graph.node(l.node);
        assert_eq!(r["name"], n.name.as_str());
        assert_eq!(r["op"], n.op.name());
        assert_eq!(r["protocol"], serde_json::to_value(l.protocol).unwrap());
        *counts
            .entry(r["protocol"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(j["protocols"], serde_json::to_value(&counts).unwrap());
    assert!(counts.contains_key("HeLinear") && counts.contains_key("Client"));
}

#[test]
fn simulate_json_matches_the_library_and_the_float_reference() {
    let d = tempfile::tempdir().unwrap();
    let (onnx, plan, _) = labelled(d.path(), &[]);
    let x = d.path().join("x.npy");
    assert!(c3dc(&["random-input", s(&plan), "-o", s(&x)])
        .status
        .success());
    let o = c3dc(&[
        "simulate",
        s(&plan),
        "--input",
        s(&x),
        "--reference",
        s(&onnx),
        "--top",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("fixed-point simulation: top 3"));
    let (p, hash) = c3d_ir::Plan::load(&plan).unwrap();
    let w = p
        .load_weights(&PathBuf::from(format!("{}.weights", s(&plan))))
        .unwrap();
    let xin = c3d_compiler::npy::read_f32(&x).unwrap();
    let lib = c3d_ir::simulate(&p, &w, &xin).unwrap().output.data;
    assert_eq!(j["plan_hash"], hex(&hash));
    assert_eq!(j["model"], "micro");
    // The model ends in Softmax: the values are probabilities.
    assert_eq!(j["output_kind"], "probability");
    let out: Vec<f32> = j["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(out, lib);
    let mut order: Vec<usize> = (0..lib.len()).collect();
    order.sort_by(|&a, &b| lib[b].partial_cmp(&lib[a]).unwrap().then(a.cmp(&b)));
    let top = j["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    for (t, &i) in top.iter().zip(&order) {
        assert_eq!(t["index"], i);
        assert_eq!(t["label"], LABELS[i]);
        assert_eq!(t["probability"].as_f64().unwrap() as f32, lib[i]);
    }
    assert!(!j["layers"].as_array().unwrap().is_empty());
    let f = c3d_compiler::tract_ref::run_tract(&onnx, &xin)
        .unwrap()
        .data;
    let r = &j["reference"];
    let diff = f
        .iter()
        .zip(&lib)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(r["max_abs_diff"].as_f64().unwrap() as f32, diff);
    let best = |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
    assert_eq!(r["top1_agrees"], best(&f) == best(&lib));

    // Without Softmax the values are scores; without --reference there is none.
    let mut m = c3d_models::fixtures::c3d_micro(3);
    let g = m.graph.as_mut().unwrap();
    let softmax = g.node.pop().unwrap();
    g.output[0].name = softmax.input[0].clone();
    let logits = d.path().join("logits.onnx");
    std::fs::write(&logits, to_bytes(&m)).unwrap();
    let lp = d.path().join("logits.bin");
    let o = c3dc(&["compile", s(&logits), "-o", s(&lp), "--calib-samples", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = c3dc(&["simulate", s(&lp), "--input", s(&x), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["output_kind"], "score");
    assert!(j["top"][0]["score"].is_number() && j["top"][0]["label"].is_null());
    assert!(j["reference"].is_null());
}

/// Whether `svg` is well-formed XML as far as a chart goes: every tag closed in order, no
/// raw `<` or `&` in text or attributes outside an entity.
fn well_formed(svg: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        check_text(&rest[..i])?;
        let end = rest[i..].find('>').ok_or("unclosed tag")? + i;
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        if tag.contains('<') {
            return Err(format!("`<` inside tag {tag}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
        } else {
            check_text(tag)?;
        }
    }
    check_text(rest)?;
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

fn check_text(t: &str) -> Result<(), String> {
    for (i, _) in t.match_indices('&') {
        let ent = &t[i..t[i..].find(';').map_or(t.len(), |e| i + e + 1)];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&ent) {
            return Err(format!("raw & at {ent}"));
        }
    }
    Ok(())
}

#[test]
fn inspect_svg_draws_one_escaped_bar_group_per_layer_and_shows_classes() {
    let d = tempfile::tempdir().unwrap();
    let (_, plan, _) = labelled(d.path(), &["--name", "micro <v2> & \"co\""]);
    let svg = d.path().join("cost.svg");
    let o = c3dc(&["inspect", s(&plan), "--svg", s(&svg)]);
    assert!(o.status.success(), "{}", text(&o));
    // The text table names the classes, and so does the JSON.
    assert!(
        text(&o).contains("classes: 5 (walk, run, jump, a <b> & c, wave)"),
        "{}",
        text(&o)
    );
    let j: serde_json::Value =
        serde_json::from_slice(&c3dc(&["inspect", s(&plan), "--json"]).stdout).unwrap();
    assert_eq!(j["classes"], serde_json::json!(LABELS));
    assert_eq!(j["outputs"], 5);
    let body = std::fs::read_to_string(&svg).unwrap();
    well_formed(&body).unwrap();
    let (p, _) = c3d_ir::Plan::load(&plan).unwrap();
    assert_eq!(
        body.matches(r#"<g class="bar-group">"#).count(),
        p.layers.len()
    );
    assert!(
        body.contains("micro &lt;v2&gt; &amp; &quot;co&quot;"),
        "{body}"
    );
    for name in [
        "MB offline",
        "MB online",
        "estimated s",
        "HeLinear",
        "Client",
    ] {
        assert!(body.contains(name), "no {name}");
    }
    // A path that cannot be written: an error naming it, no panic.
    let bad = d.path().join("no/such/dir/cost.svg");
    let o = c3dc(&["inspect", s(&plan), "--svg", s(&bad)]);
    refused(&o, "cannot write the SVG");
    refused(&o, "no/such/dir");
}
