//! A plan is an outside input: any byte string that passes the hash check (e.g. one crafted
//! on purpose) must decode to a valid plan or an error, never a panic.

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
    let (_, hash) = c.weights.to_bytes().unwrap();
    c.plan.weights_hash = hash;
    let path = dir.path().join("w.bin");
    c.weights.save(&path).unwrap();
    let e = c.plan.load_weights(&path).unwrap_err().to_string();
    assert!(e.contains("outside the field"), "{e}");
}
