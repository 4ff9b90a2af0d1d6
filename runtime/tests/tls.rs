//! c3d-run over TLS 1.3 as an operator deploys it: with server authentication only and with
//! client certificates (mutual TLS) the secure result equals the plaintext simulation bit for
//! bit; clients without an accepted certificate, and plain-TCP clients, are refused in the
//! handshake, before any HE or garbling work; plain TCP off loopback is refused unless asked
//! for.

use c3d_ir::{simulate, Plan, Tensor};
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{clips, compile, free_port, pki, read_npy};

const BIN: &str = env!("CARGO_BIN_EXE_c3d-run");

/// Runs a client on the bundled clip with extra flags; returns its output and the .npy
/// written.
fn client(plan: &Path, addr: &str, flags: &[&Path], names: &[&str], out: &Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(["--role", "client"])
        .arg(plan)
        .arg(clips().join("demo.mp4"))
        .args(["--connect", addr, "--connect-wait", "20", "--output"])
        .arg(out)
        .arg("--save-input")
        .arg(out.with_extension("input.npy"));
    for (n, f) in names.iter().zip(flags) {
        c.arg(n).arg(f);
    }
    c.output().unwrap()
}

/// The simulation's output on the input the client saved.
fn simulated(plan_path: &Path, input: &Path) -> Vec<f32> {
    let (plan, _) = Plan::load(plan_path).unwrap();
    let w = plan
        .load_weights(&c3d_ir::format::weights_path_for(plan_path))
        .unwrap();
    let x = {
        use ndarray_npy::ReadNpyExt;
        let a = ndarray::ArrayD::<f32>::read_npy(std::fs::File::open(input).unwrap()).unwrap();
        Tensor::new(
            c3d_ir::Shape::new(a.shape().to_vec()),
            a.iter().copied().collect(),
        )
    };
    simulate(&plan, &w, &x).unwrap().output.data
}

/// The client succeeded and its output equals the simulation of the input it saved.
fn assert_exact(o: &Output, plan: &Path, out: &Path) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        read_npy(out),
        simulated(plan, &out.with_extension("input.npy"))
    );
}

#[test]
fn mutual_tls_equals_the_simulation_and_refuses_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plan = compile(d, 1, "a");
    let k = pki(d);
    let addr = format!("127.0.0.1:{}", free_port());
    let server = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan)
        .args(["--listen", &addr, "--sessions", "4", "--timeout", "60"])
        .arg("--tls-cert")
        .arg(&k.server.0)
        .arg("--tls-key")
        .arg(&k.server.1)
        .arg("--client-ca")
        .arg(&k.ca)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 1. A client with a certificate from the CA: the exact result.
    let out = d.join("mtls.npy");
    let ok = client(
        &plan,
        &addr,
        &[&k.ca, &k.client.0, &k.client.1],
        &["--tls-ca", "--tls-cert", "--tls-key"],
        &out,
    );
    assert_exact(&ok, &plan, &out);
    // 2. No certificate. 3. A certificate from another CA. 4. Plain TCP to a TLS server.
    let none = client(&plan, &addr, &[&k.ca], &["--tls-ca"], &d.join("x.npy"));
    let rogue = client(
        &plan,
        &addr,
        &[&k.ca, &k.rogue.0, &k.rogue.1],
        &["--tls-ca", "--tls-cert", "--tls-key"],
        &d.join("y.npy"),
    );
    let plain = client(&plan, &addr, &[], &[], &d.join("z.npy"));
    for (what, o) in [
        ("no certificate", &none),
        ("rogue", &rogue),
        ("plain", &plain),
    ] {
        assert!(!o.status.success(), "{what}: the client must fail");
        assert!(!d.join("x.npy").exists() && !d.join("y.npy").exists());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    let s = server.wait_with_output().unwrap();
    assert!(s.status.success());
    let log = String::from_utf8_lossy(&s.stderr);
    assert!(log.contains("client certificates required"), "{log}");
    // Without --memory-limit the server still has a ceiling (from the machine's memory).
    let ceiling: f64 = log
        .split("ceiling ")
        .nth(1)
        .and_then(|t| t.split(" MB").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ceiling in the log: {log}"));
    assert!(ceiling > 0.0 && ceiling < 1e9, "{ceiling}");
    assert_eq!(log.matches(" done:").count(), 1, "{log}");
    // The refused ones end in the TLS handshake: no session step ran for them.
    assert_eq!(log.matches("ended: TLS").count(), 3, "{log}");
}

#[test]
fn server_authenticated_tls_equals_the_simulation_and_checks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plan = compile(d, 2, "b");
    let k = pki(d);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan)
        .args(["--listen", &addr, "--sessions", "2"])
        .arg("--tls-cert")
        .arg(&k.server.0)
        .arg("--tls-key")
        .arg(&k.server.1)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // By the name in --server-name, and by the address's own (an IP SAN).
    let out = d.join("tls.npy");
    let ok = client(
        &plan,
        &format!("localhost:{port}"),
        &[&k.ca],
        &["--tls-ca"],
        &out,
    );
    assert_exact(&ok, &plan, &out);
    // A name the certificate does not carry is refused by the client.
    let mut c = Command::new(BIN);
    let wrong = c
        .args(["--role", "client"])
        .arg(&plan)
        .arg(clips().join("demo.mp4"))
        .args([
            "--connect",
            &addr,
            "--server-name",
            "other.example",
            "--tls-ca",
        ])
        .arg(&k.ca)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    let s = server.wait_with_output().unwrap();
    assert!(s.status.success());
}

#[test]
fn plain_tcp_off_loopback_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = compile(dir.path(), 3, "c");
    let srv = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan)
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .output()
        .unwrap();
    assert!(!srv.status.success());
    let err = String::from_utf8_lossy(&srv.stderr);
    assert!(err.contains("refusing to serve plain TCP"), "{err}");
    // The client refuses before any packet leaves (192.0.2.0/24 is reserved for examples).
    let cli = Command::new(BIN)
        .args(["--role", "client"])
        .arg(&plan)
        .arg(clips().join("demo.mp4"))
        .args(["--connect", "192.0.2.1:7878"])
        .output()
        .unwrap();
    assert!(!cli.status.success());
    let err = String::from_utf8_lossy(&cli.stderr);
    assert!(err.contains("refusing plain TCP"), "{err}");
    // With --allow-plaintext the server starts (and is stopped here).
    let mut s = Command::new(BIN)
        .args(["--role", "server"])
        .arg(&plan)
        .args([
            "--listen",
            &format!("0.0.0.0:{}", free_port()),
            "--allow-plaintext",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    {
        use std::io::{BufRead, BufReader};
        let mut r = BufReader::new(s.stderr.take().unwrap());
        while r.read_line(&mut log).unwrap() > 0 && !log.contains(" on ") {}
    }
    s.kill().unwrap();
    let _ = s.wait();
    assert!(log.contains("(plain TCP)"), "{log}");
}
