//! 1-out-of-2^m OT from m correlated OTs, the Naor-Pinkas construction from log N OTs (Naor,
//! Pinkas, "Computationally secure oblivious transfer", J. Cryptology 2005) as the leaf OTs of
//! the millionaire protocol use it (CrypTFlow2 and Cheetah; OpenCheetah's `silent_ot.h`).
//!
//! The receiver's index x has bits x_0 .. x_{m-1}; COT s carries bit x_s (after a choice fix of
//! one bit each), so it holds K_s^{x_s} = W_s, while the sender holds both K_s^b = V_s xor b Delta.
//! The pad of message k is
//!
//! ```text
//! P_k = xor_{s < m} H(K_s^{k_s}, tweak(COT s, k mod 2^{s+1})),
//! ```
//!
//! the hashes of the nodes on k's path in a binary tree whose node (s, prefix) is keyed by COT s
//! and tweaked by the prefix. The receiver knows exactly the nodes on x's path; every other k
//! meets an unknown node at its highest bit that differs from x, a bijection between the N - 1
//! other messages and the N - 1 unknown nodes, triangular in the lower nodes, so the other pads
//! are jointly pseudorandom. The sender sends the N messages masked, l <= 64 bits each; the
//! sender computes 2^{m+1} - 2 hashes per OT, the receiver m. Crypto core, no IO: lengths are
//! the caller's to check (a peer's table frame before [`receiver_outputs`]); a mismatch panics.

use super::cot::{CotReceiver, CotSender};
use crate::gc::hash::{Hasher, MAX_BATCH};
use rayon::prelude::*;

/// The top byte of this construction's tweaks, apart from [`super::cot::COT_DOMAIN`]'s.
pub const ONE_OF_N_DOMAIN: u128 = 0xC1 << 120;

/// The widest index accepted: 1-out-of-256.
pub const MAX_BITS: u32 = 8;

fn tweak(index: u64, prefix: usize) -> u128 {
    ONE_OF_N_DOMAIN | ((index as u128) << 16) | prefix as u128
}

/// The mask of the low `l` bits (1 <= l <= 64).
fn low_bits(l: u32) -> u64 {
    u64::MAX >> (64 - l)
}

fn check(m: u32, l: u32) {
    assert!(
        (1..=MAX_BITS).contains(&m) && (1..=64).contains(&l),
        "1-of-2^{m} OT of {l} bits"
    );
}

/// Receiver, first step: fixes COT `o m + s` to bit s of `indices[o]`; returns the fix bits for
/// the sender ([`CotReceiver::fix_choices`]).
pub fn receiver_fix(cots: &mut CotReceiver, m: u32, indices: &[u8]) -> Vec<bool> {
    check(m, 1);
    assert_eq!(cots.w.len(), indices.len() * m as usize, "m COTs per OT");
    let wanted: Vec<bool> = indices
        .iter()
        .flat_map(|&x| (0..m).map(move |s| (x >> s) & 1 == 1))
        .collect();
    cots.fix_choices(&wanted)
}

