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
pub trait Coeff: Copy + BitXorAssign + private::Sealed {}

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

    /// out ^= B inp.
    fn expand<T: Coeff>(&self, inp: &[T], out: &mut [T]) {
        let n = inp.len();
        let seed = CODE_SEED ^ EXPANDER_SEED_MASK;
        let uni = self.expander_weight / 2;
        let reg = self.expander_weight - uni;
        let step = n / reg;
        let mut uni_gen = IndexGen::new(seed, n);
        let mut reg_gen = IndexGen::new(seed ^ REGULAR_SEED_MASK, step);
        for o in out.iter_mut() {
            for j in 0..reg {
                *o ^= inp[reg_gen.get() + j * step];
            }
            for _ in 0..uni {
                *o ^= inp[uni_gen.get()];
            }
        }
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
            for (k, t) in band[..ACC_SIZE].iter_mut().enumerate() {
                *t ^= xi.select((window >> k) & 1);
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
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    const CODES: [DualCode; 2] = [DualCode::ExConv7x24, DualCode::ExConv21x24];

    fn random_bits(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
        (0..len).map(|_| rng.random::<u8>() & 1).collect()
    }

    fn encode_bits(code: &ExConvCode, v: &[u8]) -> Vec<u8> {
        let mut e = v.to_vec();
        code.dual_encode_bits(&mut e).unwrap();
        e.truncate(code.message_size());
        e
    }

    /// H (n rows, N columns) from the encodings of the unit vectors, column by column.
    fn matrix_from_unit_vectors(code: &ExConvCode) -> Vec<Vec<u8>> {
        let (n, big_n) = (code.message_size(), code.code_size());
        let mut h = vec![vec![0u8; big_n]; n];
        for c in 0..big_n {
            let mut unit = vec![0u8; big_n];
            unit[c] = 1;
            for (r, bit) in encode_bits(code, &unit).into_iter().enumerate() {
                h[r][c] = bit;
            }
        }
        h
    }

    fn mat_vec(h: &[Vec<u8>], v: &[u8]) -> Vec<u8> {
        h.iter()
            .map(|row| {
                let mut acc = 0u8;
                for (a, b) in row.iter().zip(v) {
                    acc ^= a & b;
                }
                acc
            })
            .collect()
    }

    fn mat_mul(a: &[Vec<u8>], b: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let cols = b[0].len();
        a.iter()
            .map(|row| {
                (0..cols)
                    .map(|c| {
                        let mut acc = 0u8;
                        for (k, &x) in row.iter().enumerate() {
                            acc ^= x & b[k][c];
                        }
                        acc
                    })
                    .collect()
            })
            .collect()
    }

    fn identity(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|r| (0..n).map(|c| u8::from(r == c)).collect())
            .collect()
    }

    /// The targets of each accumulator step, read off the seed's buffer from the description:
    /// step i takes the bits of bytes i, i+1, i+2 of the current buffer (refilled when fewer
    /// than 3 are left), bit k for position i + 1 + k, and always position i + 25, mod size.
    fn accumulator_targets(seed: u128, size: usize) -> Vec<Vec<usize>> {
        let mut rng = AesBuf::new(seed);
        let mut offset = 0;
        let mut steps = Vec::new();
        for i in 0..size {
            if offset + 3 > 4096 {
                rng.refill();
                offset = 0;
            }
            let window = u32::from_le_bytes([
                rng.bytes[offset],
                rng.bytes[offset + 1],
                rng.bytes[offset + 2],
                0,
            ]);
            let mut t: Vec<usize> = (0..24)
                .filter(|k| window >> k & 1 == 1)
                .map(|k| (i + 1 + k) % size)
                .collect();
            t.push((i + 25) % size);
            steps.push(t);
            offset += 1;
        }
        steps
    }

    /// One accumulator run as a dense matrix: the product E_{size-1} ... E_0 with
    /// E_i = I + sum over targets j of e_j e_i^T.
    fn accumulator_matrix(seed: u128, size: usize) -> Vec<Vec<u8>> {
        let mut a = identity(size);
        for (i, targets) in accumulator_targets(seed, size).into_iter().enumerate() {
            let mut e = identity(size);
            for j in targets {
                assert_ne!(j, i);
                e[j][i] ^= 1;
            }
            a = mat_mul(&e, &a);
        }
        a
    }

    /// The expander's draws per row: (regular draws, uniform draws).
    fn expander_draws(n: usize, weight: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
        let seed = CODE_SEED ^ EXPANDER_SEED_MASK;
        let uni = weight / 2;
        let reg = weight - uni;
        let step = n / reg;
        let mut ug = IndexGen::new(seed, n);
        let mut rg = IndexGen::new(seed ^ REGULAR_SEED_MASK, step);
        (0..n)
            .map(|_| {
                let r = (0..reg).map(|j| rg.get() + j * step).collect();
                let u = (0..uni).map(|_| ug.get()).collect();
                (r, u)
            })
            .collect()
    }

    fn expander_matrix(n: usize, weight: usize) -> Vec<Vec<u8>> {
        expander_draws(n, weight)
            .into_iter()
            .map(|(r, u)| {
                let mut row = vec![0u8; n];
                for c in r.into_iter().chain(u) {
                    row[c] ^= 1;
                }
                row
            })
            .collect()
    }

    #[test]
    fn the_division_free_reduction_is_the_remainder() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        for m in [
            1u64,
            2,
            3,
            7,
            64,
            1000,
            (1 << 21) / 4,
            (1 << 21) / 11,
            u64::MAX,
            1 << 63,
        ] {
            let md = Modulus::new(m);
            for v in [0, 1, m - 1, m, m.wrapping_add(1), u64::MAX, u64::MAX - 1] {
                assert_eq!(md.reduce(v), v % m, "{v} mod {m}");
            }
            for _ in 0..10_000 {
                let v: u64 = rng.random();
                assert_eq!(md.reduce(v), v % m, "{v} mod {m}");
            }
        }
    }

    #[test]
    fn encoding_is_linear_over_xor() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for code in CODES {
            let c = ExConvCode::new(300, code).unwrap();
            for _ in 0..4 {
                let a: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
                let b: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
                let mut ab: Vec<u128> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
                let (mut ea, mut eb) = (a.clone(), b.clone());
                c.dual_encode(&mut ea).unwrap();
                c.dual_encode(&mut eb).unwrap();
                c.dual_encode(&mut ab).unwrap();
                for i in 0..c.message_size() {
                    assert_eq!(ab[i], ea[i] ^ eb[i]);
                }
                assert_ne!(ea[..c.message_size()], a[..c.message_size()]);
            }
        }
    }

    #[test]
    fn the_matrix_from_unit_vectors_gives_every_encoding() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for code in CODES {
            let c = ExConvCode::new(64, code).unwrap();
            let h = matrix_from_unit_vectors(&c);
            for _ in 0..32 {
                let v = random_bits(&mut rng, c.code_size());
                assert_eq!(encode_bits(&c, &v), mat_vec(&h, &v));
            }
        }
    }

    #[test]
    fn the_matrix_from_unit_vectors_is_identity_beside_expander_times_accumulators() {
        let n = 64;
        for code in CODES {
            let c = ExConvCode::new(n, code).unwrap();
            let a = mat_mul(
                &accumulator_matrix(!CODE_SEED, n),
                &accumulator_matrix(CODE_SEED, n),
            );
            let ba = mat_mul(&expander_matrix(n, c.expander_weight()), &a);
            let expected: Vec<Vec<u8>> = identity(n)
                .into_iter()
                .zip(ba)
                .map(|(mut left, right)| {
                    left.extend(right);
                    left
                })
                .collect();
            assert_eq!(matrix_from_unit_vectors(&c), expected, "{code:?}");
        }
    }

    #[test]
    fn the_block_path_is_128_bit_paths_side_by_side() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let c = ExConvCode::new(200, DualCode::ExConv7x24).unwrap();
        let lanes: Vec<Vec<u8>> = (0..128)
            .map(|_| random_bits(&mut rng, c.code_size()))
            .collect();
        let mut blocks: Vec<u128> = (0..c.code_size())
            .map(|i| (0..128).fold(0u128, |acc, l| acc | (u128::from(lanes[l][i]) << l)))
            .collect();
        c.dual_encode(&mut blocks).unwrap();
        for (l, lane) in lanes.iter().enumerate() {
            let bits = encode_bits(&c, lane);
            for i in 0..c.message_size() {
                assert_eq!((blocks[i] >> l) as u8 & 1, bits[i], "lane {l} entry {i}");
            }
        }
    }

    #[test]
    fn a_vector_zero_on_the_suffix_keeps_its_prefix() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for code in CODES {
            let c = ExConvCode::new(500, code).unwrap();
            let mut e: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
            e[c.message_size()..].fill(0);
            let before = e.clone();
            c.dual_encode(&mut e).unwrap();
            assert_eq!(e, before);
        }
    }

    #[test]
    fn a_wrong_length_or_too_short_a_code_is_refused() {
        let c = ExConvCode::new(100, DualCode::ExConv7x24).unwrap();
        for len in [0, 100, 199, 201] {
            let mut e = vec![0u128; len];
            assert_eq!(
                c.dual_encode(&mut e),
                Err(ExConvError::Length {
                    got: len,
                    expected: 200
                })
            );
            let mut b = vec![0u8; len];
            assert!(c.dual_encode_bits(&mut b).is_err());
        }
        assert_eq!(
            ExConvCode::new(MIN_MESSAGE_SIZE - 1, DualCode::ExConv21x24),
            Err(ExConvError::TooSmall(MIN_MESSAGE_SIZE - 1))
        );
        assert!(ExConvCode::new(MIN_MESSAGE_SIZE, DualCode::ExConv21x24).is_ok());
    }

    /// cryprot allows repeated indices in a row (a uniform draw may equal another uniform one or
    /// a regular one), so a row has weight w - 2 * (cancelled pairs): at most w, of w's parity,
    /// and exactly the positions drawn an odd number of times. Regular draws fall one per band.
    #[test]
    fn every_expander_row_has_the_expander_weight_less_cancelled_repeats() {
        let n = 256;
        for code in CODES {
            let c = ExConvCode::new(n, code).unwrap();
            let w = c.expander_weight();
            let reg = w - w / 2;
            let step = n / reg;
            // B from the expander alone on unit vectors, 128 columns at a time in u128 lanes.
            let mut b = vec![vec![0u8; n]; n];
            for base in (0..n).step_by(128) {
                let inp: Vec<u128> = (0..n)
                    .map(|col| {
                        if (base..base + 128).contains(&col) {
                            1u128 << (col - base)
                        } else {
                            0
                        }
                    })
                    .collect();
                let mut out = vec![0u128; n];
                c.expand(&inp, &mut out);
                for (r, o) in out.iter().enumerate() {
                    for l in 0..128 {
                        b[r][base + l] = (o >> l) as u8 & 1;
                    }
                }
            }
            let draws = expander_draws(n, w);
            let mut full = 0;
            for (row, (regular, uniform)) in b.iter().zip(&draws) {
                let weight: usize = row.iter().map(|&x| usize::from(x)).sum();
                assert!(weight <= w && weight % 2 == w % 2, "weight {weight} of {w}");
                for (j, &r) in regular.iter().enumerate() {
                    assert!((j * step..(j + 1) * step).contains(&r));
                }
                let mut odd = vec![0u8; n];
                for &x in regular.iter().chain(uniform) {
                    odd[x] ^= 1;
                }
                assert_eq!(row, &odd);
                full += usize::from(weight == w);
            }
            assert!(full > n / 2, "{full} rows of full weight out of {n}");
        }
    }

    /// Vectors printed by cryprot-codes 0.2.5 (default features, x86-64): `ExConvCode` with its
    /// default configuration and `expander_weight` 7 or 21, `dual_encode` on u8 entries
    /// `(i * 2654435761 mod 2^32) >> 24` and on blocks `(i + 1) * 0x9E37..C835 mod 2^128`.
    #[test]
    fn the_output_is_cryprot_codes_output_bit_for_bit() {
        let cases: [(usize, DualCode, &str, u64, [u128; 3]); 3] = [
            (
                64,
                DualCode::ExConv7x24,
                "8b11a7899eff86e51aa0cc32db0ef1a6ad4effd94adf720f50c1e8718247820b\
                 7ee3febceb0965078704cf93b65c13897a86c472492eaeaa8465943b258f0b04",
                0xb0e6b745a8458525,
                [
                    0x0fa0b4960b20c9ace38b409c8b74dfcb,
                    0xa640986f9ef8e6a0fa515b6160fc3547,
                    0x62ee94ccab08b2a92c3a911741620562,
                ],
            ),
            (
                64,
                DualCode::ExConv21x24,
                "2cb925411b0e5be51a73e18df545b913a23501905f08a7dfd850eb5f447bd58b\
                 b372089fef788de4c597ff92e9e93b72a5666e579b63a8d687287d5c385a5852",
                0x1f9dc6578c238dcd,
                [
                    0x23953afc3d4038a4fe49399fd58215f8,
                    0x5d52373309d16f8e940cb2f858723596,
                    0x08aafe64e61b1bd2632e0f4a5a7b3e8e,
                ],
            ),
            (
                5000,
                DualCode::ExConv7x24,
                "82796f70e8b6eec690786ab03400cc1c1d2fd21e1dd8a7c088c6a236e6dd95db\
                 752e03d148f9590d3533088285f0c3c31ccfcc5498fc796453a5e99353351385",
                0x3b8e8222e3aa8875,
                [
                    0x29365078c55f0abb228f977c2400d1ac,
                    0x80e10d694ec793ec92374ed71533d85f,
                    0xb2b2c6097f212dfe390d82f7df7c5d17,
                ],
            ),
        ];
        for (m, code, head, fold, [first, last, mix]) in cases {
            let c = ExConvCode::new(m, code).unwrap();
            let mut e: Vec<u8> = (0..2 * m)
                .map(|i| ((i as u32).wrapping_mul(2654435761) >> 24) as u8)
                .collect();
            c.dual_encode_bits(&mut e).unwrap();
            let hex: String = e[..64].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, head, "{m} {code:?}");
            let mut f = 0u64;
            for (i, b) in e[..m].iter().enumerate() {
                f = f
                    .wrapping_mul(1099511628211)
                    .wrapping_add(u64::from(*b) ^ i as u64);
            }
            assert_eq!(f, fold, "{m} {code:?}");

            let mut eb: Vec<u128> = (0..2 * m)
                .map(|i| ((i as u128) + 1).wrapping_mul(0x9E3779B97F4A7C15F39CC0605CEDC835))
                .collect();
            c.dual_encode(&mut eb).unwrap();
            let mut x = 0u128;
            for b in &eb[..m] {
                x ^= b.rotate_left(1) ^ x.rotate_left(7);
            }
            assert_eq!([eb[0], eb[m - 1], x], [first, last, mix], "{m} {code:?}");
        }
    }

    /// `cargo test --release -p c3d-runtime --lib exconv -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn encode_throughput_at_two_to_the_21() {
        let c = ExConvCode::new(1 << 21, DualCode::ExConv7x24).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut e: Vec<u128> = (0..c.code_size()).map(|_| rng.random()).collect();
        let t = std::time::Instant::now();
        c.dual_encode(&mut e).unwrap();
        let s = t.elapsed().as_secs_f64();
        let (prefix, suffix) = e.split_at_mut(c.message_size());
        let t = std::time::Instant::now();
        accumulate(suffix, CODE_SEED);
        let acc = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        c.expand(suffix, prefix);
        let exp = t.elapsed().as_secs_f64();
        println!(
            "ExConv7x24 n = 2^21: {:.1} ms, {:.1} M outputs/s (one accumulator run {:.1} ms, \
             expander {:.1} ms)",
            s * 1e3,
            (1u64 << 21) as f64 / s / 1e6,
            acc * 1e3,
            exp * 1e3
        );
    }
}
