//! The BFV backend over the pure-Rust `fhe` crate (fhe.rs, MIT). Ciphertexts live in NTT
//! form; prepared plaintexts are centred integer polynomials in NTT form with Shoup
//! precomputation, so a plaintext multiplication is one pointwise pass per RNS limb.
//!
//! Bytes from the peer are checked before the crate decodes them: its `from_bytes` checks the
//! level against the parameters and the byte count against the moduli, but not the
//! representation of a polynomial (a power-basis or NTT-Shoup one makes the arithmetic panic),
//! the number of polynomials, the degree field, or that each residue is below its modulus.

use super::{
    centred, check_flood, check_len, flood_residues, modulus_bits_of, switch_target_fits, Backend,
    CtLevel, Encoding, HeError, NoiseBudget, Result, DEGREE,
};
use fhe::bfv::{
    self, BfvParameters, BfvParametersBuilder, Ciphertext, Plaintext, PublicKey, SecretKey,
};
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_traits::{
    DeserializeParametrized, FheDecoder, FheDecrypter, FheEncoder, FheEncrypter, Serialize,
};
use ndarray::Array2;
use rand::{CryptoRng, RngCore};
use std::sync::Arc;

/// BFV over fhe.rs for one plaintext modulus.
pub struct FheRs {
    par: Arc<BfvParameters>,
    /// Deepest level a flooded ciphertext may switch to (the rounding noise of switching must
    /// stay below q_L / 4t).
    deepest: usize,
}

/// Just enough of the protobuf wire format to check fhe.rs's messages before the crate decodes
/// them. Stricter than protobuf: only varint and length-delimited fields, so that a message
/// passing the checks means to the crate what it means here.
mod wire {
    /// A field's value.
    pub(super) enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            if i == 9 && byte > 1 {
                return Err("varint beyond 64 bits".into());
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// The fields of a message in order, as (number, value).
    pub(super) fn fields(mut b: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b)?;
            let (num, wire_type) = (key >> 3, key & 7);
            let value = match wire_type {
                0 => Value::Varint(varint(&mut b)?),
                2 => {
                    let len = varint(&mut b)?;
                    if len > b.len() as u64 {
                        return Err(format!("field {num} of {len} bytes, only {} left", b.len()));
                    }
                    let (payload, rest) = b.split_at(len as usize);
                    b = rest;
                    Value::Bytes(payload)
                }
                t => return Err(format!("field {num} of wire type {t}")),
            };
            out.push((num, value));
        }
        Ok(out)
    }
}

fn repr_name(r: &Representation) -> &'static str {
    match r {
        Representation::PowerBasis => "power-basis",
        Representation::Ntt => "NTT",
        Representation::NttShoup => "NTT-Shoup",
        _ => "an unknown",
    }
}

fn malformed(what: &str, msg: impl std::fmt::Display) -> HeError {
    HeError::Malformed(format!("{what}: {msg}"))
}

fn err<E: std::fmt::Display>(e: E) -> HeError {
    HeError::Backend {
        backend: "fhe.rs",
        msg: e.to_string(),
    }
}

impl FheRs {
    /// Parameters for plaintext modulus `p` at N = 8192.
    pub fn new(p: u64) -> Result<Self> {
        if !(3..1 << 62).contains(&p) || p.is_multiple_of(2) {
            return Err(HeError::Params(format!(
                "plaintext modulus {p} must be an odd prime below 2^62"
            )));
        }
        let par = BfvParametersBuilder::new()
            .set_degree(DEGREE)
            .set_plaintext_modulus(p)
            .set_moduli_sizes(c3d_ir::HeModel::limb_bits(p))
            .build_arc()
            .map_err(err)?;
        let mut deepest = 0;
        for level in 0..=par.max_level() {
            let ctx = par.context_at_level(level).map_err(err)?;
            if switch_target_fits(modulus_bits_of(ctx.moduli()), p) {
                deepest = level;
            }
        }
        Ok(FheRs { par, deepest })
    }

