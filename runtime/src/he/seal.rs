//! The BFV backend over Microsoft SEAL 4.0 through `seal_fhe` (AGPL-3.0; feature `seal`).
//! SEAL draws its own encryption randomness from the OS; the `rng` arguments feed only the
//! flooding noise here. Ciphertexts are in coefficient form (SEAL's BFV default), so flooding
//! adds to c0's RNS residues directly through SEAL's C API.

use super::{
    check_flood, check_len, flood_residues, modulus_bits_of, switch_target_fits, Backend, Encoding,
    HeError, NoiseBudget, Result, DEGREE,
};
use rand::{CryptoRng, RngCore};
use seal_fhe::{
    BFVEncoder, BFVEvaluator, BfvEncryptionParametersBuilder, Ciphertext, CoefficientModulus,
    Context, Decryptor, Encryptor, Evaluator, FromBytes, KeyGenerator, Modulus, Plaintext,
    PublicKey, SecretKey, SecurityLevel, ToBytes,
};
use std::os::raw::{c_long, c_void};

// SEAL's own C export, linked in by seal_fhe, which wraps the getter but not the setter.
extern "C" {
    fn Ciphertext_GetDataAt1(thisptr: *mut c_void, index: u64, data: *mut u64) -> c_long;
    fn Ciphertext_SetDataAt(thisptr: *mut c_void, index: u64, value: u64) -> c_long;
}

/// Limb sizes: 218 bits in all (the 128-bit bound at N = 8192); SEAL keeps the last limb
/// for key switching (unused here: no relinearisation, no rotations), so it is small and
/// ciphertexts compute at the first four (about 199 bits).
const MODULI_BITS: [i32; 5] = [60, 60, 60, 20, 18];

/// BFV over SEAL for one plaintext modulus.
pub struct Seal {
    ctx: Context,
    eval: BFVEvaluator,
    encoder: BFVEncoder,
    p: u64,
    data_moduli: Vec<u64>,
    /// How many mod switches a flooded ciphertext takes before it is sent.
    switches: usize,
}

// The SEAL handles are used behind &self only for operations SEAL documents as thread-safe
// (evaluation, encoding); seal_fhe itself declares its types Send and Sync.
unsafe impl Send for Seal {}
unsafe impl Sync for Seal {}

/// The client's keys: SEAL encrypts with the public key, decrypts with the secret key.
pub struct SealKeys {
    encryptor: Encryptor,
    decryptor: Decryptor,
    pk: PublicKey,
    _sk: SecretKey,
}
unsafe impl Send for SealKeys {}
unsafe impl Sync for SealKeys {}

/// The key owner's public key on the server: an encryptor for encryptions of zero.
pub struct SealPk {
    encryptor: Encryptor,
}
// As for `Seal`: SEAL documents encryption with a shared encryptor as thread-safe.
unsafe impl Send for SealPk {}
unsafe impl Sync for SealPk {}

fn err<E: std::fmt::Debug>(e: E) -> HeError {
    HeError::Backend {
        backend: "SEAL",
        msg: format!("{e:?}"),
    }
}

impl Seal {
    /// Parameters for plaintext modulus `p` (SEAL allows at most 60 bits) at N = 8192.
    pub fn new(p: u64) -> Result<Self> {
        if p >= 1 << 60 {
            return Err(HeError::Params(format!(
                "SEAL plaintext moduli are at most 60 bits, p = {p} has {}",
                64 - p.leading_zeros()
            )));
        }
        let coeff = CoefficientModulus::create(DEGREE as u64, &MODULI_BITS).map_err(err)?;
        let all: Vec<u64> = coeff.iter().map(Modulus::value).collect();
        let params = BfvEncryptionParametersBuilder::new()
            .set_poly_modulus_degree(DEGREE as u64)
            .set_coefficient_modulus(coeff)
            .set_plain_modulus_u64(p)
            .build()
            .map_err(err)?;
        let ctx = Context::new(&params, true, SecurityLevel::TC128).map_err(err)?;
        let eval = BFVEvaluator::new(&ctx).map_err(err)?;
        let encoder = BFVEncoder::new(&ctx).map_err(err)?;
        let data_moduli = all[..all.len() - 1].to_vec();
        let mut switches = 0;
        for k in 1..data_moduli.len() {
            if switch_target_fits(modulus_bits_of(&data_moduli[..data_moduli.len() - k]), p) {
                switches = k;
            }
        }
        Ok(Seal {
            ctx,
            eval,
            encoder,
            p,
            data_moduli,
            switches,
        })
    }

