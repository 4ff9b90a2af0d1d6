//! BFV homomorphic encryption for the offline phase, behind a small backend trait so the
//! protocols above it do not depend on one library. Two implementations: the pure-Rust `fhe`
//! crate (the default) and Microsoft SEAL through `seal_fhe` (feature `seal`).
//!
//! Plaintexts hold elements of the plan's field F_p (t = p). Two encodings: coefficients of the
//! polynomial (a convolution costs one plaintext multiplication, no rotations and no Galois
//! keys) and SIMD slots (element-wise products, for Beaver triples; needs p = 1 mod 2N, which
//! every candidate prime is).
//!
//! Circuit privacy: before a ciphertext goes back to the key owner, [`Backend::flood`] first
//! adds a fresh encryption of zero under the owner's public key (otherwise the mask part of a
//! product, a * w, could be divided by the owner's own encryption randomness a to expose the
//! server's plaintext w), then adds uniform noise 2^(40 + log2 N + log2 R) times larger than
//! a public bound on the noise the computation left (R the replies of a whole session, so the
//! union over every coefficient the client decrypts stays within 2^-40; docs/security.md),
//! and switches the ciphertext to the smallest modulus that still decrypts.

pub mod fhers;
#[cfg(feature = "seal")]
pub mod seal;

use rand::{CryptoRng, RngCore};

pub use c3d_ir::he_model::{NoiseBudget, DEGREE, FLOOD_SIGMA};

/// How a vector of field elements sits in a plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Value i is the coefficient of X^i.
    Coeff,
    /// Value i is SIMD slot i.
    Slots,
}

/// Why an HE operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HeError {
    /// The library refused an operation or a parameter set.
    #[error("{backend}: {msg}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said.
        msg: String,
    },
    /// The parameters cannot carry this computation (the noise would not decrypt).
    #[error("HE parameters too small: {0}")]
    Params(String),
    /// A ciphertext or public key from the peer could not be read, or failed a check (what
    /// was wrong is named).
    #[error("malformed data from the peer: {0}")]
    Malformed(String),
}

/// Where a ciphertext from the peer stands in the protocol, which fixes the modulus level it
/// must arrive at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtLevel {
    /// A fresh encryption by the key owner, at the full modulus (the server receives these).
    Fresh,
    /// A flooded reply, switched down to the level [`Backend::flood`] switches to (the key
    /// owner receives these).
    Reply,
}

/// Result of an HE operation.
pub type Result<T> = std::result::Result<T, HeError>;

