//! DReLU of a value shared mod an odd prime p (CrypTFlow2, Rathee et al., CCS 2020, section
//! 5.2; OpenCheetah's `drelu-field.h`): shares of [x <= h], h = (p - 1) / 2, for
//! x = x_0 + x_1 mod p, the sender holding x_0 and the receiver x_1, all in [0, p).
//!
//! Two comparisons on bitlen(p) + 1 bits against the receiver's B = h + x_1 decide it:
//!
//! ```text
//! wrap = [A_wrap < B],  A_wrap = (p - 1 - x_0) + h            (x_0 + x_1 >= p)
//! cmp  = [A_cmp < B],   A_cmp  = p - 1 - x_0       if x_0 <= h (x_0 + x_1 > h)
//!                              = 2p - 1 - x_0      otherwise    (x_0 + x_1 > p + h)
//! x > h  =  cmp and not wrap        if x_0 <= h
//!        =  not (wrap and not cmp)  otherwise,
//! ```
//!
//! and the sender, which knows which case holds, turns the shares of (wrap, cmp) into shares of
//! [x > h] with one 1-out-of-4 OT of a bit, the receiver choosing by its two shares. DReLU is
//! the complement. Crypto core, no IO.

/// Bits of the comparisons for the prime `p`.
pub fn compare_bits(p: u64) -> u32 {
    64 - p.leading_zeros() + 1
}

/// The sender's two comparison inputs (A_wrap, A_cmp) and whether x_0 > h.
pub fn sender_inputs(p: u64, x0: u64) -> (u64, u64, bool) {
    let h = (p - 1) / 2;
    let neg = x0 > h;
    let a_cmp = if neg { 2 * p - 1 - x0 } else { p - 1 - x0 };
    ((p - 1 - x0) + h, a_cmp, neg)
}

/// The receiver's comparison input B = h + x_1.
pub fn receiver_input(p: u64, x1: u64) -> u64 {
    (p - 1) / 2 + x1
}

/// The sender's four 1-bit messages of the final OT, indexed by the receiver's shares
/// (wrap_1 | cmp_1 << 1), masked by its own random share `r` of [x > h].
pub fn sender_final(neg: bool, wrap0: bool, cmp0: bool, r: bool) -> Vec<u64> {
    (0..4u8)
        .map(|k| {
            let wrap = wrap0 ^ (k & 1 == 1);
            let cmp = cmp0 ^ (k & 2 == 2);
            let above = if neg { !wrap || cmp } else { cmp && !wrap };
            (above ^ r) as u64
        })
        .collect()
}

/// The receiver's index into [`sender_final`]'s messages.
pub fn receiver_final(wrap1: bool, cmp1: bool) -> u8 {
    wrap1 as u8 | (cmp1 as u8) << 1
}

#[cfg(test)]
mod tests {
    use super::super::testing::drelu;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn the_shares_are_x_at_most_half_p_on_edges_and_near_wrapping_shares() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        for p in [2061584302081u64, 65537, 7] {
            let h = (p - 1) / 2;
            let mut xs: Vec<(u64, u64)> = Vec::new();
            // Values at the edges, each split with shares near 0, near p - 1 and at random.
            for x in [0, 1, h - 1, h, h + 1, p - 2, p - 1] {
                for x0 in [0, 1, p - 1, p - 2, h, h + 1, rng.random_range(0..p)] {
                    xs.push((x0, (x + p - x0) % p));
                }
            }
            for _ in 0..100 {
                xs.push((rng.random_range(0..p), rng.random_range(0..p)));
            }
            let (x0, x1): (Vec<u64>, Vec<u64>) = xs.iter().copied().unzip();
            let (d0, d1) = drelu(&mut rng, p, &x0, &x1);
            for (i, &(x0, x1)) in xs.iter().enumerate() {
                let x = (x0 + x1) % p;
                assert_eq!(d0[i] ^ d1[i], x <= h, "p {p}: x = {x} from {x0} + {x1}");
            }
        }
    }
}
