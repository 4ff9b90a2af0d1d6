//! The multiplexer: shares of sel x in F_p for a bit sel = s_0 xor s_1 shared by XOR and a value
//! x = x_0 + x_1 shared additively (CrypTFlow2, Rathee et al., CCS 2020, section 3.1.4), and
//! with it ReLU(x) = DReLU(x) x. Expanding sel = s_0 + s_1 - 2 s_0 s_1,
//!
//! ```text
//! sel x = s_0 x_0 + s_1 x_1 + s_1 (x_0 (1 - 2 s_0)) + s_0 (x_1 (1 - 2 s_1)),
//! ```
//!
//! the first two terms local and each of the last two one additive COT ([`crate::ot::cot`]):
//! party 1 chooses s_1 against party 0's correlation x_0 (1 - 2 s_0) on the forward COTs
//! (party 0, the server, holds Delta), and party 0 chooses s_0 against party 1's x_1 (1 - 2 s_1)
//! on COTs of the reverse instance (party 1 holds Delta). Traffic per element: a fix bit and a
//! field element each way. Crypto core, no IO.

use crate::field::Field;

/// The correlation a party offers in its COT: x (1 - 2 s) mod p, that is x or -x.
pub fn correlation(f: &Field, s: &[bool], x: &[u64]) -> Vec<u64> {
    s.iter()
        .zip(x)
        .map(|(&s, &x)| if s { f.neg(x) } else { f.reduce(x) })
        .collect()
}

/// A party's share of sel x from its own bits and value share, the share it keeps as COT
/// sender (`-r`, passed as `r`) and the one it got as COT receiver (`t`).
pub fn combine(f: &Field, s: &[bool], x: &[u64], r: &[u64], t: &[u64]) -> Vec<u64> {
    s.iter()
        .zip(x)
        .zip(r.iter().zip(t))
        .map(|((&s, &x), (&r, &t))| {
            let own = if s { f.reduce(x) } else { 0 };
            f.add(f.sub(own, r), t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{drelu, mux};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_multiplexer_gives_sel_times_x() {
        let p = 2061584302081u64;
        let f = Field::new(p).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        let n = 500;
        let s0: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let s1: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let mut x: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
        x[0] = 0;
        x[1] = p - 1;
        let x0: Vec<u64> = (0..n).map(|_| rng.random_range(0..p)).collect();
        let x1: Vec<u64> = x.iter().zip(&x0).map(|(&x, &a)| f.sub(x, a)).collect();
        let (y0, y1) = mux(&mut rng, &f, (&s0, &s1), (&x0, &x1));
        for i in 0..n {
            let want = if s0[i] ^ s1[i] { x[i] } else { 0 };
            assert_eq!(f.add(y0[i], y1[i]), want, "element {i}");
        }
    }

    #[test]
    fn relu_in_the_field_is_x_below_half_p_and_zero_above() {
        for p in [2061584302081u64, 65537] {
            let f = Field::new(p).unwrap();
            let h = (p - 1) / 2;
            let mut rng = ChaCha20Rng::seed_from_u64(17);
            let mut xs: Vec<u64> = vec![0, 1, h - 1, h, h + 1, p - 2, p - 1];
            xs.extend((0..200).map(|_| rng.random_range(0..p)));
            let x0: Vec<u64> = xs.iter().map(|_| rng.random_range(0..p)).collect();
            let x1: Vec<u64> = xs.iter().zip(&x0).map(|(&x, &a)| f.sub(x, a)).collect();
            let (d0, d1) = drelu(&mut rng, p, &x0, &x1);
            let (y0, y1) = mux(&mut rng, &f, (&d0, &d1), (&x0, &x1));
            for (i, &x) in xs.iter().enumerate() {
                // Clear reference: the signed value's ReLU, back in the field.
                let want = if x <= h { x } else { 0 };
                assert_eq!(f.add(y0[i], y1[i]), want, "p {p}: relu({x})");
            }
        }
    }
}
