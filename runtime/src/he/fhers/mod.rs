//! The BFV backend over the pure-Rust `fhe` crate (fhe.rs, MIT). Ciphertexts live in NTT
//! form; prepared plaintexts are centred integer polynomials in NTT form, so a plaintext
//! multiplication is one pointwise pass per RNS limb, and sums of them ([`Backend::dot_matrix`])
//! one pass with the products summed in u128 and reduced once. The transforms are tfhe-ntt's
//! (fhe-math's `tfhe-ntt` feature), whose butterflies are branch-free.
//!
//! Bytes from the peer are checked before the crate decodes them: its `from_bytes` checks the
//! level against the parameters and the byte count against the moduli, but not the
//! representation of a polynomial (a power-basis or NTT-Shoup one makes the arithmetic panic),
//! the number of polynomials, the degree field, or that each residue is below its modulus.

use super::{
    centred, check_flood, check_keep, check_len, check_matrix, flood_residues, modulus_bits_of,
    switch_target_fits, Backend, CtLevel, Encoding, HeError, NoiseBudget, Result, DEGREE,
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
use zeroize::Zeroize;

mod wire;

/// The key owner's public key as the other party holds it: the crate's key and its two
/// polynomials (NTT form, full modulus), which the re-randomisation here multiplies directly.
pub struct FhePk {
    /// The crate's own key: the tests' reference path encrypts with it.
    #[cfg(test)]
    key: PublicKey,
    c: Ciphertext,
}

/// Error variance of the crate's encryptions (its default, which these parameters keep): the
/// re-randomisation samples as its public-key encryption does.
const VARIANCE: usize = 10;

/// BFV over fhe.rs for one plaintext modulus.
pub struct FheRs {
    par: Arc<BfvParameters>,
    /// Deepest level a flooded ciphertext may switch to (the rounding noise of switching must
    /// stay below q_L / 4t).
    deepest: usize,
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
    /// polynomial as [`wire::check_poly`] checks it. Returns the level.
    fn check_ct_wire(&self, bytes: &[u8], what: &str, levels: &[usize]) -> Result<usize> {
        let bad = |m: String| malformed(what, m);
        let (mut polys, mut seed, mut level) = (Vec::new(), None, None);
        for (num, value) in wire::fields(bytes).map_err(|e| malformed(what, e))? {
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
            wire::check_poly(p, ctx, i).map_err(|e| malformed(what, e))?;
        }
        Ok(level)
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

    /// [`Backend::finish`] (or [`Backend::flood`] without a plaintext) in one trip to the power
    /// basis: the public-key encryption of zero is u * pk + (e1, e2) with u in NTT form and the
    /// errors added in the power basis, where the plaintext (scaled as the crate scales it) and
    /// the flooding noise are added too; then all levels are switched at once. The same
    /// polynomials, draw for draw, as the crate's encryption of zero, plaintext addition and
    /// level-by-level switch (a test), with 14 transforms of one limb instead of 34.
    fn reply<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Ciphertext,
        plain: Option<&[u64]>,
        bits: u32,
        pk: &FhePk,
        rng: &mut R,
    ) -> Result<()> {
        check_flood(bits, self.modulus_bits(), self.plain_modulus())?;
        if let Some(v) = plain {
            check_len(v.len())?;
        }
        // The key was checked when it was read (`read_public_key`, the only way in from the
        // peer).
        let level = self.check_ct(ct)?;
        if level > self.deepest {
            return Err(HeError::Params(format!(
                "flooding a ciphertext at level {level}, deeper than the reply level {}",
                self.deepest
            )));
        }
        let ctx = ct[0].ctx().clone();
        // The key at the ciphertext's level (switched down as the crate's encryption does).
        let key = if level == 0 {
            std::borrow::Cow::Borrowed(&pk.c)
        } else {
            let mut k = pk.c.clone();
            k.switch_to_level(level).map_err(err)?;
            std::borrow::Cow::Owned(k)
        };
        let u = zeroize::Zeroizing::new(
            Poly::small(&ctx, Representation::Ntt, VARIANCE, rng).map_err(err)?,
        );
        let e1 = zeroize::Zeroizing::new(
            Poly::small(&ctx, Representation::PowerBasis, VARIANCE, rng).map_err(err)?,
        );
        let e2 = zeroize::Zeroizing::new(
            Poly::small(&ctx, Representation::PowerBasis, VARIANCE, rng).map_err(err)?,
        );
        let noise = flood_residues(bits, ctx.moduli(), rng)?;
        let mut e = Array2::from_shape_vec((ctx.moduli().len(), DEGREE), noise)
            .map_err(|e| err(e.to_string()))?;
        if let Some(v) = plain {
            // The crate's scaling of a plaintext m: [m (q mod t)]_t times (-t)^-1 mod each q_i,
            // which is floor(q m / t) mod q_i.
            let t = fhe_math::zq::Modulus::new(self.plain_modulus()).map_err(err)?;
            let q_mod_t = ctx
                .moduli()
                .iter()
                .fold(1u64, |a, &q| t.mul(a, t.reduce(q)));
            for (i, &q) in ctx.moduli().iter().enumerate() {
                let m = fhe_math::zq::Modulus::new(q).map_err(err)?;
                let delta = m
                    .inv(m.neg(m.reduce(self.plain_modulus())))
                    .ok_or_else(|| err("t is not invertible mod q"))?;
                for (d, &x) in e.row_mut(i).iter_mut().zip(v) {
                    let scaled = t.mul(t.reduce(x), q_mod_t);
                    *d = m.add(*d, m.mul(m.reduce(scaled), delta));
                }
            }
        }
        let e = Poly::try_convert_from(e, &ctx, false, Representation::PowerBasis).map_err(err)?;
        let target = self.par.context_at_level(self.deepest).map_err(err)?;
        let mut c: Vec<Poly> = ct.iter().cloned().collect();
        for (i, ci) in c.iter_mut().enumerate() {
            let mut r = u.as_ref() * &key[i];
            *ci += &r;
            r.zeroize();
            ci.change_representation(Representation::PowerBasis);
            if i == 0 {
                *ci += e1.as_ref();
                *ci += &e;
            } else {
                *ci += e2.as_ref();
            }
            if ci.ctx() != target {
                ci.switch_down_to(target).map_err(err)?;
            }
            ci.change_representation(Representation::Ntt);
        }
        *ct = Ciphertext::new(c, &self.par).map_err(err)?;
        Ok(())
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
    type Pk = FhePk;

    fn name(&self) -> &'static str {
        "fhe.rs"
    }

    fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<SecretKey> {
        Ok(SecretKey::random(&self.par, rng))
    }

    fn public_key<R: RngCore + CryptoRng>(&self, sk: &SecretKey, rng: &mut R) -> Result<Vec<u8>> {
        Ok(PublicKey::new(sk, rng).to_bytes())
    }

    fn read_public_key(&self, bytes: &[u8]) -> Result<FhePk> {
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
        let again = pk.to_bytes();
        check(&again)?;
        // The key's ciphertext, checked above, read for its polynomials.
        let inner = match wire::fields(&again)
            .map_err(|m| malformed("public key", m))?
            .as_slice()
        {
            [(1, wire::Value::Bytes(c))] => c.to_vec(),
            _ => return Err(malformed("public key", "unexpected fields")),
        };
        let ct =
            Ciphertext::from_bytes(&inner, &self.par).map_err(|e| malformed("public key", e))?;
        if self.check_ct(&ct)? != 0 {
            return Err(malformed("public key", "not at the full modulus"));
        }
        Ok(FhePk {
            #[cfg(test)]
            key: pk,
            c: ct,
        })
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
        // Plain NTT form: `dot_matrix` multiplies without Shoup's precomputation, which would
        // cost as much as the transform and double the memory.
        poly.change_representation(Representation::Ntt);
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

    fn dot_matrix(
        &self,
        rows: &[Vec<&Ciphertext>],
        cols: &[Vec<Option<&Poly>>],
    ) -> Result<Vec<Vec<Ciphertext>>> {
        use rayon::prelude::*;
        check_matrix(rows, cols)?;
        let ctx = self.ctx0()?;
        for ct in rows.iter().flatten() {
            if self.check_ct(ct)? != 0 {
                return Err(HeError::Params(
                    "plaintext products run at the full modulus".into(),
                ));
            }
        }
        for pt in cols.iter().flatten().flatten() {
            if pt.representation() != &Representation::Ntt || pt.ctx() != ctx {
                return Err(HeError::Params(format!(
                    "a prepared plaintext in {} form or at another level, expected NTT at the \
                     full modulus",
                    repr_name(pt.representation())
                )));
            }
        }
        let moduli = ctx.moduli();
        let ms = moduli
            .iter()
            .map(|&q| fhe_math::zq::Modulus::new(q).map_err(err))
            .collect::<Result<Vec<_>>>()?;
        let layout = || err("polynomial layout");
        fn limb(p: &Poly, j: usize) -> Result<&[u64]> {
            let all: ndarray::ArrayView2<'_, u64> = p.coefficients();
            all.index_axis_move(ndarray::Axis(0), j)
                .to_slice()
                .ok_or_else(|| err("polynomial layout"))
        }
        let (nr, nc, nb) = (rows.len(), cols.len(), rows[0].len());
        // Products are summed unreduced in u128 and reduced every `fold` blocks (q < 2^62, so
        // at least 15 products fit above a reduced partial sum). The work is cut by limb and
        // chunk of coefficients across the threads; inside a chunk each ciphertext is read
        // once for all columns and each plaintext once for all rows, with the sums in cache.
        const CHUNK: usize = 256;
        let jobs: Vec<(usize, usize)> = (0..moduli.len())
            .flat_map(|j| (0..DEGREE).step_by(CHUNK).map(move |c0| (j, c0)))
            .collect();
        let done: Vec<Vec<u64>> = jobs
            .par_iter()
            .map(|&(j, c0)| -> Result<Vec<u64>> {
                let (m, q) = (&ms[j], moduli[j]);
                let max = (q - 1) as u128 * (q - 1) as u128;
                let fold = ((u128::MAX - q as u128) / max).clamp(1, 1 << 20) as usize;
                // acc[((g * nr + t) * 2 + i) * CHUNK + k]
                let mut acc = vec![0u128; nc * nr * 2 * CHUNK];
                for b in 0..nb {
                    let cts: Vec<[&[u64]; 2]> = rows
                        .iter()
                        .map(|r| {
                            Ok([
                                &limb(&r[b][0], j)?[c0..c0 + CHUNK],
                                &limb(&r[b][1], j)?[c0..c0 + CHUNK],
                            ])
                        })
                        .collect::<Result<_>>()?;
                    for (g, col) in cols.iter().enumerate() {
                        let Some(pt) = col[b] else { continue };
                        let k = &limb(pt, j)?[c0..c0 + CHUNK];
                        for (t, ct) in cts.iter().enumerate() {
                            for (i, a) in ct.iter().enumerate() {
                                let s = &mut acc[((g * nr + t) * 2 + i) * CHUNK..][..CHUNK];
                                for ((s, &x), &y) in s.iter_mut().zip(*a).zip(k) {
                                    *s += x as u128 * y as u128;
                                }
                            }
                        }
                    }
                    if (b + 1) % fold == 0 {
                        acc.iter_mut().for_each(|a| *a = m.reduce_u128(*a) as u128);
                    }
                }
                Ok(acc.into_iter().map(|a| m.reduce_u128(a)).collect())
            })
            .collect::<Result<_>>()?;
        (0..nc)
            .into_par_iter()
            .map(|g| {
                (0..nr)
                    .map(|t| {
                        let polys = (0..2)
                            .map(|i| {
                                let mut c = Array2::zeros((moduli.len(), DEGREE));
                                for (&(j, c0), d) in jobs.iter().zip(&done) {
                                    let src = &d[((g * nr + t) * 2 + i) * CHUNK..][..CHUNK];
                                    let mut row = c.row_mut(j);
                                    row.as_slice_mut().ok_or_else(layout)?[c0..c0 + CHUNK]
                                        .copy_from_slice(src);
                                }
                                Poly::try_convert_from(c, ctx, false, Representation::Ntt)
                                    .map_err(err)
                            })
                            .collect::<Result<Vec<_>>>()?;
                        Ciphertext::new(polys, &self.par).map_err(err)
                    })
                    .collect()
            })
            .collect()
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
        pk: &FhePk,
        rng: &mut R,
    ) -> Result<()> {
        self.reply(ct, None, bits, pk, rng)
    }

    fn finish<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Ciphertext,
        mask: &[u64],
        bits: u32,
        pk: &FhePk,
        rng: &mut R,
    ) -> Result<()> {
        self.reply(ct, Some(mask), bits, pk, rng)
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

    /// c1 in NTT form, then c0's residues at `keep` in the power basis, limb by limb, each
    /// residue in the bits its modulus needs, as one bit stream (no framing: the length
    /// follows from the parameters and `keep`).
    fn serialize_reply(&self, ct: &Ciphertext, keep: &[usize]) -> Result<Vec<u8>> {
        check_keep(keep)?;
        if self.check_ct(ct)? != self.deepest {
            return Err(HeError::Params(
                "a reply must be flooded and switched before it is sent".into(),
            ));
        }
        let ctx = ct[0].ctx();
        let mut c0 = ct[0].clone();
        c0.change_representation(Representation::PowerBasis);
        let widths = reply_widths(ctx.moduli());
        let mut w = wire::BitWriter::with_capacity(reply_bytes(&widths, keep.len()));
        let (c0, c1) = (c0.coefficients(), ct[1].coefficients());
        for (j, &bits) in widths.iter().enumerate() {
            for &x in c1.row(j) {
                w.put(x, bits);
            }
            let row = c0.row(j);
            for &i in keep {
                w.put(row[i], bits);
            }
        }
        Ok(w.finish())
    }

    fn decrypt_reply(&self, sk: &SecretKey, bytes: &[u8], keep: &[usize]) -> Result<Vec<u64>> {
        check_keep(keep)?;
        let bad = |m: String| malformed("reply", m);
        let ctx = self.par.context_at_level(self.deepest).map_err(err)?;
        let widths = reply_widths(ctx.moduli());
        let want = reply_bytes(&widths, keep.len());
        if bytes.len() != want {
            return Err(bad(format!(
                "{} bytes, expected {want} for {} coefficients",
                bytes.len(),
                keep.len()
            )));
        }
        let limbs = ctx.moduli().len();
        let mut c0 = Array2::<u64>::zeros((limbs, DEGREE));
        let mut c1 = Array2::<u64>::zeros((limbs, DEGREE));
        let mut r = wire::BitReader::new(bytes);
        for (j, (&bits, &q)) in widths.iter().zip(ctx.moduli()).enumerate() {
            let mut next = |what: &str, k: usize| -> Result<u64> {
                let x = r.get(bits).ok_or_else(|| bad("truncated".into()))?;
                if x >= q {
                    return Err(bad(format!(
                        "{what} residue {k} mod limb {j} is {x}, not below the modulus {q}"
                    )));
                }
                Ok(x)
            };
            for k in 0..DEGREE {
                c1[[j, k]] = next("c1", k)?;
            }
            for &i in keep {
                c0[[j, i]] = next("c0", i)?;
            }
        }
        if !r.done() {
            return Err(bad("non-zero padding bits".into()));
        }
        let c1 = Poly::try_convert_from(c1, ctx, false, Representation::Ntt).map_err(err)?;
        let mut c0 =
            Poly::try_convert_from(c0, ctx, false, Representation::PowerBasis).map_err(err)?;
        c0.change_representation(Representation::Ntt);
        let ct = Ciphertext::new(vec![c0, c1], &self.par).map_err(err)?;
        // Coefficients outside `keep` decrypt to noise; they are dropped here.
        let all = self.decrypt(sk, &ct, Encoding::Coeff)?;
        Ok(keep.iter().map(|&i| all[i]).collect())
    }
}

/// Bits of each limb's residues in a reply: as many as q - 1 needs.
fn reply_widths(moduli: &[u64]) -> Vec<u32> {
    moduli
        .iter()
        .map(|&q| 64 - (q - 1).leading_zeros())
        .collect()
}

/// Bytes of a reply of which `kept` coefficients of c0 are sent.
fn reply_bytes(widths: &[u32], kept: usize) -> usize {
    let bits: usize = widths.iter().map(|&w| w as usize * (DEGREE + kept)).sum();
    wire::BitReader::bytes_for(bits)
}

#[cfg(test)]
mod tests;
