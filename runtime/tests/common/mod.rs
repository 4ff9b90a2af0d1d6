//! Helpers shared by the CLI and TLS tests: compile c3d-tiny into a folder, find a free
//! port, wait for a server, read .npy outputs.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bundled clips.
pub fn clips() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/clips")
}

/// Exports and compiles c3d-tiny (seed picks the weights) into `dir`; returns plan path.
pub fn compile(dir: &Path, seed: u64, file: &str) -> PathBuf {
    let v = c3d_models::variant("c3d-tiny").unwrap();
    let proto = c3d_models::build(&v, None, None, seed);
    let onnx = dir.join(format!("{file}.onnx"));
    std::fs::write(&onnx, c3d_models::onnx_builder::to_bytes(&proto)).unwrap();
    let c = c3d_compiler::compile(&onnx, &Default::default(), |_| {}).unwrap();
    let plan = dir.join(format!("{file}.plan"));
    c.plan.save(&plan).unwrap();
    c.weights
        .save(&c3d_ir::format::weights_path_for(&plan))
        .unwrap();
    plan
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a server accepts on `addr` (the probe is a connection it serves).
pub fn wait_for(addr: &str) {
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not start");
}

/// The values of a float32 .npy file.
pub fn read_npy(p: &Path) -> Vec<f32> {
    use ndarray_npy::ReadNpyExt;
    let a = ndarray::ArrayD::<f32>::read_npy(std::fs::File::open(p).unwrap()).unwrap();
    a.iter().copied().collect()
}

/// A test PKI in PEM files: a CA, a server certificate for localhost and 127.0.0.1, a client
/// certificate from the same CA, and a client certificate from another CA.
pub struct Pki {
    /// The CA both sides trust.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate and key signed by the CA.
    pub client: (PathBuf, PathBuf),
    /// A client certificate and key signed by an unrelated CA.
    pub rogue: (PathBuf, PathBuf),
}

/// Writes a [`Pki`] into `dir`.
pub fn pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let ca_params = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let ca = CertifiedIssuer::self_signed(ca_params("c3d test CA"), KeyPair::generate().unwrap())
        .unwrap();
    let other = CertifiedIssuer::self_signed(ca_params("another CA"), KeyPair::generate().unwrap())
        .unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let leaf = |name: &str, sans: Vec<String>, usage, issuer: &CertifiedIssuer<KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, issuer).unwrap();
        (
            write(&format!("{name}.pem"), cert.pem()),
            write(&format!("{name}.key"), key.serialize_pem()),
        )
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server: leaf(
            "server",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        ),
        client: leaf(
            "client",
            vec!["client.example".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        ),
        rogue: leaf(
            "rogue",
            vec!["rogue.example".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other,
        ),
    }
}