    fn ctx0(&self) -> Result<&Arc<fhe_math::rq::Context>> {
        self.par.context_at_level(0).map_err(err)
    }

    /// The level a ciphertext arriving as `at` sits at.
    fn level_of(&self, at: CtLevel) -> usize {
        match at {
            CtLevel::Fresh => 0,
            CtLevel::Reply => self.deepest,
        }
    }

    /// Checks a decoded ciphertext: two polynomials in NTT form at one level of these
    /// parameters. Returns the level.
    fn check_ct(&self, ct: &Ciphertext) -> Result<usize> {
        let bad = |m: String| malformed("ciphertext", m);
        if ct.len() != 2 {
            return Err(bad(format!("{} polynomials, expected 2", ct.len())));
        }
        let level = self
            .par
            .level_of_context(ct[0].ctx())
            .map_err(|_| bad("polynomial 0 is not at a level of these parameters".into()))?;
        for (i, c) in ct.iter().enumerate() {
            if c.ctx() != ct[0].ctx() {
                return Err(bad(format!(
                    "polynomial {i} is at another level than polynomial 0"
                )));
            }
            if c.representation() != &Representation::Ntt {
                return Err(bad(format!(
                    "polynomial {i} is in {} form, expected NTT",
                    repr_name(c.representation())
                )));
            }
        }
        Ok(level)
    }

    /// Checks the wire form of a ciphertext (fhe.rs's `Ciphertext` message: repeated bytes c = 1,
    /// bytes seed = 2 standing for the last polynomial, uint32 level = 3) before the crate
    /// decodes it: two polynomials, a 32-byte seed if any, a level in `levels`, and each
    /// polynomial as [`FheRs::check_poly_wire`] checks it. Returns the level.
    fn check_ct_wire(&self, bytes: &[u8], what: &str, levels: &[usize]) -> Result<usize> {
        let bad = |m: String| malformed(what, m);
        let (mut polys, mut seed, mut level) = (Vec::new(), None, None);
        for (num, value) in wire::fields(bytes).map_err(bad)? {
            match (num, value) {
                (1, wire::Value::Bytes(c)) => polys.push(c),
                (2, wire::Value::Bytes(b)) if seed.is_none() => seed = Some(b),
                (3, wire::Value::Varint(l)) if level.is_none() => level = Some(l),
                (n @ (2 | 3), _) => return Err(bad(format!("field {n} repeated or mistyped"))),
                (1, _) => return Err(bad("field 1 mistyped".into())),
                (n, _) => return Err(bad(format!("unexpected field {n}"))),
            }
        }
        // An empty seed is no seed (protobuf's default).
        let seed = seed.filter(|s| !s.is_empty());
        let n = polys.len() + usize::from(seed.is_some());
        if n != 2 {
            return Err(bad(format!("{n} polynomials, expected 2")));
        }
        if let Some(s) = seed {
            if s.len() != 32 {
                return Err(bad(format!("a seed of {} bytes, expected 32", s.len())));
            }
        }
        let level = level.unwrap_or(0);
        let Some(&level) = levels.iter().find(|&&l| l as u64 == level) else {
            let want: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
            return Err(bad(format!(
                "at level {level}, expected level {}",
                want.join(" or ")
            )));
        };
        let ctx = self.par.context_at_level(level).map_err(err)?;
        for (i, p) in polys.iter().enumerate() {
            Self::check_poly_wire(p, ctx, i).map_err(bad)?;
        }
        Ok(level)
    }