    fn plaintext(&self, values: &[u64], enc: Encoding) -> Result<Plaintext> {
        check_len(values.len())?;
        match enc {
            Encoding::Coeff => {
                let mut pt = Plaintext::new().map_err(err)?;
                pt.resize(DEGREE);
                for (i, &v) in values.iter().enumerate() {
                    pt.set_coefficient(i, v % self.p);
                }
                Ok(pt)
            }
            Encoding::Slots => {
                let mut v = values.to_vec();
                v.resize(DEGREE, 0);
                self.encoder.encode_unsigned(&v).map_err(err)
            }
        }
    }
}

impl NoiseBudget for Seal {
    fn degree(&self) -> usize {
        DEGREE
    }

    fn plain_modulus(&self) -> u64 {
        self.p
    }

    fn modulus_bits(&self) -> u32 {
        modulus_bits_of(&self.data_moduli)
    }

    fn fresh_noise_bits(&self) -> u32 {
        // Public-key encryption: e0 + e u + e1 s with |e| <= 19 and ternary u, s: under
        // 2 N 19 + 19 < 2^19.
        19
    }
}

impl Backend for Seal {
    type Sk = SealKeys;
    type Ct = Ciphertext;
    type Pt = Plaintext;
    type Pk = SealPk;

    fn name(&self) -> &'static str {
        "SEAL"
    }

    fn keygen<R: RngCore + CryptoRng>(&self, _rng: &mut R) -> Result<SealKeys> {
        let kg = KeyGenerator::new(&self.ctx).map_err(err)?;
        let sk = kg.secret_key();
        let pk = kg.create_public_key();
        Ok(SealKeys {
            encryptor: Encryptor::with_public_and_secret_key(&self.ctx, &pk, &sk).map_err(err)?,
            decryptor: Decryptor::new(&self.ctx, &sk).map_err(err)?,
            pk,
            _sk: sk,
        })
    }

    fn public_key<R: RngCore + CryptoRng>(&self, sk: &SealKeys, _rng: &mut R) -> Result<Vec<u8>> {
        sk.pk.as_bytes().map_err(err)
    }

    fn read_public_key(&self, bytes: &[u8]) -> Result<SealPk> {
        let pk = PublicKey::from_bytes(&self.ctx, bytes)
            .map_err(|e| HeError::Malformed(format!("public key: {e:?}")))?;
        Ok(SealPk {
            encryptor: Encryptor::with_public_key(&self.ctx, &pk).map_err(err)?,
        })
    }

    fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SealKeys,
        values: &[u64],
        enc: Encoding,
        _rng: &mut R,
    ) -> Result<Ciphertext> {
        sk.encryptor
            .encrypt(&self.plaintext(values, enc)?)
            .map_err(err)
    }

    fn decrypt(&self, sk: &SealKeys, ct: &Ciphertext, enc: Encoding) -> Result<Vec<u64>> {
        let pt = sk.decryptor.decrypt(ct).map_err(err)?;
        match enc {
            Encoding::Coeff => {
                let mut v: Vec<u64> = (0..pt.len().min(DEGREE))
                    .map(|i| pt.get_coefficient(i))
                    .collect();
                v.resize(DEGREE, 0);
                Ok(v)
            }
            Encoding::Slots => self.encoder.decode_unsigned(&pt).map_err(err),
        }
    }

    fn prepare(&self, values: &[u64], enc: Encoding) -> Result<Plaintext> {
        // SEAL centres plaintext coefficients itself in multiply_plain.
        self.plaintext(values, enc)
    }

    fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.eval.multiply_plain(ct, pt).map_err(err)
    }

    fn add_assign(&self, acc: &mut Ciphertext, ct: &Ciphertext) -> Result<()> {
        self.eval.add_inplace(acc, ct).map_err(err)
    }

    fn add_plain_assign(&self, ct: &mut Ciphertext, values: &[u64], enc: Encoding) -> Result<()> {
        let pt = self.plaintext(values, enc)?;
        self.eval.add_plain_inplace(ct, &pt).map_err(err)
    }

    fn flood<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Ciphertext,
        bits: u32,
        pk: &SealPk,
        rng: &mut R,
    ) -> Result<()> {
        check_flood(bits, self.modulus_bits(), self.p)?;
        if ct.is_ntt_form() || ct.coeff_modulus_size() as usize != self.data_moduli.len() {
            return Err(HeError::Params(
                "flooding expects a coefficient-form ciphertext at the top level".into(),
            ));
        }
        let zero = pk
            .encryptor
            .encrypt(&self.plaintext(&[0], Encoding::Coeff)?)
            .map_err(err)?;
        self.eval.add_inplace(ct, &zero).map_err(err)?;
        let noise = flood_residues(bits, &self.data_moduli, rng);
        let h = ct.get_handle();
        // SEAL's layout is poly-major, then limb, then coefficient: poly 0's residues sit at
        // the same indices as the noise's.
        for (j, &q) in self.data_moduli.iter().enumerate() {
            for i in 0..DEGREE {
                let idx = j * DEGREE + i;
                let e = noise[idx];
                let idx = idx as u64;
                let mut v = 0u64;
                // SAFETY: `h` is a live SEAL ciphertext; idx < size * coeff_modulus_size * N
                // (checked above: poly 0, a data-level limb, i < N).
                unsafe {
                    if Ciphertext_GetDataAt1(h, idx, &mut v) != 0 {
                        return Err(err("reading a ciphertext coefficient"));
                    }
                    let sum = ((v as u128 + e as u128) % q as u128) as u64;
                    if Ciphertext_SetDataAt(h, idx, sum) != 0 {
                        return Err(err("writing a ciphertext coefficient"));
                    }
                }
            }
        }
        for _ in 0..self.switches {
            let next = self.eval.mod_switch_to_next(ct).map_err(err)?;
            *ct = next;
        }
        Ok(())
    }

    fn serialize(&self, ct: &Ciphertext) -> Result<Vec<u8>> {
        ct.as_bytes().map_err(err)
    }

    fn deserialize(&self, bytes: &[u8]) -> Result<Ciphertext> {
        let ct = Ciphertext::from_bytes(&self.ctx, bytes)
            .map_err(|e| HeError::Malformed(format!("{e:?}")))?;
        if ct.num_polynomials() != 2 {
            return Err(HeError::Malformed(format!(
                "a ciphertext of {} polynomials, expected 2",
                ct.num_polynomials()
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
        super::super::conformance::check_all(&Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
    }

    #[test]
    fn seal_runs_the_linear_protocol() {
        use crate::linear::{ConvShape, Packing};
        let be = std::sync::Arc::new(Seal::new(c3d_ir::fixed::DELPHI_PRIME).unwrap());
        let s = ConvShape {
            c_in: 5,
            c_out: 7,
            input: [4, 6, 5],
            kernel: [3, 3, 3],
            stride: [1, 2, 1],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        };
        let pk = Packing {
            tile: [3, 4, 2],
            c_t: 2,
            m_o: 3,
            degree: 8192,
        };
        crate::linear::protocol::tests::run_with(be.clone(), &s, Some(pk), 12, 21);
        crate::linear::protocol::tests::run_with(
            be,
            &ConvShape::fully_connected(200, 30),
            None,
            14,
            22,
        );
    }

    #[test]
    fn refuses_primes_above_60_bits() {
        let p = *c3d_ir::fixed::candidate_primes().last().unwrap();
        assert!(matches!(Seal::new(p), Err(HeError::Params(_))));
    }
}
