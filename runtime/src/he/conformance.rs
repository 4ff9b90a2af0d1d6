//! Backend conformance checks against clear computations, run for every backend.

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Negacyclic product of a (field elements) and b (centred integers) mod p: the clear
/// meaning of a coefficient-encoded plaintext multiplication.
fn negacyclic(a: &[u64], b: &[i64], p: u64) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0i128; n];
    for (i, &ai) in a.iter().enumerate() {
        if ai == 0 {
            continue;
        }
        for (j, &bj) in b.iter().enumerate() {
            if bj == 0 {
                continue;
            }
            let prod = ai as i128 * bj as i128;
            let k = i + j;
            if k < n {
                out[k] += prod;
            } else {
                out[k - n] -= prod;
            }
        }
        for o in out.iter_mut() {
            *o %= p as i128;
        }
    }
    out.iter()
        .map(|&v| (v.rem_euclid(p as i128)) as u64)
        .collect()
}

/// Runs every check on `be`.
pub fn check_all<B: Backend>(be: &B) {
    let p = be.plain_modulus();
    let n = be.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(0xbf);
    let sk = be.keygen(&mut rng).unwrap();
    let pk = be
        .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
        .unwrap();
    let rand_vec = |rng: &mut ChaCha20Rng, k: usize| -> Vec<u64> {
        (0..k).map(|_| rng.random_range(0..p)).collect()
    };

    // Round trips in both encodings, including the edge values.
    for enc in [Encoding::Coeff, Encoding::Slots] {
        let mut v = rand_vec(&mut rng, n);
        v[0] = 0;
        v[1] = p - 1;
        v[2] = (p - 1) / 2;
        let ct = be.encrypt(&sk, &v, enc, &mut rng).unwrap();
        assert_eq!(be.decrypt(&sk, &ct, enc).unwrap(), v, "{enc:?} round trip");
    }

    // Coefficient products are negacyclic convolutions; a sparse kernel with large
    // centred weights, summed over two products, plus a plaintext.
    let a1 = rand_vec(&mut rng, n);
    let a2 = rand_vec(&mut rng, n);
    let mut k1 = vec![0u64; n];
    let mut k2 = vec![0u64; n];
    // Weights as a plan has them: small centred integers (up to 2^20 in size; 2 for
    // primes above 51 bits, whose 185-bit modulus floods at most 2^121 at 61 bits: the
    // noise, 2^(w + 67) here, flooded for even one reply's N coefficients leaves w <= 1).
    let w = if 64 - p.leading_zeros() > 51 { 1 } else { 20 };
    for j in [0usize, 1, 7, 100, n - 1] {
        k1[j] = (rng.random_range(0..1u64 << (w + 1)) + p - (1 << w)) % p;
        k2[(j * 3) % n] = (p - rng.random_range(1..1000u64)) % p;
    }
    let c1 = be.encrypt(&sk, &a1, Encoding::Coeff, &mut rng).unwrap();
    let c2 = be.encrypt(&sk, &a2, Encoding::Coeff, &mut rng).unwrap();
    let mut acc = be
        .mul_plain(&c1, &be.prepare(&k1, Encoding::Coeff).unwrap())
        .unwrap();
    let prod2 = be
        .mul_plain(&c2, &be.prepare(&k2, Encoding::Coeff).unwrap())
        .unwrap();
    be.add_assign(&mut acc, &prod2).unwrap();
    let s = rand_vec(&mut rng, n);
    be.add_plain_assign(&mut acc, &s, Encoding::Coeff).unwrap();
    let cen = |k: &[u64]| k.iter().map(|&v| centred(v, p)).collect::<Vec<_>>();
    let want: Vec<u64> = negacyclic(&a1, &cen(&k1), p)
        .iter()
        .zip(negacyclic(&a2, &cen(&k2), p))
        .zip(&s)
        .map(|((x, y), z)| ((*x as u128 + y as u128 + *z as u128) % p as u128) as u64)
        .collect();
    let l1 = 5u64 << w;
    let noise = product_noise_bits(be, 64 - l1.leading_zeros(), 2);
    let bits = flood_bits(be, noise, &FloodBudget::new(1)).unwrap();
    let before = be.serialize(&acc).unwrap().len();
    be.flood(&mut acc, bits, &pk, &mut rng).unwrap();
    let after = be.serialize(&acc).unwrap();
    assert!(
        after.len() < before,
        "flooding switches to a smaller modulus"
    );
    let back = be.deserialize(&after).unwrap();
    assert_eq!(be.decrypt(&sk, &back, Encoding::Coeff).unwrap(), want);

    // Rows times a column of plaintexts: more terms than a u128 sum of 62-bit products
    // holds unreduced (15), so the backend's reductions along the way are exercised.
    let terms = 20;
    let ks: Vec<Vec<u64>> = (0..terms)
        .map(|i| {
            let mut k = vec![0u64; n];
            for j in [i, 3 * i + 1, n - 1 - i] {
                k[j] = (rng.random_range(0..64u64) + p - 32) % p;
            }
            k
        })
        .collect();
    let pts: Vec<B::Pt> = ks
        .iter()
        .map(|k| be.prepare(k, Encoding::Coeff).unwrap())
        .collect();
    let ins: Vec<Vec<Vec<u64>>> = (0..2)
        .map(|_| (0..terms).map(|_| rand_vec(&mut rng, n)).collect())
        .collect();
    let cts: Vec<Vec<B::Ct>> = ins
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| be.encrypt(&sk, v, Encoding::Coeff, &mut rng).unwrap())
                .collect()
        })
        .collect();
    let rows: Vec<Vec<&B::Ct>> = cts.iter().map(|r| r.iter().collect()).collect();
    // Three columns: every plaintext, every other one (pruned kernels), the first alone.
    let cols: Vec<Vec<Option<&B::Pt>>> = vec![
        pts.iter().map(Some).collect(),
        pts.iter()
            .enumerate()
            .map(|(i, p)| (i % 2 == 0).then_some(p))
            .collect(),
        pts.iter()
            .enumerate()
            .map(|(i, p)| (i == 0).then_some(p))
            .collect(),
    ];
    let dots = be.dot_matrix(&rows, &cols).unwrap();
    assert_eq!(dots.len(), 3);
    for (g, col) in cols.iter().enumerate() {
        for (t, dot) in dots[g].iter().enumerate() {
            let mut want = vec![0u64; n];
            for ((a, k), used) in ins[t].iter().zip(&ks).zip(col) {
                if used.is_none() {
                    continue;
                }
                for (w, x) in want.iter_mut().zip(negacyclic(a, &cen(k), p)) {
                    *w = (*w + x) % p;
                }
            }
            assert_eq!(
                be.decrypt(&sk, dot, Encoding::Coeff).unwrap(),
                want,
                "column {g}, row {t}"
            );
        }
    }
    assert!(be.dot_matrix(&[rows[0][..3].to_vec()], &cols).is_err());
    assert!(be.dot_matrix(&rows, &[vec![None; terms]]).is_err());
    assert!(be.dot_matrix(&[vec![]], &[vec![]]).is_err());

    // Slot products are element-wise. Their plaintexts are dense and uniform (l1-norm up to
    // N p / 2), which a 186-bit modulus cannot flood for primes above 51 bits.
    let x = rand_vec(&mut rng, n);
    let slot_noise = product_noise_bits(be, n.trailing_zeros() + 64 - p.leading_zeros(), 1);
    if 64 - p.leading_zeros() > 51 {
        assert!(matches!(
            flood_bits(be, slot_noise, &FloodBudget::new(1)),
            Err(HeError::Params(_))
        ));
    } else {
        let y = rand_vec(&mut rng, n);
        let cx = be.encrypt(&sk, &x, Encoding::Slots, &mut rng).unwrap();
        let mut cz = be
            .mul_plain(&cx, &be.prepare(&y, Encoding::Slots).unwrap())
            .unwrap();
        let slot_flood = flood_bits(be, slot_noise, &FloodBudget::new(1)).unwrap();
        be.flood(&mut cz, slot_flood, &pk, &mut rng).unwrap();
        let z = be.decrypt(&sk, &cz, Encoding::Slots).unwrap();
        for i in 0..n {
            assert_eq!(
                z[i] as u128,
                x[i] as u128 * y[i] as u128 % p as u128,
                "slot {i}"
            );
        }
    }

    // Flooding really randomises: two floods of one ciphertext, at the widest noise the
    // modulus allows, differ and both decrypt.
    let widest = be.modulus_bits() - (64 - p.leading_zeros()) - 3;
    let c = be.encrypt(&sk, &x, Encoding::Coeff, &mut rng).unwrap();
    let (mut f1, mut f2) = (c.clone(), c);
    be.flood(&mut f1, widest, &pk, &mut rng).unwrap();
    be.flood(&mut f2, widest, &pk, &mut rng).unwrap();
    assert!(be
        .flood(&mut f2.clone(), widest + 1, &pk, &mut rng)
        .is_err());
    assert!(be.serialize(&f1).unwrap() != be.serialize(&f2).unwrap());
    assert_eq!(be.decrypt(&sk, &f1, Encoding::Coeff).unwrap(), x);

    // Too much noise for the modulus is refused, not decrypted wrongly.
    assert!(matches!(
        flood_bits(be, 200, &FloodBudget::new(1)),
        Err(HeError::Params(_))
    ));
    // Bytes that are not a ciphertext, or a truncated one, are refused.
    assert!(be.deserialize(b"not a ciphertext").is_err());
    assert!(be.deserialize(&after[..after.len() / 2]).is_err());
    assert!(be
        .encrypt(&sk, &vec![0; n + 1], Encoding::Coeff, &mut rng)
        .is_err());
}

