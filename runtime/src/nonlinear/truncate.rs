//! Exact floor truncation in F_p: shares of floor(z / 2^t) from shares of z in [0, (p-1)/2],
//! for a prime p = 1 mod 2^t (every BFV batching prime is 1 mod 2^t far beyond the plans'
//! truncations), bit-exact with `c3dc simulate` (not the 1-bit-error truncation of Cheetah).
//!
//! With the shares z_0 (server) and z_1 (client) in [0, p), z = z_0 + z_1 - w p where w is
//! the wrap bit, and with z_i = q_i 2^t + r_i and p = q_p 2^t + 1,
//!
//! ```text
//! floor(z / 2^t) = q_0 + q_1 - w q_p + e,   e = floor((r_0 + r_1 - w) / 2^t) in {-1, 0, 1}.
//! ```
//!
//! - The wrap is w = a_0 or a_1 with a_i = [z_i > (p-1)/2]: two shares below half p cannot
//!   wrap, two above always do, and one of each must wrap because z itself is below half p.
//!   Each party knows its a_i in the clear.
//! - e = C_0 where w = 0, with C_0 = [r_0 + r_1 >= 2^t]; and C_1 - Z where w = 1, with
//!   C_1 = [r_0 + r_1 >= 2^t + 1] and Z = [r_0 = r_1 = 0] (each party knows its half of Z).
//! - C_0 and C_1 are two comparisons of the server's 2^t - 1 - r_0 and 2^t - r_0 against the
//!   client's r_1, on t + 1 bits, sharing the client's leaf OTs (the millionaire).
//! - One 1-out-of-16 OT finishes: the client's index is (a_1, [r_1 = 0], its shares of C_0
//!   and C_1); the server's 16 messages are K - mask mod p for K = -w q_p + e at each index,
//!   so the client learns one masked value and nothing else.
//!
//! Crypto core, no IO.

use crate::field::Field;

/// Whether truncation by `t` bits is exact here: 1 <= t and p = 1 mod 2^t.
pub fn supported(p: u64, t: u32) -> bool {
    (1..40).contains(&t) && (p - 1).is_multiple_of(1u64 << t)
}

/// Bits of the two comparisons.
pub fn compare_bits(t: u32) -> u32 {
    t + 1
}

/// What a party knows of its own share.
#[derive(Clone, Copy, Debug)]
pub struct Own {
    /// Its share's high part, z_i >> t.
    pub q: u64,
    /// a_i = [z_i > (p-1)/2].
    pub above: bool,
    /// [r_i = 0].
    pub zero_low: bool,
}

fn own(p: u64, t: u32, z: u64) -> (Own, u64) {
    let r = z & ((1u64 << t) - 1);
    (
        Own {
            q: z >> t,
            above: z > (p - 1) / 2,
            zero_low: r == 0,
        },
        r,
    )
}

/// The server's two comparison inputs (2^t - 1 - r_0, 2^t - r_0) and what it knows.
pub fn sender_inputs(p: u64, t: u32, z0: u64) -> (u64, u64, Own) {
    let (o, r) = own(p, t, z0);
    ((1u64 << t) - 1 - r, (1u64 << t) - r, o)
}

/// The client's comparison input r_1 and what it knows.
pub fn receiver_input(p: u64, t: u32, z1: u64) -> (u64, Own) {
    let (o, r) = own(p, t, z1);
    (r, o)
}

/// The client's index in the final 1-out-of-16 OT.
pub fn receiver_index(o: &Own, c0: bool, c1: bool) -> u8 {
    o.above as u8 | (o.zero_low as u8) << 1 | (c0 as u8) << 2 | (c1 as u8) << 3
}

