//! The maximum over a pooling window as a tree of comparisons (CrypTFlow2's maxpool, Rathee et
//! al., CCS 2020, section 5.4): each level pairs adjacent candidates and keeps
//!
//! ```text
//! max(a, b) = b + DReLU(a - b) (a - b),
//! ```
//!
//! one DReLU ([`super::drelu_field`]) and one multiplexer ([`super::mux`]) per pair, on shares
//! of a - b computed locally; ceil(log2 k) levels for a window of k. Exact as long as every
//! |a - b| < (p - 1) / 2, which the plan's bounds give (values within half the field). A fused
//! ReLU is one more DReLU and multiplexer on the result. Crypto core, no IO: this module says
//! which candidates meet at each level.

/// One level's pairs (indices of the candidates, a and b) and the odd one carried up, if any.
pub fn level(candidates: usize) -> (Vec<(usize, usize)>, Option<usize>) {
    let pairs = (0..candidates / 2).map(|i| (2 * i, 2 * i + 1)).collect();
    let carry = (candidates % 2 == 1).then_some(candidates - 1);
    (pairs, carry)
}

/// Levels of the tree for a window of `k` values.
pub fn depth(k: usize) -> u32 {
    k.max(1).next_power_of_two().trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drelu, mux};
    use super::*;
    use crate::field::Field;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_tree_gives_the_window_maximum_for_every_window_size() {
        let p = 2061584302081u64;
        let f = Field::new(p).unwrap();
        let bound = 1i64 << 30; // the plan keeps values far inside half the field
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        for k in [1usize, 2, 3, 4, 7, 8, 27] {
            let windows = 40;
            // Signed values, some windows all negative, some with equal maxima.
            let vals: Vec<Vec<i64>> = (0..windows)
                .map(|w| {
                    (0..k)
                        .map(|_| match w % 3 {
                            0 => -rng.random_range(1..bound),
                            1 => rng.random_range(-3..3),
                            _ => rng.random_range(-bound..bound),
                        })
                        .collect()
                })
                .collect();
            let enc = |v: i64| v.rem_euclid(p as i64) as u64;
            // Shares of every candidate: s[w][i] for party 0 and 1.
            let mut c0: Vec<Vec<u64>> = Vec::new();
            let mut c1: Vec<Vec<u64>> = Vec::new();
            for w in &vals {
                let a: Vec<u64> = w.iter().map(|_| rng.random_range(0..p)).collect();
                c1.push(w.iter().zip(&a).map(|(&v, &a)| f.sub(enc(v), a)).collect());
                c0.push(a);
            }
            let mut levels = 0;
            while c0[0].len() > 1 {
                let (pairs, carry) = level(c0[0].len());
                // Shares of a - b for every pair of every window, batched.
                let (mut d0, mut d1, mut b0, mut b1) = (vec![], vec![], vec![], vec![]);
                for w in 0..windows {
                    for &(i, j) in &pairs {
                        d0.push(f.sub(c0[w][i], c0[w][j]));
                        d1.push(f.sub(c1[w][i], c1[w][j]));
                        b0.push(c0[w][j]);
                        b1.push(c1[w][j]);
                    }
                }
                let (s0, s1) = drelu(&mut rng, p, &d0, &d1);
                let (m0, m1) = mux(&mut rng, &f, (&s0, &s1), (&d0, &d1));
                let per = pairs.len();
                for w in 0..windows {
                    let mut n0: Vec<u64> = (0..per)
                        .map(|q| f.add(b0[w * per + q], m0[w * per + q]))
                        .collect();
                    let mut n1: Vec<u64> = (0..per)
                        .map(|q| f.add(b1[w * per + q], m1[w * per + q]))
                        .collect();
                    if let Some(c) = carry {
                        n0.push(c0[w][c]);
                        n1.push(c1[w][c]);
                    }
                    c0[w] = n0;
                    c1[w] = n1;
                }
                levels += 1;
            }
            assert_eq!(levels, depth(k), "k = {k}");
            for (w, v) in vals.iter().enumerate() {
                let want = enc(*v.iter().max().unwrap());
                assert_eq!(
                    f.add(c0[w][0], c1[w][0]),
                    want,
                    "k = {k}, window {w}: {v:?}"
                );
            }
        }
    }
}
