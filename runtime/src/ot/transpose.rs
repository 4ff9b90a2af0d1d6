//! Bit-matrix transposition for OT extension: 128 x 128 blocks by recursive block swaps.

/// Transposes a 128 x 128 bit matrix in place: bit `b` of row `i` moves to bit `i` of row `b`.
pub fn transpose128(a: &mut [u128; 128]) {
    let mut j = 64usize;
    // Bits whose index has bit j clear: the "low half" of every 2j-bit group.
    let mut m: u128 = (1u128 << 64) - 1;
    while j != 0 {
        for i in 0..128 {
            if i & j == 0 {
                let t = ((a[i] >> j) ^ a[i + j]) & m;
                a[i] ^= t << j;
                a[i + j] ^= t;
            }
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Transposes `cols` (128 columns, each `n` bits packed LSB-first in u128 words) into `n`
/// rows of 128 bits: bit `i` of row `j` is bit `j` of column `i`.
pub fn columns_to_rows(cols: &[Vec<u128>; 128], n: usize) -> Vec<u128> {
    use rayon::prelude::*;
    let words = n.div_ceil(128);
    let mut rows = vec![0u128; words * 128];
    // One 128 x 128 block per word, blocks in parallel.
    rows.par_chunks_mut(128).enumerate().for_each(|(w, block)| {
        let mut b = [0u128; 128];
        for (i, c) in cols.iter().enumerate() {
            b[i] = c[w];
        }
        transpose128(&mut b);
        block.copy_from_slice(&b);
    });
    rows.truncate(n);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn transpose_matches_bit_by_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a: [u128; 128] = std::array::from_fn(|_| rng.random());
        let mut t = a;
        transpose128(&mut t);
        for (i, ai) in a.iter().enumerate() {
            for (b, tb) in t.iter().enumerate() {
                assert_eq!((ai >> b) & 1, (tb >> i) & 1, "bit ({i},{b})");
            }
        }
        transpose128(&mut t);
        assert_eq!(t, a, "transposing twice is the identity");
    }

    #[test]
    fn columns_to_rows_handles_ragged_lengths() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let n = 300;
        let cols: [Vec<u128>; 128] =
            std::array::from_fn(|_| (0..3).map(|_| rng.random()).collect());
        let rows = columns_to_rows(&cols, n);
        assert_eq!(rows.len(), n);
        for (j, r) in rows.iter().enumerate() {
            for (i, c) in cols.iter().enumerate() {
                assert_eq!((r >> i) & 1, (c[j / 128] >> (j % 128)) & 1);
            }
        }
    }
}