    /// Checks the wire form of polynomial `i` (fhe-math's `Rq` message: enum representation = 1,
    /// uint32 degree = 2, bytes coefficients = 3 as power-basis residues packed limb by limb,
    /// bool allow_variable_time = 4): NTT representation, degree N, the exact byte count for
    /// `ctx`'s moduli, and every residue below its modulus.
    fn check_poly_wire(
        bytes: &[u8],
        ctx: &fhe_math::rq::Context,
        i: usize,
    ) -> std::result::Result<(), String> {
        let (mut repr, mut degree, mut coeffs, mut vt) = (None, None, None, None);
        let fields = wire::fields(bytes).map_err(|m| format!("polynomial {i}: {m}"))?;
        for (num, value) in fields {
            match (num, value) {
                (1, wire::Value::Varint(r)) if repr.is_none() => repr = Some(r),
                (2, wire::Value::Varint(d)) if degree.is_none() => degree = Some(d),
                (3, wire::Value::Bytes(c)) if coeffs.is_none() => coeffs = Some(c),
                (4, wire::Value::Varint(b)) if vt.is_none() && b <= 1 => vt = Some(b),
                (n @ 1..=4, _) => {
                    return Err(format!(
                        "polynomial {i}: field {n} repeated, mistyped or out of range"
                    ))
                }
                (n, _) => return Err(format!("polynomial {i}: unexpected field {n}")),
            }
        }
        match repr.unwrap_or(0) {
            2 => {}
            1 => {
                return Err(format!(
                    "polynomial {i} is in power-basis form, expected NTT"
                ))
            }
            3 => return Err(format!("polynomial {i} is in NTT-Shoup form, expected NTT")),
            r => {
                return Err(format!(
                    "polynomial {i} has representation {r} (unknown), expected NTT"
                ))
            }
        }
        let degree = degree.unwrap_or(0);
        if degree != DEGREE as u64 {
            return Err(format!(
                "polynomial {i} has degree {degree}, expected {DEGREE}"
            ));
        }
        // The crate packs each limb's residues in as many bits as q - 1 needs.
        let widths: Vec<usize> = ctx
            .moduli()
            .iter()
            .map(|&q| (DEGREE * (64 - (q - 1).leading_zeros() as usize)).div_ceil(8))
            .collect();
        let coeffs = coeffs.unwrap_or(&[]);
        let want: usize = widths.iter().sum();
        if coeffs.len() != want {
            return Err(format!(
                "polynomial {i} has {} bytes of residues, expected {want}",
                coeffs.len()
            ));
        }
        let mut rest = coeffs;
        for (j, ((op, &q), &w)) in ctx
            .moduli_operators()
            .iter()
            .zip(ctx.moduli())
            .zip(&widths)
            .enumerate()
        {
            let (limb, r) = rest.split_at(w);
            rest = r;
            let v = op.deserialize_vec(limb);
            if v.len() != DEGREE {
                return Err(format!(
                    "polynomial {i} has {} residues mod limb {j}, expected {DEGREE}",
                    v.len()
                ));
            }
            if let Some((k, x)) = v.iter().enumerate().find(|(_, &x)| x >= q) {
                return Err(format!(
                    "polynomial {i}: residue {k} mod limb {j} is {x}, not below the modulus {q}"
                ));
            }
        }
        Ok(())
    }

    /// Reads a ciphertext at one of `levels`.
    fn read_ct(&self, bytes: &[u8], levels: &[usize]) -> Result<Ciphertext> {
        self.check_ct_wire(bytes, "ciphertext", levels)?;
        let ct =
            Ciphertext::from_bytes(bytes, &self.par).map_err(|e| malformed("ciphertext", e))?;
        // The decoded object again, in case the crate read the bytes otherwise.
        let level = self.check_ct(&ct)?;
        if !levels.contains(&level) {
            return Err(malformed(
                "ciphertext",
                format!("decoded at level {level}, not the level its bytes say"),
            ));
        }
        Ok(ct)
    }

    fn encoding(enc: Encoding, level: usize) -> bfv::Encoding {
        match enc {
            Encoding::Coeff => bfv::Encoding::poly_at_level(level),
            Encoding::Slots => bfv::Encoding::simd_at_level(level),
        }
    }
}

