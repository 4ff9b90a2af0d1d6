//! Boolean to arithmetic: a bit shared by XOR, x = x_S xor x_R, becomes additive shares of x in
//! F_p (CrypTFlow2, Rathee et al., CCS 2020, section 3.1.3), from one additive COT:
//!
//! ```text
//! x = x_S + x_R - 2 x_S x_R,
//! ```
//!
//! the product shared by an additive COT in which the receiver chooses x_R and the sender's
//! correlation is x_S ([`crate::ot::cot`]). Traffic per bit: the receiver's choice fix (one bit)
//! and the sender's correction (one element of F_p). Crypto core, no IO: each step returns the
//! message the caller sends.

use crate::field::Field;
use crate::gc::hash::Hasher;
use crate::ot::cot::{CotReceiver, CotSender};

/// Receiver, first step: turns its COTs' random choices into its bits x_R; returns the fix
/// message d (one bit per COT) for the sender.
pub fn receiver_fix(cots: &mut CotReceiver, x_r: &[bool]) -> Vec<bool> {
    cots.fix_choices(x_r)
}

/// Sender: applies the fix, returns its arithmetic shares and the corrections y for the
/// receiver.
pub fn sender_shares(
    h: &Hasher,
    f: &Field,
    cots: &mut CotSender,
    fix: &[bool],
    x_s: &[bool],
) -> (Vec<u64>, Vec<u64>) {
    cots.fix_choices(fix);
    let corr: Vec<u64> = x_s.iter().map(|&b| b as u64).collect();
    let (r, y) = cots.additive(h, f, &corr);
    // Its share of x_S x_R is -r, so of x it is x_S - 2 (-r) = x_S + 2 r.
    let shares = r
        .iter()
        .zip(x_s)
        .map(|(&r, &b)| f.add(b as u64, f.add(r, r)))
        .collect();
    (shares, y)
}

/// Receiver, second step: its arithmetic shares from the sender's corrections.
pub fn receiver_shares(
    h: &Hasher,
    f: &Field,
    cots: &CotReceiver,
    y: &[u64],
    x_r: &[bool],
) -> Vec<u64> {
    cots.additive(h, f, y)
        .iter()
        .zip(x_r)
        .map(|(&t, &b)| f.sub(b as u64, f.add(t, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::cot::dealt;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn xor_shared_bits_become_additive_shares_of_the_same_bits() {
        let h = Hasher::default();
        let f = Field::new(2061584302081).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let n = 1000;
        let (mut s, mut r, _) = dealt(&mut rng, n, 3);
        let x_s: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let x_r: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let fix = receiver_fix(&mut r, &x_r);
        let (a, y) = sender_shares(&h, &f, &mut s, &fix, &x_s);
        let b = receiver_shares(&h, &f, &r, &y, &x_r);
        for i in 0..n {
            // Clear reference: the bit x_S xor x_R as an integer.
            assert_eq!(f.add(a[i], b[i]), (x_s[i] ^ x_r[i]) as u64, "bit {i}");
        }
        // The shares alone are not the bits: the sender's are spread over the field.
        assert!(a.iter().filter(|&&s| s > 1).count() > n - 5);
    }
}
