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
//! a pair of ANDs sharing eq_hi ([`super::pair_triples`]) per combination and one exchange per
//! tree level. The top digit is padded with zero bits, which changes no comparison. Crypto core, no IO: the
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
) -> (Vec<u64>, Vec<(bool, bool)>) {
    let q = digits(bits);
    assert_eq!(masks.len(), a.len() * q, "two mask bits per digit");
    let mut messages = Vec::with_capacity(masks.len() * 16);
    for (i, &v) in a.iter().enumerate() {
        for (d, &ad) in split(v, bits).iter().enumerate() {
            let (ml, me) = masks[i * q + d];
            messages.extend(
                (0..16u8).map(|k| ((ad < k) ^ ml) as u64 | ((((ad == k) ^ me) as u64) << 1)),
            );
        }
    }
    (messages, masks.to_vec())
}

/// The receiver's shares (lt, eq) per digit from its leaf OT outputs.
pub fn receiver_leaves(outputs: &[u64]) -> Vec<(bool, bool)> {
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
    use super::super::testing::compare;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

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
            let (s, r) = compare(&mut rng, &a, &b, bits);
            for (i, (&a, &b)) in a.iter().zip(&b).enumerate() {
                assert_eq!(s[i] ^ r[i], a < b, "bits {bits}: {a} < {b}");
            }
        }
    }
}
