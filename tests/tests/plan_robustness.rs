//! A plan is an outside input: any byte string that passes the hash check (e.g. one crafted
//! on purpose) must decode to a valid plan or an error, never a panic. The weights are bound
//! to the plan by a salted commitment the server checks.

use c3d_tests::*;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

#[test]
fn mutated_plans_with_valid_hashes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "i3d-tiny", Some(5), 9);
    let c = compile_default(&onnx);
    let (bytes, _) = c.plan.to_bytes().unwrap();
    let (head, payload) = bytes.split_at(56);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..3000 {
        let mut p = payload.to_vec();
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..p.len());
            p[i] = rng.random();
        }
        if rng.random_bool(0.2) {
            p.truncate(rng.random_range(0..p.len()));
        }
        let mut b = head.to_vec();
        b[16..24].copy_from_slice(&(p.len() as u64).to_le_bytes());
        b[24..56].copy_from_slice(&Sha256::digest(&p));
        b.extend_from_slice(&p);
        let r = std::panic::catch_unwind(|| c3d_ir::Plan::from_bytes(&b).map(|_| ()));
        match r {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => err += 1,
            Err(_) => panic!("decoding a mutated plan panicked"),
        }
    }
    eprintln!("{ok} mutated plans still valid, {err} refused");
    assert!(err > 0);
}

#[test]
fn weights_outside_the_field_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d-tiny", Some(5), 9);
    let mut c = compile_default(&onnx);
    let first = c.weights.layers.values_mut().next().unwrap();
    first.weight[0] = i64::MAX;
    // Recommit the plan to the altered weights (their salt included), so that the range
    // check, not the commitment, is what refuses them.
    c.plan.weights_hash = c.weights.commitment().unwrap();
    let path = dir.path().join("w.bin");
    c.weights.save(&path).unwrap();
    let e = c.plan.load_weights(&path).unwrap_err().to_string();
    assert!(e.contains("outside the field"), "{e}");
}

/// The plan's commitment to the weights is salted: it is neither the weights file's payload
/// hash nor any hash of the payload, so a client cannot confirm a guessed weights file with
/// it; the server recomputes it from the weights and their salt and refuses a changed weight
/// or a changed salt.
#[test]
fn the_weights_commitment_is_salted_and_checked_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = export(dir.path(), "c3d-tiny", Some(5), 9);
    let c = compile_default(&onnx);
    let (bytes, payload_hash) = c.weights.to_bytes().unwrap();
    let commitment = c.plan.weights_hash;
    assert_ne!(payload_hash, commitment);
    assert_ne!(<[u8; 32]>::from(Sha256::digest(&bytes[56..])), commitment);
    assert_ne!(<[u8; 32]>::from(Sha256::digest(&bytes)), commitment);
    assert_ne!(c.weights.salt, [0; 32], "the salt is drawn");
    assert_eq!(c.weights.commitment().unwrap(), commitment);
    // A second compilation of the same model draws a fresh salt: another commitment.
    let again = compile_default(&onnx);
    assert_eq!(again.weights.layers, c.weights.layers);
    assert_ne!(again.plan.weights_hash, commitment);

    // The server accepts the weights it was compiled with...
    let _ = server_model(&c);
    let server = |w: &c3d_ir::Weights| {
        let be = c3d_runtime::he::fhers::FheRs::new(c.plan.fixed.p).unwrap();
        match c3d_runtime::session::ServerModel::new(c.plan.clone(), c.plan.hash().unwrap(), w, be)
        {
            Ok(_) => panic!("the server accepted weights the plan does not commit to"),
            Err(e) => e.to_string(),
        }
    };
    // ...and refuses one weight changed by one unit, or one bit of the salt flipped.
    let mut changed = c.weights.clone();
    changed.layers.values_mut().next().unwrap().weight[0] += 1;
    let e = server(&changed);
    assert!(
        e.contains("commitment") && e.contains("does not match the plan"),
        "{e}"
    );
    let mut resalted = c.weights.clone();
    resalted.salt[0] ^= 1;
    let e = server(&resalted);
    assert!(e.contains("does not match the plan"), "{e}");
    // The weights with another compilation's salt: refused as well.
    let mut other_salt = c.weights.clone();
    other_salt.salt = again.weights.salt;
    assert!(server(&other_salt).contains("does not match the plan"));

    // Reading the file checks the same commitment, and names the file.
    let path = dir.path().join("w.weights");
    resalted.save(&path).unwrap();
    let e = c.plan.load_weights(&path).unwrap_err().to_string();
    assert!(
        e.contains("w.weights") && e.contains("does not match the plan"),
        "{e}"
    );
    c.weights.save(&path).unwrap();
    assert_eq!(c.plan.load_weights(&path).unwrap(), c.weights);
}
