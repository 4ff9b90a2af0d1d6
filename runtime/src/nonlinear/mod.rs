//! The OT-based protocol for non-linear layers (issue 16), beside the garbled circuits of
//! [`crate::gc`]: building blocks over correlated OT ([`crate::ot::cot`]) in the manner of
//! CrypTFlow2 (Rathee et al., CCS 2020) and Cheetah (Huang et al., USENIX Security 2022).
//! Crypto cores, no IO. Built so far: Beaver bit triples from two random OTs, AND gates on them,
//! boolean-to-arithmetic conversion into F_p, the millionaire's comparison, and DReLU mod p.

pub mod and_gates;
pub mod b2a;
pub mod bit_triples;
pub mod drelu_field;
pub mod millionaire;

/// Both parties of the building blocks in one process, with COTs from a dealer (the sessions
/// make them by silent OT between the parties).
#[cfg(test)]
pub(crate) mod testing {
    use super::and_gates::{finish, open};
    use super::bit_triples::{receiver_triples, sender_triples};
    use super::millionaire::{
        digits, level_inputs, level_outputs, receiver_leaves, sender_leaves, split,
    };
    use crate::gc::hash::Hasher;
    use crate::ot::cot::{CotReceiver, CotSender};
    use crate::ot::one_of_n::{receiver_fix, receiver_outputs, sender_tables};
    use rand::Rng;
    use rand_chacha::ChaCha20Rng;

    pub(crate) fn dealt(rng: &mut ChaCha20Rng, n: usize, first: u64) -> (CotSender, CotReceiver) {
        let delta = rng.random::<u128>() | 1;
        let v: Vec<u128> = (0..n).map(|_| rng.random::<u128>() & !1).collect();
        let w = v
            .iter()
            .map(|&v| if rng.random() { v ^ delta } else { v })
            .collect();
        (CotSender { delta, v, first }, CotReceiver { w, first })
    }

    /// Both parties in one process: the sender's and the receiver's shares of [a_i < b_i].
    pub(crate) fn compare(
        rng: &mut ChaCha20Rng,
        a: &[u64],
        b: &[u64],
        bits: u32,
    ) -> (Vec<bool>, Vec<bool>) {
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
        (
            s.iter().map(|s| s.0).collect(),
            r.iter().map(|r| r.0).collect(),
        )
    }
}
