//! c3d-run as users run it: a server process and client processes over TCP. The server must
//! survive clients that send garbage, oversize frames, the wrong plan, or vanish in the middle
//! of either phase, and keep serving: two honest clients at once then both get exactly the
//! simulator's output. Bad clips fail on the client with a clear error.

use c3d_ir::{simulate, Plan, Tensor};
use c3d_runtime::he::fhers::FheRs;
use c3d_runtime::session::{client_offline, client_online, ClientOptions};
use c3d_runtime::transport::Channel;
use rand::SeedableRng;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{clips, compile, free_port, read_npy, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_c3d-run");

/// A library client whose connection is cut `after` into the given phase.
fn vanishing_client(plan: &Plan, addr: &str, online: bool, after: Duration) {
    let stream = TcpStream::connect(addr).unwrap();
    let killer = stream.try_clone().unwrap();
    let mut ch = Channel::new(stream).unwrap();
    let be = FheRs::new(plan.fixed.p).unwrap();
    let hash = plan.hash().unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let cut = move || {
        std::thread::sleep(after);
        let _ = killer.shutdown(std::net::Shutdown::Both);
    };
    if !online {
        std::thread::spawn(cut);
        let r = client_offline(
            plan,
            &hash,
            &be,
            &mut ch,
            &ClientOptions::default(),
            &mut rng,
            &mut |_| {},
        );
        assert!(r.is_err(), "the cut client cannot finish");
        return;
    }
    let prep = client_offline(
        plan,
        &hash,
        &be,
        &mut ch,
        &ClientOptions::default(),
        &mut rng,
        &mut |_| {},
    )
    .unwrap();
    std::thread::spawn(cut);
    let (_, inp) = (0, plan.graph.io().unwrap().0);
    let shape = plan.graph.node(inp).shape.clone();
    let x = Tensor::new(shape.clone(), vec![0.1; shape.numel()]);
    assert!(client_online(prep, &mut ch, &x, &mut |_| {}).is_err());
}

#[test]
fn server_survives_bad_clients_and_serves_two_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = compile(dir.path(), 1, "a");
    let other = compile(dir.path(), 2, "b");
    let garbled = Plan::load(&plan_path)
        .unwrap()
        .0
        .layers
        .iter()
        .any(|l| l.protocol == c3d_ir::Protocol::GarbledCircuit);
    let (plan, _) = Plan::load(&plan_path).unwrap();
    let weights = plan
        .load_weights(&c3d_ir::format::weights_path_for(&plan_path))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan_path)
        .args(["--listen", &addr, "--sessions", "8", "--timeout", "60"])
        // A memory ceiling that leaves room, and the GPU flag (in a build or on a machine
        // without one, the server says so and runs on the CPU).
        .args(["--memory-limit", "100000", "--gpu"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The probe that finds the server up is a session too: it connects and says nothing.
    wait_for(&addr);
    // 1. Garbage bytes. 2. A frame announcing 4 GiB.
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    // 3. The wrong plan: both sides stop with a clear error.
    let mismatch = Command::new(BIN)
        .args(["--role", "client"])
        .arg(&other)
        .arg(clips().join("demo.mp4"))
        .args(["--connect", &addr])
        .output()
        .unwrap();
    assert!(!mismatch.status.success());
    let err = String::from_utf8_lossy(&mismatch.stderr);
    assert!(err.contains("plan mismatch"), "{err}");
    // 4, 5. Clients that vanish in the offline and in the online phase.
    vanishing_client(&plan, &addr, false, Duration::from_millis(400));
    vanishing_client(&plan, &addr, true, Duration::from_millis(300));
    // 6, 7. Two honest clients at once, on two clips.
    let xs: Vec<PathBuf> = (0..2)
        .map(|k| {
            let shape = plan.graph.node(plan.graph.io().unwrap().0).shape.clone();
            let data = (0..shape.numel())
                .map(|i| ((i * (k + 3)) % 17) as f32 / 8.0 - 1.0)
                .collect::<Vec<_>>();
            let p = dir.path().join(format!("x{k}.npy"));
            use ndarray_npy::WriteNpyExt;
            let a = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape.dims()), data).unwrap();
            a.write_npy(std::fs::File::create(&p).unwrap()).unwrap();
            p
        })
        .collect();
    let clients: Vec<_> = xs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let out = dir.path().join(format!("out{k}.npy"));
            // The second client spools nothing: every garbled layer is streamed online.
            let spool: &[&str] = if k == 1 { &["--spool-limit", "0"] } else { &[] };
            let child = Command::new(BIN)
                .args(["--role", "client"])
                .arg(&plan_path)
                .arg(x)
                .args(spool)
                .args(["--connect", &addr, "--output"])
                .arg(&out)
                .arg("--report")
                .arg(dir.path().join(format!("r{k}.json")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    for (k, (child, out)) in clients.into_iter().enumerate() {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("secure top-5"), "{stdout}");
        // Only garbled layers are spooled (and so streamed without a spool).
        assert_eq!(
            stdout.contains("streamed online"),
            k == 1 && garbled,
            "{stdout}"
        );
        let x = {
            use ndarray_npy::ReadNpyExt;
            let a = ndarray::ArrayD::<f32>::read_npy(std::fs::File::open(&xs[k]).unwrap()).unwrap();
            Tensor::new(
                c3d_ir::Shape::new(a.shape().to_vec()),
                a.iter().copied().collect(),
            )
        };
        let want = simulate(&plan, &weights, &x).unwrap();
        assert_eq!(read_npy(&out), want.output.data, "client {k}");
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(format!("r{k}.json"))).unwrap())
                .unwrap();
        assert_eq!(rep["phases"].as_array().unwrap().len(), 2);
        assert!(rep["layers"].as_array().unwrap().len() > 20);
    }
    let s = server.wait_with_output().unwrap();
    assert!(s.status.success());
    let log = String::from_utf8_lossy(&s.stderr);
    let ended = log.matches("ended:").count();
    let done = log.matches(" done:").count();
    assert_eq!((ended, done), (6, 2), "server log:\n{log}");
    assert!(log.contains("plan mismatch"), "{log}");
    assert!(log.contains("may keep"), "{log}");
    assert!(log.contains("online linear layers"), "{log}");
}