/// Sender: applies the fix and masks every OT's 2^m messages (`messages[o 2^m + k]`, l bits
/// each).
pub fn sender_tables(
    h: &Hasher,
    cots: &mut CotSender,
    fix: &[bool],
    m: u32,
    l: u32,
    messages: &[u64],
) -> Vec<u64> {
    check(m, l);
    let n = 1usize << m;
    assert_eq!(messages.len() % n, 0, "2^m messages per OT");
    let count = messages.len() / n;
    assert_eq!(cots.v.len(), count * m as usize, "m COTs per OT");
    cots.fix_choices(fix);
    let mask = low_bits(l);
    let cots = &*cots;
    let mut out = vec![0u64; messages.len()];
    // OTs are independent: tables in parallel, in order; each OT's 2^{m+1} - 2 node hashes
    // go through AES in batches of up to 64.
    out.par_chunks_mut(n)
        .zip(messages.par_chunks(n))
        .enumerate()
        .for_each(|(o, (table, msgs))| {
            let mut xs = [0u128; 2 * (1 << MAX_BITS)];
            let mut ts = [0u128; 2 * (1 << MAX_BITS)];
            let mut hs = [0u128; 2 * (1 << MAX_BITS)];
            let mut at = 0;
            for s in 0..m as usize {
                let k = o * m as usize + s;
                let index = cots.first + k as u64;
                for p in 0..1usize << (s + 1) {
                    xs[at] = cots.v[k] ^ if (p >> s) & 1 == 1 { cots.delta } else { 0 };
                    ts[at] = tweak(index, p);
                    at += 1;
                }
            }
            for ((o, x), t) in hs[..at]
                .chunks_mut(MAX_BATCH)
                .zip(xs[..at].chunks(MAX_BATCH))
                .zip(ts[..at].chunks(MAX_BATCH))
            {
                h.hash_blocks(x, t, o);
            }
            // node (s, prefix) sits at 2^{s+1} - 2 + prefix.
            for (k, (e, &msg)) in table.iter_mut().zip(msgs).enumerate() {
                let mut pad = 0u64;
                for s in 0..m as usize {
                    let width = 1usize << (s + 1);
                    pad ^= hs[width - 2 + k % width] as u64;
                }
                *e = (msg ^ pad) & mask;
            }
        });
    out
}

/// Receiver, second step: message `indices[o]` of every OT from the sender's tables.
pub fn receiver_outputs(
    h: &Hasher,
    cots: &CotReceiver,
    m: u32,
    l: u32,
    indices: &[u8],
    tables: &[u64],
) -> Vec<u64> {
    check(m, l);
    let n = 1usize << m;
    assert_eq!(tables.len(), indices.len() * n, "2^m entries per OT");
    let mask = low_bits(l);
    indices
        .par_iter()
        .enumerate()
        .map(|(o, &x)| {
            let mut xs = [0u128; MAX_BITS as usize];
            let mut ts = [0u128; MAX_BITS as usize];
            let mut hs = [0u128; MAX_BITS as usize];
            for s in 0..m as usize {
                let k = o * m as usize + s;
                xs[s] = cots.w[k];
                ts[s] = tweak(cots.first + k as u64, x as usize % (1 << (s + 1)));
            }
            let m = m as usize;
            h.hash_blocks(&xs[..m], &ts[..m], &mut hs[..m]);
            let pad = hs[..m].iter().fold(0u64, |p, &v| p ^ v as u64);
            (tables[o * n + x as usize] ^ pad) & mask
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
    fn the_receiver_gets_the_message_of_its_index_and_the_others_stay_masked() {
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        for (m, l) in [(1u32, 1u32), (2, 2), (4, 2), (4, 8), (4, 41), (2, 64)] {
            let ots = 200;
            let (mut s, mut r, _) = dealt(&mut rng, ots * m as usize, 11);
            let indices: Vec<u8> = (0..ots)
                .map(|_| rng.random_range(0..1u16 << m) as u8)
                .collect();
            let mask = low_bits(l);
            let messages: Vec<u64> = (0..ots << m).map(|_| rng.random::<u64>() & mask).collect();
            let fix = receiver_fix(&mut r, m, &indices);
            let tables = sender_tables(&h, &mut s, &fix, m, l, &messages);
            assert_eq!(tables.len(), ots << m);
            let got = receiver_outputs(&h, &r, m, l, &indices, &tables);
            for o in 0..ots {
                assert_eq!(
                    got[o],
                    messages[(o << m) + indices[o] as usize],
                    "m {m} OT {o}"
                );
            }
            if l >= 8 {
                // Unmasking another entry with the receiver's own pad does not give its message
                // (a chance match is 1 in 256).
                let wrong = (0..ots)
                    .filter(|&o| {
                        let k = (indices[o] as usize + 1) % (1 << m);
                        let pad = tables[o * (1 << m) + indices[o] as usize] ^ got[o];
                        tables[o * (1 << m) + k] ^ pad == messages[(o << m) + k]
                    })
                    .count();
                assert!(wrong < 5, "{wrong} of {ots} other messages open");
            }
        }
    }
}