/// `r` is refused as malformed, with a message containing `needle`.
pub fn assert_malformed<T>(r: Result<T>, needle: &str) {
    match r {
        Err(HeError::Malformed(m)) => {
            assert!(m.contains(needle), "refused for {m:?}, expected {needle:?}")
        }
        Err(e) => panic!("refused as {e:?}, expected malformed ({needle})"),
        Ok(_) => panic!("accepted, expected refused as malformed ({needle})"),
    }
}

/// What the wire checks work on: keys, a fresh ciphertext of `x`, its product by 1
/// flooded into a reply, and their bytes.
struct Wire<B: Backend> {
    sk: B::Sk,
    pk: B::Pk,
    pk_bytes: Vec<u8>,
    x: Vec<u64>,
    fresh: B::Ct,
    fresh_bytes: Vec<u8>,
    reply_bytes: Vec<u8>,
    /// Every third coefficient, and the reply's bytes for those alone.
    keep: Vec<usize>,
    kept_bytes: Vec<u8>,
    one: B::Pt,
    bits: u32,
}

fn wire<B: Backend>(be: &B, seed: u64) -> Wire<B> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = be.keygen(&mut rng).unwrap();
    let pk_bytes = be.public_key(&sk, &mut rng).unwrap();
    let pk = be.read_public_key(&pk_bytes).unwrap();
    let p = be.plain_modulus();
    let x: Vec<u64> = (0..be.degree()).map(|_| rng.random_range(0..p)).collect();
    let fresh = be.encrypt(&sk, &x, Encoding::Coeff, &mut rng).unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    let bits = flood_bits(be, product_noise_bits(be, 1, 1), &FloodBudget::new(1)).unwrap();
    let mut reply = be.mul_plain(&fresh, &one).unwrap();
    be.flood(&mut reply, bits, &pk, &mut rng).unwrap();
    let keep: Vec<usize> = (1..be.degree()).step_by(3).collect();
    Wire {
        kept_bytes: be.serialize_reply(&reply, &keep).unwrap(),
        keep,
        fresh_bytes: be.serialize(&fresh).unwrap(),
        reply_bytes: be.serialize(&reply).unwrap(),
        sk,
        pk,
        pk_bytes,
        x,
        fresh,
        one,
        bits,
    }
}