#[test]
fn bad_clips_fail_clearly_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = compile(dir.path(), 1, "a");
    let demo = std::fs::read(clips().join("demo.mp4")).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &demo[..demo.len() / 3]).unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video at all").unwrap();
    let cases = [
        (truncated, "decodable frames"),
        (text, "not a usable video"),
        (clips().join("short.mp4"), "has 4 decodable frames"),
        (dir.path().join("missing.mp4"), "no such file"),
    ];
    for (clip, want) in cases {
        // Nobody listens: a clip error must come before any connection attempt.
        let o = Command::new(BIN)
            .args(["--role", "client"])
            .arg(&plan_path)
            .arg(&clip)
            .args(["--connect", "127.0.0.1:9", "--connect-wait", "0"])
            .output()
            .unwrap();
        assert!(!o.status.success());
        // miette wraps long lines: compare with the wrapping undone.
        let err = String::from_utf8_lossy(&o.stderr)
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(err.contains(want), "{}: {err}", clip.display());
    }
    // A weights file given as the plan is refused by name.
    let o = Command::new(BIN)
        .args(["--role", "client"])
        .arg(c3d_ir::format::weights_path_for(&plan_path))
        .arg(clips().join("demo.mp4"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("weights"));
    // Bad limits and spool directories, refused before any connection (client) or before
    // listening (server).
    let flat = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr)
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let client_cases: [(&[&str], &str); 3] = [
        (
            &["--spool-limit=-1"],
            "--spool-limit must be a number of GB >= 0",
        ),
        (
            &["--spool-limit", "NaN"],
            "--spool-limit must be a number of GB >= 0",
        ),
        (&["--spool", "/nonexistent/spool"], "not a directory"),
    ];
    for (flags, want) in client_cases {
        let o = Command::new(BIN)
            .args(["--role", "client"])
            .arg(&plan_path)
            .arg(clips().join("demo.mp4"))
            .args(["--connect", "127.0.0.1:9", "--connect-wait", "0"])
            .args(flags)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{flags:?}");
        assert!(flat(&o).contains(want), "{flags:?}: {}", flat(&o));
    }
    for (limit, want) in [
        ("0", "must be a positive number"),
        ("1", "the model alone takes"),
    ] {
        let o = Command::new(BIN)
            .args(["--role", "server"])
            .arg(&plan_path)
            .args(["--listen", "127.0.0.1:0", "--memory-limit", limit])
            .output()
            .unwrap();
        assert!(!o.status.success(), "--memory-limit {limit}");
        assert!(
            flat(&o).contains(want),
            "--memory-limit {limit}: {}",
            flat(&o)
        );
    }
}