/// The operations the offline protocols need. Values are field elements in [0, p); plaintext
/// operands are centred before use so noise grows with their magnitude, not with p. Operands of
/// the wrong shape, representation or level are refused with an error, never a panic.
pub trait Backend: Send + Sync + NoiseBudget {
    /// Secret key (client only).
    type Sk: Send + Sync;
    /// Ciphertext.
    type Ct: Clone + Send + Sync;
    /// A plaintext prepared for multiplication (server side; prepared once, used many times).
    type Pt: Send + Sync;
    /// The key owner's public key, as the other party holds it (only to re-randomise).
    type Pk: Send + Sync;

    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// A fresh secret key.
    fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<Self::Sk>;
    /// The public key of `sk`, serialised for the other party.
    fn public_key<R: RngCore + CryptoRng>(&self, sk: &Self::Sk, rng: &mut R) -> Result<Vec<u8>>;
    /// Reads the peer's public key, checking it is well formed for these parameters (as
    /// [`Backend::deserialize`] does, at the full modulus). Never panics, whatever the bytes.
    fn read_public_key(&self, bytes: &[u8]) -> Result<Self::Pk>;
    /// Encrypts up to N values.
    fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &Self::Sk,
        values: &[u64],
        enc: Encoding,
        rng: &mut R,
    ) -> Result<Self::Ct>;
    /// Decrypts all N values.
    fn decrypt(&self, sk: &Self::Sk, ct: &Self::Ct, enc: Encoding) -> Result<Vec<u64>>;
    /// Prepares up to N values as a multiplication operand.
    fn prepare(&self, values: &[u64], enc: Encoding) -> Result<Self::Pt>;
    /// ct * pt.
    fn mul_plain(&self, ct: &Self::Ct, pt: &Self::Pt) -> Result<Self::Ct>;
    /// acc += ct.
    fn add_assign(&self, acc: &mut Self::Ct, ct: &Self::Ct) -> Result<()>;
    /// Ciphertexts times plaintexts as matrices: out[g][t] = sum_b rows[t][b] * cols[g][b]
    /// over the b where cols[g][b] is given (a pruned kernel is `None`). A backend can read
    /// each ciphertext once for all columns and each plaintext once for all rows, and reduce
    /// the sums once (the default is [`Backend::mul_plain`] and [`Backend::add_assign`]).
    /// Every row and column must have the same length, and every column a plaintext.
    fn dot_matrix(
        &self,
        rows: &[Vec<&Self::Ct>],
        cols: &[Vec<Option<&Self::Pt>>],
    ) -> Result<Vec<Vec<Self::Ct>>> {
        check_matrix(rows, cols)?;
        cols.iter()
            .map(|col| {
                rows.iter()
                    .map(|row| {
                        let mut acc: Option<Self::Ct> = None;
                        for (ct, pt) in row.iter().zip(col) {
                            let Some(pt) = pt else { continue };
                            let prod = self.mul_plain(ct, pt)?;
                            match acc.as_mut() {
                                None => acc = Some(prod),
                                Some(a) => self.add_assign(a, &prod)?,
                            }
                        }
                        acc.ok_or_else(|| HeError::Params("a column without plaintexts".into()))
                    })
                    .collect()
            })
            .collect()
    }
    /// ct += Enc(values) without noise (adds the encoded plaintext).
    fn add_plain_assign(&self, ct: &mut Self::Ct, values: &[u64], enc: Encoding) -> Result<()>;
    /// Makes a ciphertext safe to return to the key owner: adds a fresh public-key
    /// encryption of zero (re-randomising both parts), then uniform noise in
    /// [-2^bits, 2^bits) to every coefficient, and switches to the smallest modulus at which
    /// noise of 2^(bits+1) still decrypts. Fails if even the full modulus cannot carry it.
    fn flood<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Self::Ct,
        bits: u32,
        pk: &Self::Pk,
        rng: &mut R,
    ) -> Result<()>;
    /// A reply's whole treatment: adds the plaintext `mask` (as [`Backend::add_plain_assign`]
    /// in the coefficient encoding), then floods and switches as [`Backend::flood`] does. A
    /// backend may do both in one pass.
    fn finish<R: RngCore + CryptoRng>(
        &self,
        ct: &mut Self::Ct,
        mask: &[u64],
        bits: u32,
        pk: &Self::Pk,
        rng: &mut R,
    ) -> Result<()> {
        self.add_plain_assign(ct, mask, Encoding::Coeff)?;
        self.flood(ct, bits, pk, rng)
    }
    /// Bytes on the wire.
    fn serialize(&self, ct: &Self::Ct) -> Result<Vec<u8>>;
    /// Reads a ciphertext from the peer, checking it is well formed for these parameters (two
    /// polynomials, the representation the arithmetic needs, residues below their moduli) and
    /// sits at one of the levels the protocol sends ([`CtLevel`]). Never panics, whatever the
    /// bytes.
    fn deserialize(&self, bytes: &[u8]) -> Result<Self::Ct>;
    /// [`Backend::deserialize`], also checking the ciphertext sits at the level `at`.
    fn deserialize_at(&self, bytes: &[u8], at: CtLevel) -> Result<Self::Ct>;
    /// Bytes of a reply ([`Backend::finish`]ed, coefficient-encoded) of which the key owner
    /// reads only the coefficients `keep` (strictly increasing, below N). A backend may send
    /// the first polynomial's residues at `keep` alone, as Cheetah does: decrypting
    /// coefficient i needs c0[i] and all of c1, and dropping the rest is a public function of
    /// the flooded ciphertext. The default sends the whole ciphertext.
    fn serialize_reply(&self, ct: &Self::Ct, keep: &[usize]) -> Result<Vec<u8>> {
        check_keep(keep)?;
        self.serialize(ct)
    }
    /// Reads a reply written by [`Backend::serialize_reply`] for the same `keep` (checked as
    /// [`Backend::deserialize_at`] checks a reply) and decrypts the coefficients `keep`, in
    /// their order.
    fn decrypt_reply(&self, sk: &Self::Sk, bytes: &[u8], keep: &[usize]) -> Result<Vec<u64>> {
        check_keep(keep)?;
        let ct = self.deserialize_at(bytes, CtLevel::Reply)?;
        let all = self.decrypt(sk, &ct, Encoding::Coeff)?;
        Ok(keep.iter().map(|&i| all[i]).collect())
    }
}

