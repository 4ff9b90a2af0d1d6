//! The Expand-Convolute code of silent OT's dual-LPN compression (Raghuraman, Rindal, Tanguy,
//! "Expand-Convolute Codes for Pseudorandom Correlation Generators from LPN", Crypto 2023,
//! eprint 2023/882): a port of `ex_conv` in the MIT-licensed crate cryprot-codes 0.2.5, itself a
//! port of libOTe's `ExConvCode`.
//!
//! The noisy vector e has N = 2n entries, split as e = (p, s) with n entries each. The parity
//! check matrix is H = [I_n | B A] over F2, and the dual encoding is
//!
//! ```text
//! dual_encode(e) = H e = p xor B (A s),
//! ```
//!
//! written into e[..n]. A (the convolution) is the n x n accumulator run twice, first with the
//! code's seed and then with its complement; one run is, for i = 0, 1, ..., n - 1 in turn,
//!
//! ```text
//! s[i + 1 + k] ^= s[i]   for each k < 24 whose coefficient bit is drawn 1,
//! s[i + 25]    ^= s[i]   always (the fixed diagonal at distance accumulator size + 1),
//! ```
//!
//! indices modulo n (the last 25 steps wrap around onto the start, which was already swept).
//! The 24 coefficient bits of step i are the 3 bytes at byte offset i (modulo the refills below)
//! of the seed's pseudorandom buffer: consecutive steps share overlapping windows, as in
//! cryprot and libOTe. B (the expander) has n rows of weight w (7 or 21): regular, so each row
//! XORs one position drawn in each of the r = w - floor(w/2) bands [j step, j step + step),
//! step = n / r, and then floor(w/2) positions drawn uniformly in 0..n. Draws are uniform u64
//! reduced modulo the range, so they may repeat: a uniform draw may equal another one or a
//! regular one and cancel it, and a row's weight is then w minus twice the cancellations (as in
//! cryprot and libOTe). Regular draws never collide with each other (distinct bands).
//!
//! Public randomness, reproduced byte for byte from cryprot-codes 0.2.5 (its default build):
//! the buffer of a seed is 256 blocks AES-128_seed(0), ..., AES-128_seed(255) (the counter in
//! little-endian bytes, cryprot-core's `AesRng`), and a refill replaces block i, for each group
//! of 8 in order, by one AES encryption round of it keyed with block i - 8 of the buffer as it
//! then stands (the first group keyed with the last, not yet refilled, group): cryprot's
//! `FastAesRng`. The accumulator refills once fewer than 3 unread bytes are left; the expander's
//! two index streams (seed xor 0xcc..cc for the uniform draws, that xor (23421341, 342342134)
//! as two u64 for the regular ones) refill before their first draw and after every 512 u64.
//! The code seed is cryprot's default, the u64 pair (56756745976768754, 9996754675674599).
//!
//! What differs from cryprot-codes 0.2.5: nothing in the output (the tests check it against
//! vectors produced by cryprot's `dual_encode` for u8 and for blocks); it is safe scalar Rust
//! (no SSE path), blocks are `u128`, a wrong length or too short a code is a typed error rather
//! than a panic (cryprot underflows for n < 25, and at n = 25 the wrapped diagonal XORs a
//! position into itself), and only the configuration used here is offered
//! (code size 2n, accumulator 24, accumulated twice, regular expander). What differs from
//! libOTe: cryprot's default build draws the expander's indices row by row, while libOTe (and
//! cryprot's `libote-compat` feature) draws them for 8 rows at a time, regular band by band then
//! uniform, so the same seed gives libOTe a different B; A is the same as libOTe's.
//!
//! Invariants: e has exactly 2n entries; n >= [`MIN_MESSAGE_SIZE`], so no accumulator step
//! targets its own position; the code is linear, so blocks (u128) are 128 bit vectors encoded
//! side by side.

use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::BitXorAssign;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes128;

use super::lpn_params::DualCode;

/// Width of the accumulator's random band.
const ACC_SIZE: usize = 24;

/// Bytes of coefficients one accumulator step reads (3, read as one little-endian window).
const ACC_BYTES: usize = ACC_SIZE.div_ceil(8);

/// Blocks in a pseudorandom buffer.
const BUF_BLOCKS: usize = 256;

/// The smallest message size accepted: the suffix must be longer than the accumulator's reach
/// (ACC_SIZE + 1), or a wrapped step would XOR a position into itself.
pub const MIN_MESSAGE_SIZE: usize = ACC_SIZE + 2;

/// A block of cryprot-core from its two u64 halves, as its little-endian bytes.
const fn block(lo: u64, hi: u64) -> u128 {
    (lo as u128) | ((hi as u128) << 64)
}

/// cryprot's default code seed.
const CODE_SEED: u128 = block(56756745976768754, 9996754675674599);

/// XORed into the code seed for the expander's uniform draws (cryprot `CC_BLOCK`).
const EXPANDER_SEED_MASK: u128 = u128::from_le_bytes([0xcc; 16]);

/// XORed into the expander seed for its regular draws.
const REGULAR_SEED_MASK: u128 = block(23421341, 342342134);

