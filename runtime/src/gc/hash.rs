//! The tweakable correlation-robust hash of half-gates garbling, from fixed-key AES
//! (Guo, Katz, Wang, Yu, "Efficient and secure multiparty computation from fixed-key block
//! ciphers", 2020): H(x, i) = pi(sigma(x) xor i) xor sigma(x), with sigma(L || R) = (L xor R) || L.
//! Hashes are computed a gate's worth at a time in one AES call.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

/// A 128-bit wire label.
pub type Label = u128;

/// The fixed public key; any constant works for the random-permutation model.
const FIXED_KEY: [u8; 16] = *b"c3d-gc-fixed-key";

/// Fixed-key AES as a public permutation.
#[derive(Clone)]
pub struct Hasher {
    aes: Aes128,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            aes: Aes128::new(&FIXED_KEY.into()),
        }
    }
}

#[inline(always)]
fn sigma(x: Label) -> Label {
    let (l, r) = ((x >> 64) as u64, x as u64);
    (((l ^ r) as u128) << 64) | l as u128
}

impl Hasher {
    /// H(x_k, t_k) for N inputs in one AES call (the garbler hashes four per AND gate, the
    /// evaluator two), without allocating.
    #[inline]
    pub fn hash<const N: usize>(&self, xs: [Label; N], ts: [u128; N]) -> [Label; N] {
        let mut blocks: [aes::Block; N] =
            std::array::from_fn(|k| (sigma(xs[k]) ^ ts[k]).to_le_bytes().into());
        self.aes.encrypt_blocks(&mut blocks);
        std::array::from_fn(|k| u128::from_le_bytes(blocks[k].into()) ^ sigma(xs[k]) ^ ts[k])
    }
}

/// Most hashes [`Hasher::hash_slice`] computes in one call.
pub const MAX_BATCH: usize = 64;

impl Hasher {
    /// H(xs[k], ts[k]) into `out[k]` for up to [`MAX_BATCH`] inputs in one AES call: many
    /// circuits garbled in lockstep fill AES-NI's pipeline, which four blocks do not.
    #[inline]
    pub fn hash_slice(&self, xs: &[Label], ts: &[u128], out: &mut [Label]) {
        let n = xs.len();
        assert!(
            n <= MAX_BATCH && ts.len() == n && out.len() == n,
            "hash batch"
        );
        let mut blocks = [aes::Block::default(); MAX_BATCH];
        for k in 0..n {
            blocks[k] = (sigma(xs[k]) ^ ts[k]).to_le_bytes().into();
        }
        self.aes.encrypt_blocks(&mut blocks[..n]);
        for k in 0..n {
            out[k] = u128::from_le_bytes(blocks[k].into()) ^ sigma(xs[k]) ^ ts[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_matches_the_fips197_vector_and_batches_agree() {
        // FIPS-197 appendix C.1: key 000102..0f, plaintext 00112233..ff.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let pt: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        let aes = Aes128::new(&key.into());
        let mut b: aes::Block = pt.into();
        aes.encrypt_block(&mut b);
        let ct: [u8; 16] = b.into();
        assert_eq!(
            ct,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        let h = Hasher::default();
        let xs = [1u128, 2, 3 << 100, u128::MAX];
        let ts = [0u128, 1, 2, 3];
        let four = h.hash(xs, ts);
        // A batch equals its elements hashed one by one, and the definition written out.
        for k in 0..4 {
            assert_eq!(h.hash([xs[k]], [ts[k]]), [four[k]]);
            let mut b: aes::Block = (sigma(xs[k]) ^ ts[k]).to_le_bytes().into();
            Aes128::new(&FIXED_KEY.into()).encrypt_block(&mut b);
            assert_eq!(
                four[k],
                u128::from_le_bytes(b.into()) ^ sigma(xs[k]) ^ ts[k]
            );
        }
        let mut many = [0u128; 4];
        h.hash_slice(&xs, &ts, &mut many);
        assert_eq!(many, four, "the slice form equals the array form");
        // Distinct tweaks give distinct outputs for the same label.
        let two = h.hash([5, 5], [0, 1]);
        assert_ne!(two[0], two[1]);
    }
}