/// The server's 16 messages, K - mask mod p at every client index, from its shares c0, c1 of
/// the comparisons.
pub fn sender_messages(f: &Field, t: u32, o: &Own, c0: bool, c1: bool, mask: u64) -> Vec<u64> {
    let qp = f.p() >> t;
    (0..16u8)
        .map(|k| {
            let w = o.above | (k & 1 == 1);
            let z = o.zero_low & (k & 2 == 2);
            let (cc0, cc1) = (c0 ^ (k & 4 == 4), c1 ^ (k & 8 == 8));
            let e: i64 = if w { cc1 as i64 - z as i64 } else { cc0 as i64 };
            let k_val = f.sub((e.rem_euclid(f.p() as i64)) as u64, if w { qp } else { 0 });
            f.sub(k_val, mask)
        })
        .collect()
}

/// The server's share of the result: q_0 + mask.
pub fn sender_share(f: &Field, o: &Own, mask: u64) -> u64 {
    f.add(f.reduce(o.q), mask)
}

/// The client's share of the result: q_1 + its message.
pub fn receiver_share(f: &Field, o: &Own, message: u64) -> u64 {
    f.add(f.reduce(o.q), message)
}

#[cfg(test)]
mod tests {
    use super::super::testing::compare;
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// The whole truncation with both parties in one process (the comparisons by the
    /// millionaire harness, the final OT in the clear, which its own tests cover).
    fn truncate(rng: &mut ChaCha20Rng, f: &Field, t: u32, z0: &[u64], z1: &[u64]) -> Vec<u64> {
        let p = f.p();
        let s: Vec<(u64, u64, Own)> = z0.iter().map(|&z| sender_inputs(p, t, z)).collect();
        let c: Vec<(u64, Own)> = z1.iter().map(|&z| receiver_input(p, t, z)).collect();
        let b: Vec<u64> = c.iter().map(|c| c.0).collect();
        let a0: Vec<u64> = s.iter().map(|s| s.0).collect();
        let a1: Vec<u64> = s.iter().map(|s| s.1).collect();
        let (c0s, c0r) = compare(rng, &a0, &b, compare_bits(t));
        let (c1s, c1r) = compare(rng, &a1, &b, compare_bits(t));
        (0..z0.len())
            .map(|i| {
                let mask = f.random(rng);
                let msgs = sender_messages(f, t, &s[i].2, c0s[i], c1s[i], mask);
                let k = receiver_index(&c[i].1, c0r[i], c1r[i]);
                f.add(
                    sender_share(f, &s[i].2, mask),
                    receiver_share(f, &c[i].1, msgs[k as usize]),
                )
            })
            .collect()
    }

    #[test]
    fn shares_of_the_floor_at_every_boundary_and_for_wrapping_shares() {
        let p = 2061584302081u64; // 15 * 2^37 + 1
        let f = Field::new(p).unwrap();
        let h = (p - 1) / 2;
        let mut rng = ChaCha20Rng::seed_from_u64(40);
        for t in [1u32, 3, 4, 8, 13] {
            assert!(supported(p, t));
            let m = 1u64 << t;
            let mut zs: Vec<u64> = vec![0, 1, m - 1, m, m + 1, 2 * m - 1, 2 * m, h, h - 1];
            zs.extend((0..100).map(|_| rng.random_range(0..=h)));
            let mut pairs = Vec::new();
            for &z in &zs {
                // Share splits with r_0 = 0, r_1 = 0, both halves above and below half p.
                for z0 in [0, 1, m, p - 1, p - m, h, h + 1, rng.random_range(0..p)] {
                    pairs.push((z, z0, f.sub(z, z0)));
                }
            }
            let z0: Vec<u64> = pairs.iter().map(|x| x.1).collect();
            let z1: Vec<u64> = pairs.iter().map(|x| x.2).collect();
            let got = truncate(&mut rng, &f, t, &z0, &z1);
            for (i, &(z, a, b)) in pairs.iter().enumerate() {
                assert_eq!(got[i], z >> t, "t {t}: floor({z} / 2^t) from {a} + {b}");
            }
        }
    }

    #[test]
    fn only_primes_one_mod_two_to_the_t_are_supported() {
        assert!(supported(65537, 16));
        assert!(!supported(65537, 17));
        assert!(!supported(2061584302081, 0));
        assert!(supported(2061584302081, 37));
        assert!(!supported(2061584302081, 38));
    }
}
