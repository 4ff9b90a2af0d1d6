//! The fhe.rs backend against the conformance suite, and its checks of crafted wire bytes.

use super::super::conformance::{self, assert_malformed};
use super::*;
use fhe::bfv::traits::TryConvertFrom as _;
use fhe::proto::bfv::Ciphertext as CiphertextProto;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn setup() -> (FheRs, SecretKey, FhePk, ChaCha20Rng) {
    let be = FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let sk = be.keygen(&mut rng).unwrap();
    let pk = be
        .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
        .unwrap();
    (be, sk, pk, rng)
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Protobuf: a length-delimited field.
fn field(num: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(&mut out, (num << 3) | 2);
    push_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Protobuf: a varint field.
fn varint_field(num: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    push_varint(&mut out, num << 3);
    push_varint(&mut out, v);
    out
}

/// A `Ciphertext` message of these polynomials (no seed).
fn encode_ct(polys: &[Vec<u8>], level: u64) -> Vec<u8> {
    let mut out: Vec<u8> = polys.iter().flat_map(|p| field(1, p)).collect();
    if level != 0 {
        out.extend(varint_field(3, level));
    }
    out
}

/// An `Rq` message.
fn encode_rq(repr: u64, degree: u64, coeffs: &[u8], vt: bool) -> Vec<u8> {
    let mut out = varint_field(1, repr);
    out.extend(varint_field(2, degree));
    out.extend(field(3, coeffs));
    if vt {
        out.extend(varint_field(4, 1));
    }
    out
}

/// An `Rq` message's (representation, degree, coefficients, allow_variable_time).
fn rq_parts(bytes: &[u8]) -> (u64, u64, Vec<u8>, bool) {
    let (mut r, mut d, mut c, mut vt) = (0, 0, Vec::new(), false);
    for (num, v) in wire::fields(bytes).unwrap() {
        match (num, v) {
            (1, wire::Value::Varint(x)) => r = x,
            (2, wire::Value::Varint(x)) => d = x,
            (3, wire::Value::Bytes(x)) => c = x.to_vec(),
            (4, wire::Value::Varint(x)) => vt = x == 1,
            _ => panic!("unexpected field {num}"),
        }
    }
    (r, d, c, vt)
}

/// The payload of a message made of length-delimited field 1 alone (a public key's
/// ciphertext).
fn field_1(bytes: &[u8]) -> &[u8] {
    match wire::fields(bytes).unwrap().as_slice() {
        [(1, wire::Value::Bytes(c))] => c,
        _ => panic!("not a single field 1"),
    }
}

/// The wire form of `ct` with its polynomials (the seeded one expanded) changed by `f`,
/// built through the crate's own protobuf type and serialisation.
fn craft(be: &FheRs, ct: &Ciphertext, f: impl FnOnce(&mut Vec<Poly>)) -> Vec<u8> {
    let mut polys: Vec<Poly> = ct.iter().cloned().collect();
    f(&mut polys);
    let mut proto = CiphertextProto::from(ct);
    proto.seed.clear();
    proto.c = polys.iter().map(|p| p.to_bytes()).collect();
    Ciphertext::try_convert_from(&proto, &be.par)
        .unwrap()
        .to_bytes()
}

/// A public key whose ciphertext is changed by `f`.
fn craft_pk(be: &FheRs, pk_bytes: &[u8], f: impl FnOnce(&mut Vec<Poly>)) -> Vec<u8> {
    let inner = Ciphertext::from_bytes(field_1(pk_bytes), &be.par).unwrap();
    field(1, &craft(be, &inner, f))
}

#[test]
fn conforms_at_delphis_prime() {
    conformance::check_all(&FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
}

#[test]
fn conforms_at_a_61_bit_prime() {
    let p = *c3d_ir::fixed::candidate_primes().last().unwrap();
    assert_eq!(64 - p.leading_zeros(), 61);
    conformance::check_all(&FheRs::new(p).unwrap());
}

#[test]
fn ciphertexts_arrive_only_at_their_protocol_level() {
    conformance::check_wire(&FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
}

#[test]
fn random_mutations_of_wire_bytes_never_panic() {
    conformance::fuzz_wire(&FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap(), 240);
}

#[test]
fn power_basis_ciphertexts_are_refused_at_deserialize() {
    // Before the fix the crate accepted these and the product panicked in fhe-math
    // ("Multiplication requires an Ntt representation").
    let (be, sk, _, mut rng) = setup();
    let ct = be
        .encrypt(&sk, &[1, 2, 3], Encoding::Coeff, &mut rng)
        .unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    assert!(be.deserialize(&craft(&be, &ct, |_| ())).is_ok());
    for i in 0..2 {
        for (repr, name) in [
            (Representation::PowerBasis, "power-basis"),
            (Representation::NttShoup, "NTT-Shoup"),
        ] {
            let bytes = craft(&be, &ct, |c| c[i].change_representation(repr));
            match be.deserialize(&bytes) {
                Err(HeError::Malformed(m)) => assert_eq!(
                    m,
                    format!("ciphertext: polynomial {i} is in {name} form, expected NTT")
                ),
                Err(e) => panic!("refused as {e}, not as malformed"),
                Ok(ct) => {
                    let _ = be.mul_plain(&ct, &one);
                    panic!("a {name} polynomial {i} was accepted");
                }
            }
            assert_malformed(be.deserialize_at(&bytes, CtLevel::Fresh), name);
        }
    }
}

#[test]
fn power_basis_public_keys_are_refused_at_read() {
    // Before the fix the crate accepted these and the first flood panicked in fhe-math
    // ("Multiplication requires a multipliand in Ntt or NttShoup representation").
    let (be, sk, _, mut rng) = setup();
    let pk_bytes = be.public_key(&sk, &mut rng).unwrap();
    assert!(be
        .read_public_key(&craft_pk(&be, &pk_bytes, |_| ()))
        .is_ok());
    let ct = be
        .encrypt(&sk, &[1, 2, 3], Encoding::Coeff, &mut rng)
        .unwrap();
    for i in 0..2 {
        for (repr, name) in [
            (Representation::PowerBasis, "power-basis"),
            (Representation::NttShoup, "NTT-Shoup"),
        ] {
            let bytes = craft_pk(&be, &pk_bytes, |c| c[i].change_representation(repr));
            match be.read_public_key(&bytes) {
                Err(HeError::Malformed(m)) => assert_eq!(
                    m,
                    format!("public key: polynomial {i} is in {name} form, expected NTT")
                ),
                Err(e) => panic!("refused as {e}, not as malformed"),
                Ok(pk) => {
                    let mut c = ct.clone();
                    let _ = be.flood(&mut c, 60, &pk, &mut rng);
                    panic!("a {name} public key polynomial {i} was accepted");
                }
            }
        }
    }
}

#[test]
fn polynomial_counts_other_than_two_are_refused() {
    let (be, sk, _, mut rng) = setup();
    let ct = be
        .encrypt(&sk, &[1, 2, 3], Encoding::Coeff, &mut rng)
        .unwrap();
    let three = craft(&be, &ct, |c| c.push(c[1].clone()));
    assert_malformed(
        be.deserialize(&three),
        "ciphertext: 3 polynomials, expected 2",
    );
    let c0 = ct[0].to_bytes();
    assert_malformed(
        be.deserialize(&encode_ct(std::slice::from_ref(&c0), 0)),
        "ciphertext: 1 polynomials, expected 2",
    );
    // A seeded ciphertext (c0 and the seed of c1) with another polynomial besides.
    let fresh = be.serialize(&ct).unwrap();
    let mut seeded_three = fresh.clone();
    seeded_three.extend(field(1, &c0));
    assert_malformed(
        be.deserialize(&seeded_three),
        "ciphertext: 3 polynomials, expected 2",
    );
    // The crate used the first two polynomials of a longer public key and ignored the rest.
    let pk_bytes = be.public_key(&sk, &mut rng).unwrap();
    let pk3 = craft_pk(&be, &pk_bytes, |c| c.push(c[1].clone()));
    assert_malformed(
        be.read_public_key(&pk3),
        "public key: 3 polynomials, expected 2",
    );
    let mut pk_twice = pk_bytes.clone();
    pk_twice.extend(pk_bytes.clone());
    assert_malformed(
        be.read_public_key(&pk_twice),
        "public key: unexpected, repeated",
    );
}

#[test]
fn wire_fields_are_checked() {
    let (be, sk, _, mut rng) = setup();
    let fresh = be
        .encrypt(&sk, &[1, 2, 3], Encoding::Coeff, &mut rng)
        .unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    // A product has no seed: its message is its two polynomials.
    let prod = be.mul_plain(&fresh, &one).unwrap();
    let proto = CiphertextProto::from(&prod);
    assert_eq!(encode_ct(&proto.c, 0), prod.to_bytes(), "the test encoder");
    let (repr, degree, coeffs, vt) = rq_parts(&proto.c[0]);
    assert_eq!((repr, degree), (2, DEGREE as u64));
    assert_eq!(encode_rq(repr, degree, &coeffs, vt), proto.c[0]);
    let with_c0 = |c0: Vec<u8>| encode_ct(&[c0, proto.c[1].clone()], 0);
    assert!(be.deserialize(&with_c0(proto.c[0].clone())).is_ok());

    // A residue equal to its modulus (the crate reduced it silently).
    let ctx = be.ctx0().unwrap();
    let (op, q) = (&ctx.moduli_operators()[0], ctx.moduli()[0]);
    let w0 = (DEGREE * (64 - (q - 1).leading_zeros() as usize)).div_ceil(8);
    let mut limb = op.deserialize_vec(&coeffs[..w0]);
    limb[5] = q;
    let mut big = op.serialize_vec(&limb);
    big.extend_from_slice(&coeffs[w0..]);
    assert_malformed(
        be.deserialize(&with_c0(encode_rq(2, degree, &big, vt))),
        &format!("polynomial 0: residue 5 mod limb 0 is {q}, not below the modulus {q}"),
    );
    // A smaller degree with residues to match (the crate padded them into a polynomial).
    let small: usize = ctx
        .moduli()
        .iter()
        .map(|&q| (2048 * (64 - (q - 1).leading_zeros() as usize)).div_ceil(8))
        .sum();
    assert_malformed(
        be.deserialize(&with_c0(encode_rq(2, 2048, &vec![0; small], vt))),
        "polynomial 0 has degree 2048, expected 8192",
    );
    for r in [0, 7] {
        assert_malformed(
            be.deserialize(&with_c0(encode_rq(r, degree, &coeffs, vt))),
            &format!("polynomial 0 has representation {r} (unknown), expected NTT"),
        );
    }
    assert_malformed(
        be.deserialize(&with_c0(encode_rq(2, degree, &coeffs[1..], vt))),
        "bytes of residues",
    );
    let mut extra = proto.c[0].clone();
    extra.extend(varint_field(9, 1));
    assert_malformed(
        be.deserialize(&with_c0(extra)),
        "polynomial 0: unexpected field 9",
    );
    // Levels beyond the chain, or not where the protocol sends ciphertexts.
    assert_malformed(
        be.deserialize(&encode_ct(&proto.c, 9)),
        &format!("at level 9, expected level 0 or {}", be.deepest),
    );
    assert_malformed(
        be.deserialize_at(&encode_ct(&proto.c, 1), CtLevel::Fresh),
        "at level 1, expected level 0",
    );
    // A short seed, a mistyped field, a truncated varint.
    let mut short_seed = field(1, &proto.c[0]);
    short_seed.extend(field(2, &[0; 31]));
    assert_malformed(
        be.deserialize(&short_seed),
        "a seed of 31 bytes, expected 32",
    );
    assert_malformed(be.deserialize(&[0x08, 0x01]), "field 1 mistyped");
    assert_malformed(be.deserialize(&[0x0a, 0xff]), "truncated varint");
    assert_malformed(be.deserialize(&[0x0b]), "wire type 3");
}

#[test]
fn arithmetic_refuses_malformed_operands() {
    // Objects the crate builds without checking: before the fix each of these panicked.
    let (be, sk, pk, mut rng) = setup();
    let fresh = be
        .encrypt(&sk, &[1, 2, 3], Encoding::Coeff, &mut rng)
        .unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    let prod = be.mul_plain(&fresh, &one).unwrap();
    let mut proto = CiphertextProto::from(&prod);
    let mut c0 = prod[0].clone();
    c0.change_representation(Representation::PowerBasis);
    proto.c[0] = c0.to_bytes();
    let bad = Ciphertext::try_convert_from(&proto, &be.par).unwrap();
    let msg = "ciphertext: polynomial 0 is in power-basis form, expected NTT";
    assert_malformed(be.mul_plain(&bad, &one), msg);
    assert_malformed(be.add_assign(&mut fresh.clone(), &bad), msg);
    assert_malformed(be.add_assign(&mut bad.clone(), &fresh), msg);
    assert_malformed(
        be.add_plain_assign(&mut bad.clone(), &[1], Encoding::Coeff),
        msg,
    );
    assert_malformed(be.flood(&mut bad.clone(), 60, &pk, &mut rng), msg);
    assert_malformed(be.decrypt(&sk, &bad, Encoding::Coeff), msg);
    assert_malformed(be.serialize(&bad), msg);
    let empty = Ciphertext::zero(&be.par);
    assert_malformed(be.decrypt(&sk, &empty, Encoding::Coeff), "0 polynomials");
    assert_malformed(be.serialize(&empty), "0 polynomials");
    // A plaintext operand not in NTT form, and a ciphertext below the full modulus.
    let mut pb = one.clone();
    pb.change_representation(Representation::PowerBasis);
    assert!(matches!(be.mul_plain(&fresh, &pb), Err(HeError::Params(_))));
    let mut low = fresh.clone();
    low.switch_to_level(be.deepest).unwrap();
    assert!(matches!(be.mul_plain(&low, &one), Err(HeError::Params(_))));
    assert!(matches!(
        be.add_assign(&mut fresh.clone(), &low),
        Err(HeError::Params(_))
    ));
    assert!(be.flood(&mut low.clone(), 60, &pk, &mut rng).is_ok());
}

#[test]
fn returned_products_do_not_expose_the_plaintext() {
    // Without re-randomisation the mask part of Enc(x) * w is a * w, and the key owner
    // knows a: with w = 1 it would come back as a itself (switched down).
    let be = FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = be.keygen(&mut rng).unwrap();
    let pk = be
        .read_public_key(&be.public_key(&sk, &mut rng).unwrap())
        .unwrap();
    let x: Vec<u64> = (0..DEGREE as u64).collect();
    let ct = be.encrypt(&sk, &x, Encoding::Coeff, &mut rng).unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    let mut out = be.mul_plain(&ct, &one).unwrap();
    be.flood(&mut out, 60, &pk, &mut rng).unwrap();
    let mut plain = ct.clone();
    plain.switch_to_level(be.deepest).unwrap();
    assert_eq!(out[1].ctx(), plain[1].ctx());
    assert_ne!(out[1], plain[1], "the mask part must be fresh");
    assert_eq!(be.decrypt(&sk, &out, Encoding::Coeff).unwrap(), x);
    assert!(be.read_public_key(b"not a key").is_err());
}

/// The earlier flooding path (noise added in NTT form, then a level at a time down to the
/// reply level): the reference the one-trip path must equal bit for bit.
fn flood_level_by_level(
    be: &FheRs,
    ct: &mut Ciphertext,
    bits: u32,
    pk: &FhePk,
    rng: &mut ChaCha20Rng,
) {
    let level = be.check_ct(ct).unwrap();
    let zero =
        Plaintext::try_encode(&[0u64], bfv::Encoding::poly_at_level(level), &be.par).unwrap();
    let fresh: Ciphertext = pk.key.try_encrypt(&zero, rng).unwrap();
    *ct += &fresh;
    let ctx = ct[0].ctx().clone();
    let noise = flood_residues(bits, ctx.moduli(), rng).unwrap();
    let e = Array2::from_shape_vec((ctx.moduli().len(), DEGREE), noise).unwrap();
    let mut e = Poly::try_convert_from(e, &ctx, false, Representation::PowerBasis).unwrap();
    e.change_representation(Representation::Ntt);
    let mut c: Vec<Poly> = ct.iter().cloned().collect();
    c[0] += &e;
    let mut out = Ciphertext::new(c, &be.par).unwrap();
    out.switch_to_level(be.deepest).unwrap();
    *ct = out;
}

#[test]
fn flooding_in_one_trip_equals_flooding_level_by_level() {
    let (be, sk, pk, mut rng) = setup();
    assert!(
        be.deepest > 1,
        "the reply switches down more than one level"
    );
    let p = be.plain_modulus();
    let v: Vec<u64> = (0..DEGREE as u64).map(|i| (i * 7919) % p).collect();
    let ct = be.encrypt(&sk, &v, Encoding::Coeff, &mut rng).unwrap();
    for bits in [40u32, 100] {
        let (mut a, mut b) = (ct.clone(), ct.clone());
        be.flood(
            &mut a,
            bits,
            &pk,
            &mut ChaCha20Rng::seed_from_u64(bits as u64),
        )
        .unwrap();
        flood_level_by_level(
            &be,
            &mut b,
            bits,
            &pk,
            &mut ChaCha20Rng::seed_from_u64(bits as u64),
        );
        assert_eq!(
            be.serialize(&a).unwrap(),
            be.serialize(&b).unwrap(),
            "bits {bits}"
        );
        assert_eq!(be.decrypt(&sk, &a, Encoding::Coeff).unwrap(), v);
    }
}

#[test]
fn finish_equals_the_crate_plaintext_addition_then_flooding() {
    let (be, sk, pk, mut rng) = setup();
    let p = be.plain_modulus();
    let v: Vec<u64> = (0..DEGREE as u64).map(|i| (i * 7919) % p).collect();
    let mask: Vec<u64> = (0..DEGREE as u64).map(|i| (i * i + 3) % p).collect();
    let ct = be.encrypt(&sk, &v, Encoding::Coeff, &mut rng).unwrap();
    for bits in [40u32, 100] {
        let (mut a, mut b) = (ct.clone(), ct.clone());
        let seed = 0xf1 + bits as u64;
        be.finish(
            &mut a,
            &mask,
            bits,
            &pk,
            &mut ChaCha20Rng::seed_from_u64(seed),
        )
        .unwrap();
        be.add_plain_assign(&mut b, &mask, Encoding::Coeff).unwrap();
        flood_level_by_level(
            &be,
            &mut b,
            bits,
            &pk,
            &mut ChaCha20Rng::seed_from_u64(seed),
        );
        assert_eq!(
            be.serialize(&a).unwrap(),
            be.serialize(&b).unwrap(),
            "bits {bits}"
        );
        let want: Vec<u64> = v.iter().zip(&mask).map(|(x, m)| (x + m) % p).collect();
        assert_eq!(be.decrypt(&sk, &a, Encoding::Coeff).unwrap(), want);
    }
    // A mask longer than a plaintext is refused.
    let mut c = ct.clone();
    assert!(be
        .finish(&mut c, &vec![0; DEGREE + 1], 40, &pk, &mut rng)
        .is_err());
}

#[test]
fn replies_carry_only_the_kept_coefficients_of_c0() {
    let (be, sk, pk, mut rng) = setup();
    let p = be.plain_modulus();
    let x: Vec<u64> = (0..DEGREE).map(|_| rng.random_range(0..p)).collect();
    let fresh = be.encrypt(&sk, &x, Encoding::Coeff, &mut rng).unwrap();
    let one = be.prepare(&[1], Encoding::Coeff).unwrap();
    let mut reply = be.mul_plain(&fresh, &one).unwrap();
    let mask: Vec<u64> = (0..DEGREE).map(|_| rng.random_range(0..p)).collect();
    be.finish(&mut reply, &mask, 100, &pk, &mut rng).unwrap();
    let keep: Vec<usize> = (0..DEGREE).filter(|i| i % 5 < 2).collect();
    let bytes = be.serialize_reply(&reply, &keep).unwrap();
    // One 62-bit limb at the reply level: c1 whole and c0 at `keep`.
    let q = be
        .par
        .context_at_level(be.deepest)
        .unwrap()
        .moduli()
        .to_vec();
    assert_eq!(q.len(), 1);
    assert_eq!(bytes.len(), ((DEGREE + keep.len()) * 62).div_ceil(8));
    assert!(bytes.len() * 10 < be.serialize(&reply).unwrap().len() * 7);
    let want: Vec<u64> = keep.iter().map(|&i| (x[i] + mask[i]) % p).collect();
    assert_eq!(be.decrypt_reply(&sk, &bytes, &keep).unwrap(), want);
    // The bytes for one list are not read as another's.
    assert_malformed(be.decrypt_reply(&sk, &bytes, &keep[1..]), "bytes, expected");
    // A residue at or above its modulus, and set padding bits.
    let mut b = bytes.clone();
    b[..8].copy_from_slice(&(u64::MAX >> 2).to_le_bytes());
    assert_malformed(be.decrypt_reply(&sk, &b, &keep), "not below the modulus");
    let odd: Vec<usize> = keep[..3].to_vec();
    let mut b = be.serialize_reply(&reply, &odd).unwrap();
    assert_ne!(((DEGREE + 3) * 62) % 8, 0);
    *b.last_mut().unwrap() |= 0x80;
    assert_malformed(be.decrypt_reply(&sk, &b, &odd), "padding");
    // Only a flooded, switched ciphertext is sent this way.
    assert!(be.serialize_reply(&fresh, &keep).is_err());
}
