//! The millionaire's protocol of CrypTFlow2 (Rathee et al., CCS 2020, section 3.1.1) with
//! 4-bit digits, as Cheetah runs it on silent OT: XOR shares of [a < b] for the sender's a and
//! the receiver's b, both below 2^bits.
//!
//! Each digit is one 1-out-of-16 OT ([`crate::ot::one_of_n`]) in which the sender masks, for
//! every possible receiver digit k, the two bits [a_i < k] and [a_i = k] with its own random
//! shares; the receiver's output is its share of (lt_i, eq_i). The digits then combine in a
//! tree, least significant pairs first,
//!
//! ```text
//! lt = lt_hi xor (eq_hi and lt_lo),   eq = eq_hi and eq_lo,
//! ```
//!
//! two ANDs ([`super::and_gates`]) per combination and one exchange per tree level. The
//! top digit is padded with zero bits, which changes no comparison. Crypto core, no IO: the
//! caller carries the tables and the openings.

/// Digit width of the leaf OTs.
pub const DIGIT_BITS: u32 = 4;

/// Digits of a `bits`-bit comparison.
pub fn digits(bits: u32) -> usize {
    bits.div_ceil(DIGIT_BITS) as usize
}

/// The digits of `v`, least significant first.
pub fn split(v: u64, bits: u32) -> Vec<u8> {
    (0..digits(bits))
        .map(|i| ((v >> (DIGIT_BITS as usize * i)) & 0xF) as u8)
        .collect()
}

/// The sender's leaf OT messages for its values (16 two-bit messages per digit, bit 0 the lt
/// share and bit 1 the eq share) and its own shares (lt, eq) per digit, from random `masks`
/// (two bits per digit).
pub fn sender_leaves(
    a: &[u64],
    bits: u32,
    masks: &[(bool, bool)],
) -> (Vec<Vec<u8>>, Vec<(bool, bool)>) {
    let q = digits(bits);
    assert_eq!(masks.len(), a.len() * q, "two mask bits per digit");
    let mut messages = Vec::with_capacity(masks.len());
    for (i, &v) in a.iter().enumerate() {
        for (d, &ad) in split(v, bits).iter().enumerate() {
            let (ml, me) = masks[i * q + d];
            messages.push(
                (0..16u8)
                    .map(|k| ((ad < k) ^ ml) as u8 | ((((ad == k) ^ me) as u8) << 1))
                    .collect(),
            );
        }
    }
    (messages, masks.to_vec())
}

/// The receiver's shares (lt, eq) per digit from its leaf OT outputs.
pub fn receiver_leaves(outputs: &[u8]) -> Vec<(bool, bool)> {
    outputs.iter().map(|&o| (o & 1 == 1, o & 2 == 2)).collect()
}

/// One tree level: the AND inputs (x, y) of each pair of adjacent digits (hi, lo) of every
/// value: (eq_hi, lt_lo) and (eq_hi, eq_lo). An odd digit out at the top passes through.
pub fn level_inputs(shares: &[(bool, bool)], width: usize) -> (Vec<bool>, Vec<bool>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for value in shares.chunks(width) {
        for pair in value.chunks_exact(2) {
            let (lo, hi) = (pair[0], pair[1]);
            x.extend([hi.1, hi.1]);
            y.extend([lo.0, lo.1]);
        }
    }
    (x, y)
}

/// The next level's shares from the AND outputs of [`level_inputs`] (in its order).
pub fn level_outputs(shares: &[(bool, bool)], width: usize, ands: &[bool]) -> Vec<(bool, bool)> {
    let mut out = Vec::new();
    let mut k = 0;
    for value in shares.chunks(width) {
        for pair in value.chunks(2) {
            if pair.len() == 2 {
                let hi = pair[1];
                out.push((hi.0 ^ ands[k], ands[k + 1]));
                k += 2;
            } else {
                out.push(pair[0]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::hash::Hasher;
    use crate::nonlinear::and_gates::{finish, open};
    use crate::nonlinear::bit_triples::{receiver_triples, sender_triples};
    use crate::ot::cot::{CotReceiver, CotSender};
    use crate::ot::one_of_n::{receiver_fix, receiver_outputs, sender_tables};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn dealt(rng: &mut ChaCha20Rng, n: usize, first: u64) -> (CotSender, CotReceiver) {
        let delta = rng.random::<u128>() | 1;
        let v: Vec<u128> = (0..n).map(|_| rng.random::<u128>() & !1).collect();
        let w = v
            .iter()
            .map(|&v| if rng.random() { v ^ delta } else { v })
            .collect();
        (CotSender { delta, v, first }, CotReceiver { w, first })
    }

    /// Both parties in one process: shares of [a_i < b_i] for every i.
    fn compare(rng: &mut ChaCha20Rng, a: &[u64], b: &[u64], bits: u32) -> Vec<bool> {
        let h = Hasher::default();
        let q = digits(bits);
        let n = a.len();
        // Leaf OTs: 4 COTs per digit.
        let (mut cs, mut cr) = dealt(rng, n * q * 4, 0);
        let bd: Vec<u8> = b.iter().flat_map(|&v| split(v, bits)).collect();
        let masks: Vec<(bool, bool)> = (0..n * q).map(|_| (rng.random(), rng.random())).collect();
        let (messages, mut s) = sender_leaves(a, bits, &masks);
        let fix = receiver_fix(&mut cr, 4, &bd);
        let tables = sender_tables(&h, &mut cs, &fix, 4, 2, &messages);
        let mut r = receiver_leaves(&receiver_outputs(&h, &cr, 4, 2, &bd, &tables));
        // Triples: 2 ANDs per combination, q - 1 combinations per value, 2 COTs per triple.
        let ands = 2 * (q - 1) * n;
        let (ts, tr) = dealt(rng, 2 * ands, 1 << 32);
        let (ts, tr) = (sender_triples(&h, &ts), receiver_triples(&h, &tr));
        let (mut width, mut used) = (q, 0);
        while width > 1 {
            let (xs, ys) = level_inputs(&s, width);
            let (xr, yr) = level_inputs(&r, width);
            let (os, or) = (open(&xs, &ys, &ts, used), open(&xr, &yr, &tr, used));
            let zs = finish(true, &os, &or, &ts, used);
            let zr = finish(false, &or, &os, &tr, used);
            used += xs.len();
            s = level_outputs(&s, width, &zs);
            r = level_outputs(&r, width, &zr);
            width = width.div_ceil(2);
        }
        assert_eq!(used, ands);
        s.iter().zip(&r).map(|(s, r)| s.0 ^ r.0).collect()
    }

    #[test]
    fn the_shares_are_a_less_than_b_on_edges_and_random_values() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        for bits in [1u32, 4, 5, 41, 42] {
            let top = (1u64 << bits) - 1;
            let mut pairs = vec![
                (0, 0),
                (0, 1),
                (1, 0),
                (top, top),
                (top - 1, top),
                (top, top - 1),
                (0, top),
                (top, 0),
            ];
            for _ in 0..200 {
                let a = rng.random_range(0..=top);
                // Neighbours and equal values stress the eq chain.
                let b = match rng.random_range(0..3) {
                    0 => a,
                    1 => a.saturating_add(1).min(top),
                    _ => rng.random_range(0..=top),
                };
                pairs.push((a, b));
            }
            let (a, b): (Vec<u64>, Vec<u64>) = pairs.iter().copied().unzip();
            let got = compare(&mut rng, &a, &b, bits);
            for (i, (&a, &b)) in a.iter().zip(&b).enumerate() {
                assert_eq!(got[i], a < b, "bits {bits}: {a} < {b}");
            }
        }
    }
}