/// Refuses a list of coefficients that is not strictly increasing below N.
pub(crate) fn check_keep(keep: &[usize]) -> Result<()> {
    if let Some(w) = keep.windows(2).find(|w| w[0] >= w[1]) {
        return Err(HeError::Params(format!(
            "reply coefficients not strictly increasing ({} then {})",
            w[0], w[1]
        )));
    }
    if let Some(&last) = keep.last() {
        if last >= DEGREE {
            return Err(HeError::Params(format!(
                "reply coefficient {last} beyond the ring's {DEGREE}"
            )));
        }
    }
    Ok(())
}

/// Checks that noise of 2^`noise_bits` plus its flooding for a session of `budget`'s replies
/// fits the backend's modulus and returns the flooding width
/// ([`c3d_ir::he_model::flood_bits`] with this module's error).
pub fn flood_bits<B: Backend + ?Sized>(
    be: &B,
    noise_bits: u32,
    budget: &FloodBudget,
) -> Result<u32> {
    c3d_ir::he_model::flood_bits(be, noise_bits, budget)
        .map_err(|m| HeError::Params(format!("{m} ({})", be.name())))
}

pub use c3d_ir::he_model::FloodBudget;

pub use c3d_ir::he_model::product_noise_bits;

/// log2 of the product of RNS limbs (rounded down).
pub(crate) fn modulus_bits_of(moduli: &[u64]) -> u32 {
    moduli
        .iter()
        .map(|q| (*q as f64).log2())
        .sum::<f64>()
        .floor() as u32
}

pub(crate) use c3d_ir::he_model::switch_target_fits;

/// Refuses more than one plaintext's worth of values.
pub(crate) fn check_len(n: usize) -> Result<()> {
    if n > DEGREE {
        return Err(HeError::Params(format!(
            "{n} values do not fit a plaintext of {DEGREE}"
        )));
    }
    Ok(())
}

/// Refuses a ciphertext matrix and a plaintext matrix that do not pair up: rows and columns
/// of one length, at least one of each, and a plaintext in every column.
pub(crate) fn check_matrix<C, P>(rows: &[Vec<&C>], cols: &[Vec<Option<&P>>]) -> Result<()> {
    let len = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || cols.is_empty() || len == 0 {
        return Err(HeError::Params(
            "an empty ciphertext or plaintext matrix".into(),
        ));
    }
    if let Some(r) = rows.iter().find(|r| r.len() != len) {
        return Err(HeError::Params(format!(
            "a row of {} ciphertexts beside one of {len}",
            r.len()
        )));
    }
    for c in cols {
        if c.len() != len {
            return Err(HeError::Params(format!(
                "a column of {} plaintexts against rows of {len} ciphertexts",
                c.len()
            )));
        }
        if c.iter().all(Option::is_none) {
            return Err(HeError::Params("a column without plaintexts".into()));
        }
    }
    Ok(())
}

/// Refuses flooding noise of 2^`bits` that a `modulus_bits` modulus cannot carry at p.
pub(crate) fn check_flood(bits: u32, modulus_bits: u32, p: u64) -> Result<()> {
    let t_bits = 64 - p.leading_zeros();
    if bits + 3 + t_bits > modulus_bits {
        return Err(HeError::Params(format!(
            "flooding noise of 2^{bits} does not fit a {modulus_bits}-bit modulus with a \
             {t_bits}-bit p"
        )));
    }
    Ok(())
}

