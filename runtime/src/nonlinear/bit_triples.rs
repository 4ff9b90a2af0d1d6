//! Beaver bit triples from two random OTs and no communication (Cheetah's `_2ROT` generator,
//! Huang et al., USENIX Security 2022; the ROT-to-AND observation of CrypTFlow2, section 3).
//!
//! One bit random OT, sender (s_0, s_1) and receiver (c, s_c), shares a product: with the
//! sender's bit x = s_0 xor s_1 and the receiver's bit y = c,
//!
//! ```text
//! s_0 xor s_c = c (s_0 xor s_1) = x y.
//! ```
//!
//! Two such OTs k and k + 1 give (x_1, y_1) and (x_2, y_2) and a triple with a = x_1 xor y_2,
//! b = x_2 xor y_1: a b = x_1 x_2 xor x_1 y_1 xor y_2 x_2 xor y_2 y_1, the two outer terms local
//! to each party and the two inner ones shared by the OTs. The bits come from the lsb of the
//! TCCR hashes of [`crate::ot::cot`], so each triple uses up two COTs.

use crate::gc::hash::Hasher;
use crate::ot::cot::{CotReceiver, CotSender};

/// One party's shares of bit triples: a xor a', b xor b', c xor c' with c = a and b.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitTriples {
    /// Shares of a.
    pub a: Vec<bool>,
    /// Shares of b.
    pub b: Vec<bool>,
    /// Shares of c = a b.
    pub c: Vec<bool>,
}

fn lsb(x: u128) -> bool {
    x & 1 == 1
}

/// The COT sender's shares of `cots.v.len() / 2` triples.
pub fn sender_triples(h: &Hasher, cots: &CotSender) -> BitTriples {
    let m: Vec<(bool, bool)> = cots
        .random_ot(h)
        .into_iter()
        .map(|(m0, m1)| (lsb(m0), lsb(m1)))
        .collect();
    let mut t = BitTriples::default();
    for pair in m.chunks_exact(2) {
        let ((s0, s1), (r0, r1)) = (pair[0], pair[1]);
        let (x1, x2) = (s0 ^ s1, r0 ^ r1);
        t.a.push(x1);
        t.b.push(x2);
        // x_1 x_2 locally; the sender's shares of x_1 y_1 and x_2 y_2 are s_0 and r_0.
        t.c.push((x1 & x2) ^ s0 ^ r0);
    }
    t
}

/// The COT receiver's shares of the same triples.
pub fn receiver_triples(h: &Hasher, cots: &CotReceiver) -> BitTriples {
    let (c, m) = cots.random_ot(h);
    let mut t = BitTriples::default();
    for (cs, ms) in c.chunks_exact(2).zip(m.chunks_exact(2)) {
        let (y1, y2) = (cs[0], cs[1]);
        t.a.push(y2);
        t.b.push(y1);
        t.c.push((y1 & y2) ^ lsb(ms[0]) ^ lsb(ms[1]));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::cot::dealt;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_shares_reconstruct_to_triples_with_c_equal_to_a_and_b() {
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let n = 4000;
        let (cs, cr, _) = dealt(&mut rng, n, 7);
        let s = sender_triples(&h, &cs);
        let r = receiver_triples(&h, &cr);
        assert_eq!(s.a.len(), n / 2);
        let (mut a1, mut b1) = (0, 0);
        for i in 0..n / 2 {
            let (a, b, c) = (s.a[i] ^ r.a[i], s.b[i] ^ r.b[i], s.c[i] ^ r.c[i]);
            assert_eq!(c, a & b, "triple {i}");
            a1 += a as usize;
            b1 += b as usize;
        }
        // a and b are uniform: about half are set.
        assert!(
            (800..1200).contains(&a1) && (800..1200).contains(&b1),
            "{a1} {b1}"
        );
    }

    #[test]
    fn a_broken_correlation_gives_wrong_triples() {
        // The check above can fail: with W_i not V_i xor c_i Delta, about half the triples break.
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let delta = rng.random::<u128>() | 1;
        let v: Vec<u128> = (0..400).map(|_| rng.random::<u128>() & !1).collect();
        let w: Vec<u128> = (0..400).map(|_| rng.random()).collect();
        let s = sender_triples(&h, &CotSender { delta, v, first: 0 });
        let r = receiver_triples(&h, &CotReceiver { w, first: 0 });
        let bad = (0..200)
            .filter(|&i| (s.c[i] ^ r.c[i]) != ((s.a[i] ^ r.a[i]) & (s.b[i] ^ r.b[i])))
            .count();
        assert!(bad > 50, "{bad} of 200 wrong");
    }
}