/// Why a code cannot be built or a vector cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExConvError {
    /// The vector is not of the code's length 2n.
    #[error("the noisy vector has {got} entries, the code takes {expected}")]
    Length {
        /// Its length.
        got: usize,
        /// The code size.
        expected: usize,
    },
    /// The message size is below [`MIN_MESSAGE_SIZE`].
    #[error("message size {0} is below the minimum {min}", min = MIN_MESSAGE_SIZE)]
    TooSmall(usize),
}

/// The coefficient types the code encodes: a block of 128 bit lanes, or a byte (8 lanes, or one
/// bit kept in the low lane). Sealed.
pub trait Coeff: Copy + Send + Sync + BitXorAssign + private::Sealed {}

impl Coeff for u128 {}
impl Coeff for u8 {}

mod private {
    pub trait Sealed: Sized {
        /// `self` if `bit` (0 or 1) is 1, else zero, without a branch.
        fn select(self, bit: u32) -> Self;
    }
    impl Sealed for u128 {
        fn select(self, bit: u32) -> u128 {
            self & 0u128.wrapping_sub(u128::from(bit))
        }
    }
    impl Sealed for u8 {
        fn select(self, bit: u32) -> u8 {
            self & 0u8.wrapping_sub(bit as u8)
        }
    }
}

/// cryprot's `FastAesRng`: a buffer of 256 AES-CTR blocks, refilled by one AES round.
struct AesBuf {
    bytes: Vec<u8>,
}

impl AesBuf {
    fn new(seed: u128) -> AesBuf {
        let aes = Aes128::new(&seed.to_le_bytes().into());
        let mut blocks: Vec<aes::Block> = (0..BUF_BLOCKS as u128)
            .map(|i| i.to_le_bytes().into())
            .collect();
        aes.encrypt_blocks(&mut blocks);
        AesBuf {
            bytes: blocks.iter().flat_map(|b| b.iter().copied()).collect(),
        }
    }

    fn block(&self, i: usize) -> aes::Block {
        let mut b = aes::Block::default();
        b.copy_from_slice(&self.bytes[16 * i..16 * i + 16]);
        b
    }

    fn refill(&mut self) {
        for i in 0..BUF_BLOCKS {
            // Block i - 8 is already refilled unless i < 8 (then the last group, still old).
            let key = self.block((i + BUF_BLOCKS - 8) % BUF_BLOCKS);
            let mut b = self.block(i);
            aes::hazmat::cipher_round(&mut b, &key);
            self.bytes[16 * i..16 * i + 16].copy_from_slice(&b);
        }
    }
}

/// Exact reduction modulo a fixed m > 0 without a division (Barrett, as cryprot's `fastdivide`
/// gives the exact quotient): with inv = floor(2^64 / m), the estimate floor(v inv / 2^64) is the
/// quotient or one below it, so one conditional subtraction finishes.
#[derive(Clone, Copy)]
struct Modulus {
    m: u64,
    inv: u128,
}

impl Modulus {
    fn new(m: u64) -> Modulus {
        assert!(m > 0, "modulus 0");
        Modulus {
            m,
            inv: (1u128 << 64) / u128::from(m),
        }
    }

    fn reduce(self, v: u64) -> u64 {
        let q = ((u128::from(v) * self.inv) >> 64) as u64;
        let r = v - q * self.m;
        if r >= self.m {
            r - self.m
        } else {
            r
        }
    }
}

/// cryprot's `ExpanderModd`: uniform indices below `m` from a refilled [`AesBuf`].
struct IndexGen {
    rng: AesBuf,
    m: Modulus,
    vals: Vec<u64>,
    idx: usize,
}

impl IndexGen {
    fn new(seed: u128, m: usize) -> IndexGen {
        let mut g = IndexGen {
            rng: AesBuf::new(seed),
            m: Modulus::new(m as u64),
            vals: Vec::with_capacity(2 * BUF_BLOCKS),
            idx: 0,
        };
        g.refill();
        g
    }

    fn refill(&mut self) {
        self.rng.refill();
        self.vals.clear();
        let m = self.m;
        self.vals.extend(
            self.rng
                .bytes
                .chunks_exact(8)
                .map(|c| m.reduce(u64::from_le_bytes(c.try_into().expect("8 bytes")))),
        );
        self.idx = 0;
    }

    fn get(&mut self) -> usize {
        if self.idx == self.vals.len() {
            self.refill();
        }
        let v = self.vals[self.idx];
        self.idx += 1;
        v as usize
    }
}

/// The Expand-Convolute code for one message size, with cryprot's default seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExConvCode {
    message_size: usize,
    expander_weight: usize,
}

impl ExConvCode {
    /// The code compressing 2 `message_size` entries into `message_size`, with `code`'s
    /// expander weight (7 or 21). Refuses a message size below [`MIN_MESSAGE_SIZE`].
    pub fn new(message_size: usize, code: DualCode) -> Result<ExConvCode, ExConvError> {
        if message_size < MIN_MESSAGE_SIZE {
            return Err(ExConvError::TooSmall(message_size));
        }
        let expander_weight = match code {
            DualCode::ExConv7x24 => 7,
            DualCode::ExConv21x24 => 21,
        };
        Ok(ExConvCode {
            message_size,
            expander_weight,
        })
    }