/// Ciphertexts are accepted at the level the protocol sends them at and refused at the
/// other; one kind of bytes is not taken for another; truncations are refused.
pub fn check_wire<B: Backend>(be: &B) {
    let w = wire(be, 0x3e);
    let dec = |ct: B::Ct| be.decrypt(&w.sk, &ct, Encoding::Coeff).unwrap();
    assert_eq!(dec(be.deserialize(&w.fresh_bytes).unwrap()), w.x);
    assert_eq!(dec(be.deserialize(&w.reply_bytes).unwrap()), w.x);
    let fresh = be.deserialize_at(&w.fresh_bytes, CtLevel::Fresh).unwrap();
    assert_eq!(dec(fresh), w.x);
    let reply = be.deserialize_at(&w.reply_bytes, CtLevel::Reply).unwrap();
    assert_eq!(dec(reply), w.x);
    assert_malformed(be.deserialize_at(&w.fresh_bytes, CtLevel::Reply), "level");
    assert_malformed(be.deserialize_at(&w.reply_bytes, CtLevel::Fresh), "level");
    // A reply cannot be computed on as if it were fresh, nor added to a fresh one.
    let reply = be.deserialize(&w.reply_bytes).unwrap();
    assert!(be.mul_plain(&reply, &w.one).is_err());
    assert!(be.add_assign(&mut w.fresh.clone(), &reply).is_err());
    // A reply sent for some coefficients decrypts to them; the list must be increasing and
    // inside the ring on both sides; a truncated one is refused.
    let at = |v: &[u64], keep: &[usize]| keep.iter().map(|&i| v[i]).collect::<Vec<u64>>();
    assert_eq!(
        be.decrypt_reply(&w.sk, &w.kept_bytes, &w.keep).unwrap(),
        at(&w.x, &w.keep)
    );
    assert!(w.kept_bytes.len() <= w.reply_bytes.len());
    let reply = be.deserialize_at(&w.reply_bytes, CtLevel::Reply).unwrap();
    for keep in [
        vec![],
        vec![0],
        vec![be.degree() - 1],
        (0..be.degree()).collect(),
    ] {
        let bytes = be.serialize_reply(&reply, &keep).unwrap();
        assert_eq!(
            be.decrypt_reply(&w.sk, &bytes, &keep).unwrap(),
            at(&w.x, &keep)
        );
    }
    for keep in [vec![3, 3], vec![5, 2], vec![be.degree()]] {
        assert!(be.serialize_reply(&reply, &keep).is_err(), "{keep:?}");
        assert!(
            be.decrypt_reply(&w.sk, &w.kept_bytes, &keep).is_err(),
            "{keep:?}"
        );
    }
    let n = w.kept_bytes.len();
    for len in (0..64.min(n)).chain((64..n).step_by(n / 50 + 1)) {
        assert!(be
            .decrypt_reply(&w.sk, &w.kept_bytes[..len], &w.keep)
            .is_err());
    }
    // One kind of object for another, and nothing at all.
    assert_malformed(be.read_public_key(&w.fresh_bytes), "");
    assert_malformed(be.deserialize(&w.pk_bytes), "");
    assert_malformed(be.deserialize(b""), "");
    assert_malformed(be.read_public_key(b""), "");
    for bytes in [&w.fresh_bytes, &w.reply_bytes, &w.pk_bytes] {
        let n = bytes.len();
        for len in (0..64.min(n)).chain((64..n).step_by(n / 50 + 1)) {
            assert!(be.deserialize(&bytes[..len]).is_err(), "{len} of {n} bytes");
            assert!(
                be.read_public_key(&bytes[..len]).is_err(),
                "{len} of {n} bytes"
            );
        }
    }
}