/// Flooding noise for one polynomial: N coefficients uniform in [-2^bits, 2^bits), as
/// residues, modulus-major (residue i * N + j is coefficient j mod q_i). Each coefficient is
/// bits + 1 random bits (limbs of 64) less 2^bits; a limb is reduced with Barrett's method
/// against 2^(64k) mod q_i, in constant time (a secret's residues must not leak through the
/// time taken; u128 division is variable-time and was most of a reply's cost).
pub(crate) fn flood_residues<R: RngCore + CryptoRng>(
    bits: u32,
    moduli: &[u64],
    rng: &mut R,
) -> Result<Vec<u64>> {
    let limbs = (bits as usize + 1).div_ceil(64);
    let top = (bits as usize + 1) % 64;
    let ms = moduli
        .iter()
        .map(|&q| {
            fhe_math::zq::Modulus::new(q)
                .map_err(|e| HeError::Params(format!("flooding modulus {q}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    // Per modulus: 2^(64k) mod q for each limb k, and 2^bits mod q (subtracted so the noise
    // is centred).
    let limb_weights: Vec<Vec<u64>> = ms
        .iter()
        .map(|m| {
            let w = m.reduce_u128(1u128 << 64);
            let mut out = vec![1 % **m; limbs.max(bits as usize / 64 + 1)];
            for k in 1..out.len() {
                out[k] = m.mul(out[k - 1], w);
            }
            out
        })
        .collect();
    let offset: Vec<u64> = ms
        .iter()
        .zip(&limb_weights)
        .map(|(m, w)| m.mul(m.reduce(1u64 << (bits % 64)), w[bits as usize / 64]))
        .collect();
    let mut out = vec![0u64; moduli.len() * DEGREE];
    let mut buf = vec![0u64; limbs];
    for j in 0..DEGREE {
        // bits + 1 random bits: uniform in [0, 2^(bits+1)).
        for l in buf.iter_mut() {
            *l = rng.next_u64();
        }
        if top != 0 {
            buf[limbs - 1] &= (1u64 << top) - 1;
        }
        for (i, m) in ms.iter().enumerate() {
            let w = &limb_weights[i];
            let mut r = 0u64;
            for (k, &l) in buf.iter().enumerate() {
                r = m.add(r, m.reduce_u128(l as u128 * w[k] as u128));
            }
            out[i * DEGREE + j] = m.sub(r, offset[i]);
        }
    }
    Ok(out)
}

/// Centred representative of a field element, as i64.
pub fn centred(v: u64, p: u64) -> i64 {
    if v > p / 2 {
        v as i64 - p as i64
    } else {
        v as i64
    }
}

/// Backend conformance checks against clear computations, run for every backend.
#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod flood_tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// The earlier implementation, by u128 division: the reference the fast one must equal.
    fn by_division(bits: u32, moduli: &[u64], rng: &mut ChaCha20Rng) -> Vec<u64> {
        let reduce = |limbs: &[u64], q: u64| {
            let mut r = 0u128;
            for &l in limbs.iter().rev() {
                r = ((r << 64) | l as u128) % q as u128;
            }
            r as u64
        };
        let limbs = (bits as usize + 1).div_ceil(64);
        let top = (bits as usize + 1) % 64;
        let mut two = vec![0u64; bits as usize / 64 + 1];
        two[bits as usize / 64] = 1u64 << (bits % 64);
        let offset: Vec<u64> = moduli.iter().map(|&q| reduce(&two, q)).collect();
        let mut out = vec![0u64; moduli.len() * DEGREE];
        let mut buf = vec![0u64; limbs];
        for j in 0..DEGREE {
            for l in buf.iter_mut() {
                *l = rng.next_u64();
            }
            if top != 0 {
                buf[limbs - 1] &= (1u64 << top) - 1;
            }
            for (i, &q) in moduli.iter().enumerate() {
                out[i * DEGREE + j] = (reduce(&buf, q) + q - offset[i]) % q;
            }
        }
        out
    }

    #[test]
    fn barrett_noise_equals_the_division_reference_bit_for_bit() {
        let moduli = [
            (1u64 << 61) - 1,
            (1u64 << 62) - 57,
            1_152_921_504_606_830_593,
            998_244_353,
            3,
        ];
        for bits in [1u32, 4, 40, 62, 63, 64, 65, 100, 127, 128, 129, 150, 190] {
            let fast = flood_residues(bits, &moduli, &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
            let slow = by_division(bits, &moduli, &mut ChaCha20Rng::seed_from_u64(7));
            assert_eq!(fast, slow, "bits {bits}");
        }
    }

    #[test]
    fn noise_is_centred_and_covers_its_range() {
        let q = (1u64 << 61) - 1;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let v = flood_residues(4, &[q], &mut rng).unwrap();
        let c: Vec<i64> = v.iter().map(|&x| centred(x, q)).collect();
        assert!(c.iter().all(|&x| (-16..16).contains(&x)));
        assert_eq!(c.iter().min(), Some(&-16));
        assert_eq!(c.iter().max(), Some(&15));
        assert!(flood_residues(8, &[1u64 << 62], &mut rng).is_err());
    }
}
