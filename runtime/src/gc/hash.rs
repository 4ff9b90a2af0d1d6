//! The tweakable circular correlation-robust hash of half-gates garbling and of the OT
//! extension, from fixed-key AES: the TCCR construction of Guo, Katz, Wang and Yu, "Efficient
//! and secure multiparty computation from fixed-key block ciphers" (S&P 2020, section 7.3),
//!
//! ```text
//! H(x, i) = pi(pi(x) xor i) xor pi(x)
//! ```
//!
//! with pi = AES-128 under a fixed public key. (The MMO^sigma form pi(sigma(x) xor i) xor
//! sigma(x) xor i, used before, is not tweakable correlation robust: GKWY20 give the attack.)
//! Two AES calls per hash; each is batched over a gate's (or a batch's) inputs so AES-NI's
//! pipeline stays full.

use super::label::{Label, Tweak};
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

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
fn block(x: u128) -> aes::Block {
    x.to_le_bytes().into()
}

#[inline(always)]
fn word(b: &aes::Block) -> u128 {
    u128::from_le_bytes((*b).into())
}

// Labels and tweaks are little-endian blocks; on x86 these are plain moves.
#[inline(always)]
fn of_label(l: Label) -> u128 {
    u128::from_le_bytes(l.to_bytes())
}

#[inline(always)]
fn of_tweak(t: Tweak) -> u128 {
    u128::from_le_bytes(t.to_bytes())
}

#[inline(always)]
fn to_label(x: u128) -> Label {
    Label::from_bytes(x.to_le_bytes())
}

impl Hasher {
    /// H(x_k, t_k) for N inputs, two batched AES calls (the garbler hashes four per AND
    /// gate, the evaluator two), without allocating.
    #[inline]
    pub fn hash<const N: usize>(&self, xs: [Label; N], ts: [Tweak; N]) -> [Label; N] {
        let mut blocks: [aes::Block; N] = std::array::from_fn(|k| block(of_label(xs[k])));
        self.aes.encrypt_blocks(&mut blocks);
        let px: [u128; N] = std::array::from_fn(|k| word(&blocks[k]));
        for k in 0..N {
            blocks[k] = block(px[k] ^ of_tweak(ts[k]));
        }
        self.aes.encrypt_blocks(&mut blocks);
        std::array::from_fn(|k| to_label(word(&blocks[k]) ^ px[k]))
    }

    /// H(xs[k], ts[k]) into `out[k]` for up to [`MAX_BATCH`] inputs in two AES calls: many
    /// circuits garbled in lockstep fill AES-NI's pipeline, which four blocks do not.
    #[inline]
    pub fn hash_slice(&self, xs: &[Label], ts: &[Tweak], out: &mut [Label]) {
        self.tccr_slice(xs, ts, out, of_label, of_tweak, to_label);
    }

    /// [`Hasher::hash_slice`] on bare 128-bit blocks: the OT extension's inputs are rows of
    /// its matrix and its tweaks OT indices, not labels and gate tweaks.
    #[inline]
    pub fn hash_blocks(&self, xs: &[u128], ts: &[u128], out: &mut [u128]) {
        self.tccr_slice(xs, ts, out, |x| x, |t| t, |x| x);
    }

    /// The batch hash over any 128-bit types, `x`, `t` and `back` converting to and from
    /// words; pi(x) is held in `out` between the two AES calls.
    #[inline(always)]
    fn tccr_slice<X: Copy, T: Copy>(
        &self,
        xs: &[X],
        ts: &[T],
        out: &mut [X],
        x: impl Fn(X) -> u128,
        t: impl Fn(T) -> u128,
        back: impl Fn(u128) -> X,
    ) {
        let n = xs.len();
        assert!(
            n <= MAX_BATCH && ts.len() == n && out.len() == n,
            "hash batch"
        );
        let mut blocks = [aes::Block::default(); MAX_BATCH];
        for k in 0..n {
            blocks[k] = block(x(xs[k]));
        }
        self.aes.encrypt_blocks(&mut blocks[..n]);
        for k in 0..n {
            let px = word(&blocks[k]);
            out[k] = back(px);
            blocks[k] = block(px ^ t(ts[k]));
        }
        self.aes.encrypt_blocks(&mut blocks[..n]);
        for k in 0..n {
            out[k] = back(x(out[k]) ^ word(&blocks[k]));
        }
    }
}

/// Most hashes [`Hasher::hash_slice`] computes in one call.
pub const MAX_BATCH: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn l(x: u128) -> Label {
        Label::from_bytes(x.to_le_bytes())
    }

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
        let xw = [1u128, 2, 3 << 100, u128::MAX];
        let tw = [0u128, 1, 2, 3];
        let xs = xw.map(l);
        let ts = tw.map(Tweak::new);
        let four = h.hash(xs, ts);
        // A batch equals its elements hashed one by one, and the definition written out.
        for k in 0..4 {
            assert_eq!(h.hash([xs[k]], [ts[k]]), [four[k]]);
            let pi = |x: u128| {
                let mut b: aes::Block = x.to_le_bytes().into();
                Aes128::new(&FIXED_KEY.into()).encrypt_block(&mut b);
                u128::from_le_bytes(b.into())
            };
            assert_eq!(four[k], l(pi(pi(xw[k]) ^ tw[k]) ^ pi(xw[k])));
        }
        let mut many = [Label::default(); 4];
        h.hash_slice(&xs, &ts, &mut many);
        assert_eq!(many, four, "the slice form equals the array form");
        let mut words = [0u128; 4];
        h.hash_blocks(&xw, &tw, &mut words);
        assert_eq!(words.map(l), four, "the block form equals the label form");
        // Distinct tweaks give distinct outputs for the same label.
        let two = h.hash([l(5), l(5)], [Tweak::new(0), Tweak::new(1)]);
        assert_ne!(two[0], two[1]);
    }

    #[test]
    fn tccr_matches_known_answers() {
        // pi(pi(x) xor i) xor pi(x) with pi = AES-128 under b"c3d-gc-fixed-key", labels as
        // little-endian blocks; computed independently with `openssl enc -aes-128-ecb -nopad`.
        let kat: [(u128, u128, u128); 5] = [
            (0, 0, 0xa6205729e77283014529ec82dac47aa2),
            (1, 0, 0x583858c9b745741a449bce5e7d23149e),
            (0, 1, 0x198f8e7e63447a3749d8c0206c3e260a),
            (
                0x0123456789abcdef_fedcba9876543210,
                7,
                0x2e0e15efe5e80544ffc1e67b317fc33c,
            ),
            (u128::MAX, (1 << 64) + 3, 0x1270dfbc535da473253adbd15d8e0387),
        ];
        let h = Hasher::default();
        for (x, i, want) in kat {
            assert_eq!(
                h.hash([l(x)], [Tweak::new(i)])[0],
                l(want),
                "H({x:#x}, {i:#x})"
            );
            let mut out = [Label::default(); 1];
            h.hash_slice(&[l(x)], &[Tweak::new(i)], &mut out);
            assert_eq!(out[0], l(want));
            let mut word = [0u128; 1];
            h.hash_blocks(&[x], &[i], &mut word);
            assert_eq!(word[0], want);
        }
    }
}
