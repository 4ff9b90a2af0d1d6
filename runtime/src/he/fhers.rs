//! The BFV backend over the pure-Rust `fhe` crate (fhe.rs, MIT). Ciphertexts live in NTT
//! form; prepared plaintexts are centred integer polynomials in NTT form with Shoup
//! precomputation, so a plaintext multiplication is one pointwise pass per RNS limb.

use super::{
    centred, check_flood, check_len, flood_residues, modulus_bits_of, switch_target_fits, Backend,
    Encoding, HeError, NoiseBudget, Result, DEGREE,
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
        PublicKey::from_bytes(bytes, &self.par).map_err(|e| HeError::Malformed(e.to_string()))
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
        let level = self.par.level_of_context(ct[0].ctx()).map_err(err)?;
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
        if ct[0].ctx() != pt.ctx() {
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
        if acc[0].ctx() != ct[0].ctx() || acc.len() != ct.len() {
            return Err(HeError::Params(
                "adding ciphertexts of different levels".into(),
            ));
        }
        *acc += ct;
        Ok(())
    }

    fn add_plain_assign(&self, ct: &mut Ciphertext, values: &[u64], enc: Encoding) -> Result<()> {
        check_len(values.len())?;
        let level = self.par.level_of_context(ct[0].ctx()).map_err(err)?;
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
        let level = self.par.level_of_context(ct[0].ctx()).map_err(err)?;
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
        Ok(ct.to_bytes())
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Ciphertext> {
        let ct = Ciphertext::from_bytes(bytes, &self.par)
            .map_err(|e| HeError::Malformed(e.to_string()))?;
        if ct.len() != 2 {
            return Err(HeError::Malformed(format!(
                "a ciphertext of {} polynomials, expected 2",
                ct.len()
            )));
        }
        Ok(ct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conforms_at_delphis_prime() {
        super::super::conformance::check_all(&FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
    }

    #[test]
    fn returned_products_do_not_expose_the_plaintext() {
        // Without re-randomisation the mask part of Enc(x) * w is a * w, and the key owner
        // knows a: with w = 1 it would come back as a itself (switched down).
        use rand::SeedableRng;
        let be = FheRs::new(c3d_ir::fixed::DELPHI_PRIME).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
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

    #[test]
    fn conforms_at_a_61_bit_prime() {
        let p = *c3d_ir::fixed::candidate_primes().last().unwrap();
        assert_eq!(64 - p.leading_zeros(), 61);
        super::super::conformance::check_all(&FheRs::new(p).unwrap());
    }
}
