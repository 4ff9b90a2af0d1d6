//! AND of XOR-shared bits with Beaver bit triples ([`super::bit_triples`]): each party opens its
//! shares of e = x xor a and f = y xor b (one bit each way per gate), and then
//!
//! ```text
//! z_i = c_i xor e b_i xor f a_i xor [party 0] e f,
//! ```
//!
//! so z_0 xor z_1 = x y. A batch of gates is one exchange. Crypto core, no IO.

use super::bit_triples::BitTriples;

/// This party's opening shares (e_i, f_i) of a batch of gates, for the peer; uses the triples
/// `t[from..from + x.len()]`.
pub fn open(x: &[bool], y: &[bool], t: &BitTriples, from: usize) -> (Vec<bool>, Vec<bool>) {
    assert_eq!(x.len(), y.len(), "one y per x");
    let e = x.iter().zip(&t.a[from..]).map(|(x, a)| x ^ a).collect();
    let f = y.iter().zip(&t.b[from..]).map(|(y, b)| y ^ b).collect();
    (e, f)
}

/// This party's shares of x y from both parties' openings.
pub fn finish(
    party0: bool,
    mine: &(Vec<bool>, Vec<bool>),
    theirs: &(Vec<bool>, Vec<bool>),
    t: &BitTriples,
    from: usize,
) -> Vec<bool> {
    let n = mine.0.len();
    assert!(
        theirs.0.len() == n && theirs.1.len() == n && mine.1.len() == n,
        "gate count"
    );
    (0..n)
        .map(|i| {
            let (e, f) = (mine.0[i] ^ theirs.0[i], mine.1[i] ^ theirs.1[i]);
            let k = from + i;
            t.c[k] ^ (e & t.b[k]) ^ (f & t.a[k]) ^ (party0 & e & f)
        })
        .collect()
}