impl NoiseBudget for FheRs {
    fn degree(&self) -> usize {
        DEGREE
    }

    fn plain_modulus(&self) -> u64 {
        self.par.plaintext()
    }

    fn modulus_bits(&self) -> u32 {
        modulus_bits_of(self.par.moduli())
    }

    fn fresh_noise_bits(&self) -> u32 {
        // Symmetric encryption: one centred binomial sample of variance 10, |e| <= 2^5.
        6
    }
}

impl Backend for FheRs {
    type Sk = SecretKey;
    type Ct = Ciphertext;
    type Pt = Poly;
    type Pk = PublicKey;

    fn name(&self) -> &'static str {
        "fhe.rs"
    }

    fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<SecretKey> {
        Ok(SecretKey::random(&self.par, rng))
    }

    fn public_key<R: RngCore + CryptoRng>(&self, sk: &SecretKey, rng: &mut R) -> Result<Vec<u8>> {
        Ok(PublicKey::new(sk, rng).to_bytes())
    }

    fn read_public_key(&self, bytes: &[u8]) -> Result<PublicKey> {
        // The crate checks the level (0) but not the representations or the polynomial count;
        // a power-basis polynomial would panic at the first flood. The message is
        // `PublicKey { Ciphertext c = 1 }`.
        let check = |bytes: &[u8]| -> Result<()> {
            match wire::fields(bytes)
                .map_err(|m| malformed("public key", m))?
                .as_slice()
            {
                [(1, wire::Value::Bytes(c))] => {
                    self.check_ct_wire(c, "public key", &[0]).map(|_| ())
                }
                [] => Err(malformed("public key", "no ciphertext")),
                _ => Err(malformed(
                    "public key",
                    "unexpected, repeated or mistyped fields",
                )),
            }
        };
        check(bytes)?;
        let pk = PublicKey::from_bytes(bytes, &self.par).map_err(|e| malformed("public key", e))?;
        // The crate keeps the key's ciphertext private; its own serialisation of what it
        // decoded says what it holds.
        check(&pk.to_bytes())?;
        Ok(pk)
    }

    fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        values: &[u64],
        enc: Encoding,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        check_len(values.len())?;
        let pt = Plaintext::try_encode(values, Self::encoding(enc, 0), &self.par).map_err(err)?;
        sk.try_encrypt(&pt, rng).map_err(err)
    }

    fn decrypt(&self, sk: &SecretKey, ct: &Ciphertext, enc: Encoding) -> Result<Vec<u64>> {
        let level = self.check_ct(ct)?;
        let pt = sk.try_decrypt(ct).map_err(err)?;
        Vec::<u64>::try_decode(&pt, Self::encoding(enc, level)).map_err(err)
    }

    fn prepare(&self, values: &[u64], enc: Encoding) -> Result<Poly> {
        check_len(values.len())?;
        let p = self.plain_modulus();
        let ctx = self.ctx0()?;
        let coeffs: Vec<i64> = match enc {
            Encoding::Coeff => values.iter().map(|&v| centred(v, p)).collect(),
            Encoding::Slots => {
                // The slot encoding's polynomial, read back through the first limb (which is
                // larger than p, so the residues are the coefficients themselves).
                let pt =
                    Plaintext::try_encode(values, bfv::Encoding::simd(), &self.par).map_err(err)?;
                let poly = Poly::try_convert_from(&pt, ctx, false, Representation::PowerBasis)
                    .map_err(err)?;
                poly.coefficients()
                    .row(0)
                    .iter()
                    .map(|&v| centred(v, p))
                    .collect()
            }
        };
        let mut poly =
            Poly::try_convert_from(coeffs.as_slice(), ctx, false, Representation::PowerBasis)
                .map_err(err)?;
        poly.change_representation(Representation::NttShoup);
        Ok(poly)
    }

    fn mul_plain(&self, ct: &Ciphertext, pt: &Poly) -> Result<Ciphertext> {
        let level = self.check_ct(ct)?;
        if !matches!(
            pt.representation(),
            Representation::Ntt | Representation::NttShoup
        ) {
            return Err(HeError::Params(format!(
                "a prepared plaintext in {} form, expected NTT",
                repr_name(pt.representation())
            )));
        }
        if level != 0 || ct[0].ctx() != pt.ctx() {
            return Err(HeError::Params(
                "plaintext products run at the full modulus".into(),
            ));
        }
        let c: Vec<Poly> = ct
            .iter()
            .map(|ci| {
                let mut ci = ci.clone();
                ci *= pt;
                ci
            })
            .collect();
        Ciphertext::new(c, &self.par).map_err(err)
    }

    fn add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext) -> Result<()> {
        if self.check_ct(acc)? != self.check_ct(ct)? {
            return Err(HeError::Params(
                "adding ciphertexts of different levels".into(),
            ));
        }
        *acc += ct;
        Ok(())
    }

    fn add_plain_assign(&self, ct: &mut Ciphertext, values: &[u64], enc: Encoding) -> Result<()> {
        check_len(values.len())?;
        let level = self.check_ct(ct)?;
        let pt =
            Plaintext::try_encode(values, Self::encoding(enc, level), &self.par).map_err(err)?;
        *ct += &pt;
        Ok(())
    }

    fn flood<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Ciphertext,
        bits: u32,
        pk: &PublicKey,
        rng: &mut R,
    ) -> Result<()> {
        check_flood(bits, self.modulus_bits(), self.plain_modulus())?;
        // The key was checked when it was read (`read_public_key`, the only way in from the
        // peer); the crate gives no access to its polynomials here.
        let level = self.check_ct(ct)?;
        if level > self.deepest {
            return Err(HeError::Params(format!(
                "flooding a ciphertext at level {level}, deeper than the reply level {}",
                self.deepest
            )));
        }
        let zero = Plaintext::try_encode(&[0u64], bfv::Encoding::poly_at_level(level), &self.par)
            .map_err(err)?;
        let fresh: Ciphertext = pk.try_encrypt(&zero, rng).map_err(err)?;
        if fresh[0].ctx() != ct[0].ctx() {
            return Err(HeError::Params(
                "re-randomising a ciphertext below the full modulus".into(),
            ));
        }
        *ct += &fresh;
        let ctx = ct[0].ctx().clone();
        let noise = flood_residues(bits, ctx.moduli(), rng);
        let e = Array2::from_shape_vec((ctx.moduli().len(), DEGREE), noise)
            .map_err(|e| err(e.to_string()))?;
        let mut e =
            Poly::try_convert_from(e, &ctx, false, Representation::PowerBasis).map_err(err)?;
        e.change_representation(Representation::Ntt);
        let mut c: Vec<Poly> = ct.iter().cloned().collect();
        c[0] += &e;
        let mut out = Ciphertext::new(c, &self.par).map_err(err)?;
        out.switch_to_level(self.deepest).map_err(err)?;
        *ct = out;
        Ok(())
    }

    fn serialize(&self, ct: &Ciphertext) -> Result<Vec<u8>> {
        self.check_ct(ct)?;
        Ok(ct.to_bytes())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Ciphertext> {
        self.read_ct(bytes, &[0, self.deepest])
    }

    fn deserialize_at(&self, bytes: &[u8], at: CtLevel) -> Result<Ciphertext> {
        self.read_ct(bytes, &[self.level_of(at)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::{self, assert_malformed};
    use super::*;
    use fhe::bfv::traits::TryConvertFrom as _;
    use fhe::proto::bfv::Ciphertext as CiphertextProto;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn setup() -> (FheRs, SecretKey, PublicKey, ChaCha20Rng) {
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
}
