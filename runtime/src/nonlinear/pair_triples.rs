//! Pairs of Beaver bit triples that share their first factor, (a, b_1, a b_1) and (a, b_2,
//! a b_2), from one forward and one reverse random OT with 2-bit messages and no traffic; and
//! the pairs of AND gates x y_1, x y_2 they serve, opened with 3 bits each way instead of 4.
//! The millionaire's combination step is exactly such a pair: lt = lt_hi xor eq_hi lt_lo and
//! eq = eq_hi eq_lo share eq_hi (CrypTFlow2's correlated triples, section 4.1).
//!
//! With a = a_0 xor a_1 and b = b_0 xor b_1 (2-bit vectors), a b = a_0 b_0 xor a_1 b_1 xor
//! a_0 b_1 xor a_1 b_0. A random OT with 2-bit messages (m_0, m_1) and choice c shares
//! c (m_0 xor m_1): the forward one (the server's Delta) gives a_1 b_0 with the client's
//! choice as a_1 and the server's m_0 xor m_1 as b_0; the reverse one (the client's Delta)
//! gives a_0 b_1 the other way round. Two COTs per pair, as two independent triples cost, for
//! twice the gates.

use crate::gc::hash::Hasher;
use crate::ot::cot::{CotReceiver, CotSender};

/// One party's shares of pairs of triples: (a, b, c) with c_j = a b_j, j = 0, 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairTriples {
    /// Shares of a.
    pub a: Vec<bool>,
    /// Shares of b_1, b_2.
    pub b: Vec<[bool; 2]>,
    /// Shares of a b_1, a b_2.
    pub c: Vec<[bool; 2]>,
}

fn two(x: u128) -> [bool; 2] {
    [x & 1 == 1, x & 2 == 2]
}

fn xor(a: [bool; 2], b: [bool; 2]) -> [bool; 2] {
    [a[0] ^ b[0], a[1] ^ b[1]]
}

fn and(a: bool, b: [bool; 2]) -> [bool; 2] {
    [a & b[0], a & b[1]]
}

/// The server's pairs: forward COTs as sender, reverse ones as receiver, one of each a pair.
pub fn server_pairs(h: &Hasher, fwd: &CotSender, rev: &CotReceiver) -> PairTriples {
    assert_eq!(fwd.v.len(), rev.w.len(), "one COT each way per pair");
    let (choices, got) = rev.random_ot(h);
    let mut t = PairTriples::default();
    for ((m0, m1), (c, g)) in fwd
        .random_ot(h)
        .into_iter()
        .zip(choices.into_iter().zip(got))
    {
        let (m0, b) = (two(m0), xor(two(m0), two(m1)));
        t.a.push(c);
        t.b.push(b);
        t.c.push(xor(xor(and(c, b), m0), two(g)));
    }
    t
}

/// The client's pairs: forward COTs as receiver, reverse ones as sender.
pub fn client_pairs(h: &Hasher, fwd: &CotReceiver, rev: &CotSender) -> PairTriples {
    assert_eq!(fwd.w.len(), rev.v.len(), "one COT each way per pair");
    let (choices, got) = fwd.random_ot(h);
    let mut t = PairTriples::default();
    for ((c, g), (n0, n1)) in choices.into_iter().zip(got).zip(rev.random_ot(h)) {
        let (n0, b) = (two(n0), xor(two(n0), two(n1)));
        t.a.push(c);
        t.b.push(b);
        t.c.push(xor(xor(and(c, b), two(g)), n0));
    }
    t
}

/// This party's openings (e, f_1, f_2) of pairs of gates x y_1, x y_2 on the triples
/// `t[from..]`, as 3 bits a pair.
pub fn open(x: &[bool], y: &[[bool; 2]], t: &PairTriples, from: usize) -> Vec<bool> {
    assert_eq!(x.len(), y.len(), "one y pair per x");
    let mut out = Vec::with_capacity(3 * x.len());
    for (i, (&x, y)) in x.iter().zip(y).enumerate() {
        let k = from + i;
        out.extend([x ^ t.a[k], y[0] ^ t.b[k][0], y[1] ^ t.b[k][1]]);
    }
    out
}

/// This party's shares of x y_1, x y_2 from both parties' openings.
pub fn finish(
    party0: bool,
    mine: &[bool],
    theirs: &[bool],
    t: &PairTriples,
    from: usize,
) -> Vec<[bool; 2]> {
    assert!(
        mine.len() == theirs.len() && mine.len().is_multiple_of(3),
        "3 bits a pair"
    );
    (0..mine.len() / 3)
        .map(|i| {
            let k = from + i;
            let e = mine[3 * i] ^ theirs[3 * i];
            let f = [
                mine[3 * i + 1] ^ theirs[3 * i + 1],
                mine[3 * i + 2] ^ theirs[3 * i + 2],
            ];
            let mut z = xor(t.c[k], xor(and(e, t.b[k]), [f[0] & t.a[k], f[1] & t.a[k]]));
            if party0 {
                z = xor(z, and(e, f));
            }
            z
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::cot::dealt;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn pairs_are_triples_sharing_a_and_their_gates_compute_x_y() {
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(60);
        let n = 4000;
        // Forward COTs (server holds Delta) and reverse ones (client does).
        let (fs, fr, _) = dealt(&mut rng, n, 0);
        let (rs, rr, _) = dealt(&mut rng, n, 1 << 62);
        let s = server_pairs(&h, &fs, &rr);
        let c = client_pairs(&h, &fr, &rs);
        let mut ones = [0usize; 3];
        for i in 0..n {
            let a = s.a[i] ^ c.a[i];
            let b = xor(s.b[i], c.b[i]);
            assert_eq!(xor(s.c[i], c.c[i]), and(a, b), "pair {i}");
            ones[0] += a as usize;
            ones[1] += b[0] as usize;
            ones[2] += b[1] as usize;
        }
        assert!(ones.iter().all(|&k| (1700..2300).contains(&k)), "{ones:?}");
        // The gates, on every input combination.
        let x0: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let x1: Vec<bool> = (0..n).map(|_| rng.random()).collect();
        let y0: Vec<[bool; 2]> = (0..n).map(|_| [rng.random(), rng.random()]).collect();
        let y1: Vec<[bool; 2]> = (0..n).map(|_| [rng.random(), rng.random()]).collect();
        let (os, oc) = (open(&x0, &y0, &s, 0), open(&x1, &y1, &c, 0));
        assert_eq!(os.len(), 3 * n);
        let zs = finish(true, &os, &oc, &s, 0);
        let zc = finish(false, &oc, &os, &c, 0);
        for i in 0..n {
            let (x, y) = (x0[i] ^ x1[i], xor(y0[i], y1[i]));
            assert_eq!(xor(zs[i], zc[i]), and(x, y), "gate pair {i}");
        }
    }
}