/// A few random changes to `bytes`, mostly near the ends where the structure is.
fn mutate(bytes: &[u8], rng: &mut ChaCha20Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let n = b.len().max(1);
        let at = match rng.random_range(0..5) {
            0 | 1 => rng.random_range(0..n.min(40)),
            2 => n - rng.random_range(1..=n.min(48)),
            _ => rng.random_range(0..n),
        };
        let at = at.min(b.len());
        match rng.random_range(0..6) {
            0 if at < b.len() => b[at] ^= 1 << rng.random_range(0..8),
            1 if at < b.len() => b[at] = rng.random(),
            2 if at < b.len() => b[at] = [0, 1, 2, 3, 0x7f, 0x80, 0xff][rng.random_range(0..7)],
            3 => b.truncate(at),
            4 => b.insert(at, rng.random()),
            _ if at < b.len() => {
                b.remove(at);
            }
            _ => b.push(rng.random()),
        }
    }
    b
}

/// `rounds` seeded mutations of a valid fresh ciphertext, reply and public key: reading
/// them never panics, nor does computing on (and decrypting) whatever is accepted.
pub fn fuzz_wire<B: Backend>(be: &B, rounds: u64) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let w = wire(be, 0xf2);
    let targets = [
        ("fresh ciphertext", &w.fresh_bytes),
        ("reply", &w.reply_bytes),
        ("public key", &w.pk_bytes),
        ("reply for some coefficients", &w.kept_bytes),
    ];
    let mut accepted = 0;
    for seed in 0..rounds {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (what, orig) = targets[(seed % 4) as usize];
        let bytes = mutate(orig, &mut rng);
        let run = catch_unwind(AssertUnwindSafe(|| {
            if what == "reply for some coefficients" {
                return be.decrypt_reply(&w.sk, &bytes, &w.keep).is_ok();
            }
            if what == "public key" {
                let Ok(k) = be.read_public_key(&bytes) else {
                    return false;
                };
                let mut c = be.mul_plain(&w.fresh, &w.one).unwrap();
                let _ = be.flood(&mut c, w.bits, &k, &mut rng);
                let _ = be.decrypt(&w.sk, &c, Encoding::Coeff);
                return true;
            }
            let _ = be.deserialize_at(&bytes, CtLevel::Fresh);
            let _ = be.deserialize_at(&bytes, CtLevel::Reply);
            let Ok(ct) = be.deserialize(&bytes) else {
                return false;
            };
            let _ = be.decrypt(&w.sk, &ct, Encoding::Coeff);
            let _ = be.serialize(&ct);
            let _ = be.add_assign(&mut w.fresh.clone(), &ct);
            if let Ok(mut c) = be.mul_plain(&ct, &w.one) {
                let _ = be.add_plain_assign(&mut c, &[1], Encoding::Coeff);
                let _ = be.flood(&mut c, w.bits, &w.pk, &mut rng);
                let _ = be.decrypt(&w.sk, &c, Encoding::Coeff);
            }
            true
        }));
        match run {
            Ok(ok) => accepted += usize::from(ok),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("mutation seed {seed} of the {what} panicked: {msg}");
            }
        }
    }
    // Some mutations (a changed residue) leave valid bytes; most do not.
    assert!(accepted < rounds as usize, "every mutation was accepted");
}
