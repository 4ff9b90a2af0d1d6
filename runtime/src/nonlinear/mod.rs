//! The OT-based protocol for non-linear layers (issue 16), beside the garbled circuits of
//! [`crate::gc`]: building blocks over correlated OT ([`crate::ot::cot`]) in the manner of
//! CrypTFlow2 (Rathee et al., CCS 2020) and Cheetah (Huang et al., USENIX Security 2022).
//! Crypto cores, no IO: pairs of Beaver bit triples and the pairs of AND gates they serve,
//! boolean-to-arithmetic conversion into F_p, the millionaire's comparison, DReLU mod p, the
//! multiplexer that makes ReLU from it, the tree of comparisons for the maximum over a window,
//! and exact truncation. `session::compared` runs them between the parties.

pub mod b2a;
pub mod drelu_field;
pub mod max_tree;
pub mod millionaire;
pub mod mux;
pub mod pair_triples;
pub mod truncate;

/// Both parties of the building blocks in one process, with COTs from a dealer (the sessions
/// make them by silent OT between the parties).
#[cfg(test)]
pub(crate) mod testing {
    use super::millionaire::{
        digits, level_inputs, level_outputs, receiver_leaves, sender_leaves, split,
    };
    use super::pair_triples::{client_pairs, finish, open, server_pairs};
    use crate::gc::hash::Hasher;
    use crate::ot::cot::dealt;
    use crate::ot::one_of_n::{receiver_fix, receiver_outputs, sender_tables};
    use rand::Rng;
    use rand_chacha::ChaCha20Rng;

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
        let (mut cs, mut cr, _) = dealt(rng, n * q * 4, 0);
        let bd: Vec<u8> = b.iter().flat_map(|&v| split(v, bits)).collect();
        let masks: Vec<(bool, bool)> = (0..n * q).map(|_| (rng.random(), rng.random())).collect();
        let (messages, mut s) = sender_leaves(a, bits, &masks);
        let fix = receiver_fix(&mut cr, 4, &bd);
        let tables = sender_tables(&h, &mut cs, &fix, 4, 2, &messages);
        let mut r = receiver_leaves(&receiver_outputs(&h, &cr, 4, 2, &bd, &tables));
        // Pairs of triples: one pair of ANDs per combination, q - 1 combinations per value, a
        // forward and a reverse COT each (as the sessions run it, `session::compared`).
        let ands = (q - 1) * n;
        let (fs, fr, _) = dealt(rng, ands, 1 << 32);
        let (rs, rr, _) = dealt(rng, ands, 1 << 62);
        let (ts, tr) = (server_pairs(&h, &fs, &rr), client_pairs(&h, &fr, &rs));
        let (mut width, mut used) = (q, 0);
        while width > 1 {
            let (xs, ys) = level_inputs(&s, width);
            let (xr, yr) = level_inputs(&r, width);
            let pairs = |x: &[bool], y: &[bool]| -> (Vec<bool>, Vec<[bool; 2]>) {
                let x = x.iter().step_by(2).copied().collect();
                (x, y.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
            };
            let ((xs, ys), (xr, yr)) = (pairs(&xs, &ys), pairs(&xr, &yr));
            let (os, or) = (open(&xs, &ys, &ts, used), open(&xr, &yr, &tr, used));
            let zs: Vec<bool> = finish(true, &os, &or, &ts, used).concat();
            let zr: Vec<bool> = finish(false, &or, &os, &tr, used).concat();
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

    /// Both parties' shares of DReLU(x) = [x <= (p - 1) / 2] for x = x0 + x1 mod p.
    pub(crate) fn drelu(
        rng: &mut ChaCha20Rng,
        p: u64,
        x0: &[u64],
        x1: &[u64],
    ) -> (Vec<bool>, Vec<bool>) {
        use super::drelu_field::{
            compare_bits, receiver_final, receiver_input, sender_final, sender_inputs,
        };
        let h = Hasher::default();
        let n = x0.len();
        let bits = compare_bits(p);
        let ins: Vec<(u64, u64, bool)> = x0.iter().map(|&x| sender_inputs(p, x)).collect();
        let b: Vec<u64> = x1.iter().map(|&x| receiver_input(p, x)).collect();
        let wrap_a: Vec<u64> = ins.iter().map(|i| i.0).collect();
        let cmp_a: Vec<u64> = ins.iter().map(|i| i.1).collect();
        let (w0, w1) = compare(rng, &wrap_a, &b, bits);
        let (c0, c1) = compare(rng, &cmp_a, &b, bits);
        // The final 1-out-of-4 OT of a bit: 2 COTs each.
        let (mut s, mut r, _) = dealt(rng, 2 * n, 1 << 40);
        let masks: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let msgs: Vec<u64> = (0..n)
            .flat_map(|i| sender_final(ins[i].2, w0[i], c0[i], masks[i]))
            .collect();
        let idx: Vec<u8> = (0..n).map(|i| receiver_final(w1[i], c1[i])).collect();
        let fix = receiver_fix(&mut r, 2, &idx);
        let tables = sender_tables(&h, &mut s, &fix, 2, 1, &msgs);
        let got = receiver_outputs(&h, &r, 2, 1, &idx, &tables);
        // The sender's share of DReLU is 1 xor its share of [x > h].
        (
            masks.iter().map(|m| !m).collect(),
            got.iter().map(|&g| g == 1).collect(),
        )
    }

    /// Both parties' shares of sel x: two additive COTs, party 1 choosing on the forward
    /// instance and party 0 on the reverse one ([`super::mux`]).
    pub(crate) fn mux(
        rng: &mut ChaCha20Rng,
        f: &crate::field::Field,
        sel: (&[bool], &[bool]),
        x: (&[u64], &[u64]),
    ) -> (Vec<u64>, Vec<u64>) {
        use super::mux::{combine, correlation};
        let h = Hasher::default();
        let mut run = |choice: &[bool], corr: &[u64], first| {
            let (mut s, mut r, _) = dealt(rng, choice.len(), first);
            let fix = r.fix_choices(choice);
            s.fix_choices(&fix);
            let (keep, y) = s.additive(&h, f, corr);
            (keep, r.additive(&h, f, &y))
        };
        let (r0, t1) = run(sel.1, &correlation(f, sel.0, x.0), 0);
        let (r1, t0) = run(sel.0, &correlation(f, sel.1, x.1), 1 << 30);
        (
            combine(f, sel.0, x.0, &r0, &t0),
            combine(f, sel.1, x.1, &r1, &t1),
        )
    }
}
