//! The tweakable correlation-robust hash of half-gates garbling, from fixed-key AES
//! (Guo, Katz, Wang, Yu, "Efficient and secure multiparty computation from fixed-key block
//! ciphers", 2020): H(x, i) = pi(sigma(x) xor i) xor sigma(x), with sigma(L || R) = (L xor R) || L.
//! Hashes are computed in batches so AES-NI pipelines them.

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
    /// H(x_k, t_k) for every k, in one batch.
    pub fn hash_many(&self, xs: &[Label], tweaks: &[u128], out: &mut [Label]) {
        assert!(xs.len() == tweaks.len() && xs.len() == out.len());
        let mut blocks: Vec<aes::Block> = xs
            .iter()
            .zip(tweaks)
            .map(|(&x, &t)| (sigma(x) ^ t).to_le_bytes().into())
            .collect();
        self.aes.encrypt_blocks(&mut blocks);
        for (k, b) in blocks.iter().enumerate() {
            let y = u128::from_le_bytes((*b).into());
            out[k] = y ^ sigma(xs[k]) ^ tweaks[k];
        }
    }

    /// H(x, t) for four inputs (the garbler's AND gate) without allocating.
    #[inline]
    pub fn hash4(&self, xs: [Label; 4], ts: [u128; 4]) -> [Label; 4] {
        let mut blocks: [aes::Block; 4] =
            std::array::from_fn(|k| (sigma(xs[k]) ^ ts[k]).to_le_bytes().into());
        self.aes.encrypt_blocks(&mut blocks);
        std::array::from_fn(|k| u128::from_le_bytes(blocks[k].into()) ^ sigma(xs[k]) ^ ts[k])
    }

    /// H(x, t) for two inputs (the evaluator's AND gate).
    #[inline]
    pub fn hash2(&self, xs: [Label; 2], ts: [u128; 2]) -> [Label; 2] {
        let mut blocks: [aes::Block; 2] =
            std::array::from_fn(|k| (sigma(xs[k]) ^ ts[k]).to_le_bytes().into());
        self.aes.encrypt_blocks(&mut blocks);
        std::array::from_fn(|k| u128::from_le_bytes(blocks[k].into()) ^ sigma(xs[k]) ^ ts[k])
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
        let four = h.hash4(xs, ts);
        let mut many = [0u128; 4];
        h.hash_many(&xs, &ts, &mut many);
        assert_eq!(four, many);
        assert_eq!(h.hash2([xs[0], xs[1]], [ts[0], ts[1]]), [four[0], four[1]]);
        // Distinct tweaks give distinct outputs for the same label.
        assert_ne!(h.hash2([5, 5], [0, 1])[0], h.hash2([5, 5], [0, 1])[1]);
    }
}