#[test]
fn the_bundled_clip_decodes_to_the_model_input() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, _) = Plan::load(&compile(dir.path(), 1, "a")).unwrap();
    let shape = plan.graph.node(plan.graph.io().unwrap().0).shape.clone();
    let pp = &plan.meta.preprocess;
    let t = c3d_runtime::video::load_clip(&clips().join("demo.mp4"), pp, &shape).unwrap();
    assert_eq!(t.shape, shape);
    let (lo, hi) = pp.input_range();
    assert!(t.data.iter().all(|&v| v >= lo - 1e-5 && v <= hi + 1e-5));
    // The frames differ (the pattern moves) and are not blank.
    let frame = shape.numel() / (3 * pp.frames);
    let first = &t.data[..frame];
    let second = &t.data[frame..2 * frame];
    assert_ne!(first, second);
    assert!(first.iter().any(|&v| v != first[0]));
}

#[test]
fn client_json_is_one_object_that_matches_the_report_and_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = clips().join("../motion/c3d-motion.onnx");
    let c = c3d_compiler::compile(&onnx, &Default::default(), |_| {}).unwrap();
    let plan_path = dir.path().join("m.plan");
    let hash = c.plan.save(&plan_path).unwrap();
    c.weights
        .save(&c3d_ir::format::weights_path_for(&plan_path))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan_path)
        .args(["--listen", &addr, "--sessions", "2", "--quiet"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&addr);
    let (report, output) = (dir.path().join("r.json"), dir.path().join("o.npy"));
    let o = Command::new(BIN)
        .args(["--role", "client"])
        .arg(&plan_path)
        .arg(clips().join("motion/left.mp4"))
        .args(["--connect", &addr, "--json", "--top", "3", "--report"])
        .arg(&report)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(server.wait_with_output().unwrap().status.success());
    // All of stdout is one JSON object; the human lines went to stderr.
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("secure top-3"));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(j["plan_hash"], c3d_ir::format::hex(&hash));
    assert_eq!(j["plan_hash"], rep["plan_hash"]);
    assert_eq!(j["model"], "c3d-motion");
    for k in ["bytes_sent", "bytes_received", "peak_memory"] {
        assert_eq!(j[k], rep[k], "{k}");
    }
    for p in rep["phases"].as_array().unwrap() {
        let name = p["phase"].as_str().unwrap();
        for k in ["seconds", "bytes_sent", "bytes_received", "rounds"] {
            assert_eq!(j["phases"][name][k], p[k], "{name} {k}");
        }
        assert_eq!(j["seconds"][name], p["seconds"]);
    }
    // The top classes: the output's three largest, named from the plan.
    let out = read_npy(&output);
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by(|&a, &b| out[b].total_cmp(&out[a]));
    let top = j["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    for (t, &i) in top.iter().zip(&idx) {
        assert_eq!(t["index"], i);
        assert_eq!(t["label"], c.plan.meta.class_names[i].as_str());
        assert_eq!(t["probability"].as_f64().unwrap() as f32, out[i]);
    }
    assert_eq!(top[0]["label"], "left");
    // One protocol per layer, as the report's online phase ran it.
    let layers = j["layers"].as_array().unwrap();
    for l in rep["layers"].as_array().unwrap() {
        if l["phase"] == "online" {
            let mine = layers.iter().find(|x| x["layer"] == l["layer"]).unwrap();
            assert_eq!(mine["protocol"], l["protocol"]);
        }
    }
    let counted: u64 = j["protocols"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize, layers.len());
}