    /// n, the length of the output.
    pub fn message_size(&self) -> usize {
        self.message_size
    }

    /// N = 2n, the length of the noisy vector.
    pub fn code_size(&self) -> usize {
        2 * self.message_size
    }

    /// The row weight of the expander B.
    pub fn expander_weight(&self) -> usize {
        self.expander_weight
    }

    /// Replaces `e[..n]` by H e (blocks: 128 bit vectors side by side); `e[n..]` is left as the
    /// accumulated suffix A e[n..]. Refuses a length other than [`Self::code_size`].
    pub fn dual_encode(&self, e: &mut [u128]) -> Result<(), ExConvError> {
        self.dual_encode_any(e)
    }

    /// [`Self::dual_encode`] on bytes: each byte is 8 bit vectors side by side, so a vector of
    /// 0/1 bytes is one bit vector.
    pub fn dual_encode_bits(&self, e: &mut [u8]) -> Result<(), ExConvError> {
        self.dual_encode_any(e)
    }

    /// [`Self::dual_encode`] for any [`Coeff`].
    pub fn dual_encode_any<T: Coeff>(&self, e: &mut [T]) -> Result<(), ExConvError> {
        if e.len() != self.code_size() {
            return Err(ExConvError::Length {
                got: e.len(),
                expected: self.code_size(),
            });
        }
        let (prefix, suffix) = e.split_at_mut(self.message_size);
        accumulate(suffix, CODE_SEED);
        accumulate(suffix, !CODE_SEED);
        self.expand(suffix, prefix);
        Ok(())
    }

    /// The expander's indices, `expander_weight` per output in the generator's order (regular
    /// then uniform): public, the same every round, so made once per message size and kept
    /// (4 bytes an index: 56 MiB at n = 2^21, w = 7).
    fn expander_indices(&self) -> std::sync::Arc<Vec<u32>> {
        type Cache = std::sync::Mutex<HashMap<(usize, usize), std::sync::Arc<Vec<u32>>>>;
        static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
        let key = (self.message_size, self.expander_weight);
        let cache = CACHE.get_or_init(Default::default);
        if let Some(t) = cache.lock().expect("index cache").get(&key) {
            return t.clone();
        }
        let n = self.message_size;
        let seed = CODE_SEED ^ EXPANDER_SEED_MASK;
        let uni = self.expander_weight / 2;
        let reg = self.expander_weight - uni;
        let step = n / reg;
        let mut uni_gen = IndexGen::new(seed, n);
        let mut reg_gen = IndexGen::new(seed ^ REGULAR_SEED_MASK, step);
        let mut t = Vec::with_capacity(n * self.expander_weight);
        for _ in 0..n {
            for j in 0..reg {
                t.push((reg_gen.get() + j * step) as u32);
            }
            for _ in 0..uni {
                t.push(uni_gen.get() as u32);
            }
        }
        let t = std::sync::Arc::new(t);
        cache.lock().expect("index cache").insert(key, t.clone());
        t
    }

    /// out ^= B inp, outputs in parallel.
    fn expand<T: Coeff>(&self, inp: &[T], out: &mut [T]) {
        let w = self.expander_weight;
        let t = self.expander_indices();
        out.par_chunks_mut(1 << 12)
            .zip(t.par_chunks(w << 12))
            .for_each(|(outs, idx)| {
                for (o, ix) in outs.iter_mut().zip(idx.chunks_exact(w)) {
                    for &i in ix {
                        *o ^= inp[i as usize];
                    }
                }
            });
    }
}

/// One accumulator run over `x` with the coefficients of `seed`.
fn accumulate<T: Coeff>(x: &mut [T], seed: u128) {
    let size = x.len();
    let mut rng = AesBuf::new(seed);
    let mut pos = 0;
    for i in 0..size {
        if rng.bytes.len() - pos < ACC_BYTES {
            rng.refill();
            pos = 0;
        }
        let c = &rng.bytes[pos..pos + ACC_BYTES];
        let window = u32::from(c[0]) | (u32::from(c[1]) << 8) | (u32::from(c[2]) << 16);
        let xi = x[i];
        if i + ACC_SIZE + 1 < size {
            // No wrap-around: the band and the diagonal are x[i + 1..=i + 25].
            let band = &mut x[i + 1..i + 2 + ACC_SIZE];
            // About half the 24 coefficients are set: visit those only.
            let mut bits = window & ((1 << ACC_SIZE) - 1);
            while bits != 0 {
                band[bits.trailing_zeros() as usize] ^= xi;
                bits &= bits - 1;
            }
            band[ACC_SIZE] ^= xi;
        } else {
            let mut j = i + 1;
            for k in 0..=ACC_SIZE {
                if j >= size {
                    j -= size;
                }
                if k == ACC_SIZE {
                    x[j] ^= xi;
                } else {
                    x[j] ^= xi.select((window >> k) & 1);
                }
                j += 1;
            }
        }
        pos += 1;
    }
}

#[cfg(test)]
mod tests;
