//! What the comparison protocols take from correlated OT: batches of COTs with a global Delta,
//! and the transfers derived from them locally or with one short message (the standard
//! derivations; Asharov, Lindell, Schneider, Zohner, CCS 2013, for random and correlated OT
//! from the correlation; CrypTFlow2, CCS 2020, section 3, for the additive COT in F_p).
//!
//! The correlation: the sender holds Delta (lsb 1) and V_i, the receiver W_i = V_i xor c_i Delta
//! with its choice bit c_i = lsb(W_i) (the sender's V_i have lsb 0). Every hash is the TCCR hash
//! of the garbler and IKNP, tweaked by [`COT_DOMAIN`] and the COT's index in the session, so no
//! two derived transfers (and no garbling or IKNP hash) share a hash input: each COT is used
//! once, by construction of the index. Crypto core only: no IO.

use crate::field::Field;
use crate::gc::hash::{Hasher, MAX_BATCH};
use rayon::prelude::*;

/// The top byte of every tweak derived here, apart from IKNP's (OT counters) and the garbler's
/// (gate indices), which stay far below 2^120.
pub const COT_DOMAIN: u128 = 0xC0 << 120;

/// The sender's side of a run of COTs: Delta and V_i for the indices `first..first + v.len()`.
#[derive(Clone, Debug)]
pub struct CotSender {
    /// The global offset, lsb 1.
    pub delta: u128,
    /// V_i, lsb 0.
    pub v: Vec<u128>,
    /// Session index of `v[0]`.
    pub first: u64,
}

/// The receiver's side: W_i = V_i xor c_i Delta for the same indices.
#[derive(Clone, Debug)]
pub struct CotReceiver {
    /// W_i; c_i is its lsb.
    pub w: Vec<u128>,
    /// Session index of `w[0]`.
    pub first: u64,
}

fn tweaks(first: u64, n: usize) -> impl Iterator<Item = u128> {
    (0..n as u64).map(move |k| COT_DOMAIN | (first + k) as u128)
}

/// H(xs[k], tweak of index first + k) for all k, in batches of [`MAX_BATCH`].
fn hash_run(h: &Hasher, xs: &[u128], first: u64) -> Vec<u128> {
    let mut out = vec![0u128; xs.len()];
    let ts: Vec<u128> = tweaks(first, xs.len()).collect();
    out.par_chunks_mut(MAX_BATCH)
        .zip(xs.par_chunks(MAX_BATCH))
        .zip(ts.par_chunks(MAX_BATCH))
        .for_each(|((o, x), t)| h.hash_blocks(x, t, o));
    out
}

impl CotReceiver {
    /// The choice bits c_i.
    pub fn choices(&self) -> Vec<bool> {
        self.w.iter().map(|w| w & 1 == 1).collect()
    }

    /// Random OT: (c_i, H(W_i)), which is the sender's message of index c_i.
    pub fn random_ot(&self, h: &Hasher) -> (Vec<bool>, Vec<u128>) {
        (self.choices(), hash_run(h, &self.w, self.first))
    }

    /// The message that turns the random choices into `wanted` ones: d_i = b_i xor c_i, sent
    /// to the sender; afterwards this side's correlation holds with choice b_i.
    pub fn fix_choices(&mut self, wanted: &[bool]) -> Vec<bool> {
        assert_eq!(wanted.len(), self.w.len(), "one wanted choice per COT");
        let d = self
            .w
            .iter()
            .zip(wanted)
            .map(|(w, &b)| (w & 1 == 1) ^ b)
            .collect();
        // lsb(W_i) must become b_i: W_i = (V_i xor d_i Delta) xor b_i Delta.
        for (w, &b) in self.w.iter_mut().zip(wanted) {
            *w = (*w & !1) | b as u128;
        }
        d
    }

    /// Additive COT in F_p, receiver: with the sender's `y` (one per COT) it gets
    /// t_i = r_i + c_i x_i mod p, where the sender holds r_i and chose x_i.
    pub fn additive(&self, h: &Hasher, f: &Field, y: &[u64]) -> Vec<u64> {
        assert_eq!(y.len(), self.w.len(), "one correction per COT");
        let p = f.p() as u128;
        hash_run(h, &self.w, self.first)
            .into_iter()
            .zip(&self.w)
            .zip(y)
            .map(|((k, w), &y)| {
                let k = (k % p) as u64;
                if w & 1 == 1 {
                    f.sub(k, y)
                } else {
                    k
                }
            })
            .collect()
    }
}

impl CotSender {
    /// Random OT: both messages (H(V_i), H(V_i xor Delta)) of every COT.
    pub fn random_ot(&self, h: &Hasher) -> Vec<(u128, u128)> {
        let v1: Vec<u128> = self.v.iter().map(|v| v ^ self.delta).collect();
        hash_run(h, &self.v, self.first)
            .into_iter()
            .zip(hash_run(h, &v1, self.first))
            .collect()
    }

    /// Applies the receiver's [`CotReceiver::fix_choices`] message: V_i becomes V_i xor d_i
    /// Delta with its lsb cleared (the receiver sets the lsb of W_i to b_i), so W_i = V_i xor
    /// b_i Delta holds with the wanted choices and the lsb rule is kept.
    pub fn fix_choices(&mut self, d: &[bool]) {
        assert_eq!(d.len(), self.v.len(), "one fix per COT");
        for (v, &d) in self.v.iter_mut().zip(d) {
            if d {
                *v = (*v ^ self.delta) & !1;
            }
        }
    }

    /// Additive COT in F_p, sender: for correlations `x` it keeps r_i = H(V_i) mod p (reduced
    /// from all 128 bits, so r_i is within 2^-87 of uniform for a 41-bit p) and returns what it
    /// sends, y_i = H(V_i xor Delta) - r_i - x_i mod p; the pair's shares are (-r_i, t_i).
    pub fn additive(&self, h: &Hasher, f: &Field, x: &[u64]) -> (Vec<u64>, Vec<u64>) {
        assert_eq!(x.len(), self.v.len(), "one correlation per COT");
        let p = f.p() as u128;
        let (r, y) = self
            .random_ot(h)
            .into_iter()
            .zip(x)
            .map(|((k0, k1), &x)| {
                let r = (k0 % p) as u64;
                let k1 = (k1 % p) as u64;
                (r, f.sub(f.sub(k1, r), f.reduce(x)))
            })
            .unzip();
        (r, y)
    }
}

/// A run of COTs as a trusted dealer would hand them out, with the receiver's choices: the
/// tests of what is built on COTs use it (sessions make them by silent OT between the parties).
#[cfg(test)]
pub(crate) fn dealt<R: rand::Rng>(
    rng: &mut R,
    n: usize,
    first: u64,
) -> (CotSender, CotReceiver, Vec<bool>) {
    let delta = rng.random::<u128>() | 1;
    let c: Vec<bool> = (0..n).map(|_| rng.random()).collect();
    let v: Vec<u128> = (0..n).map(|_| rng.random::<u128>() & !1).collect();
    let w = v
        .iter()
        .zip(&c)
        .map(|(&v, &c)| if c { v ^ delta } else { v })
        .collect();
    (CotSender { delta, v, first }, CotReceiver { w, first }, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn random_ots_give_the_receiver_the_message_of_its_choice_and_not_the_other() {
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (s, r, c) = dealt(&mut rng, 300, 1 << 40);
        let pairs = s.random_ot(&h);
        let (choice, got) = r.random_ot(&h);
        assert_eq!(choice, c);
        for (i, ((m0, m1), g)) in pairs.iter().zip(&got).enumerate() {
            let (want, other) = if c[i] { (m1, m0) } else { (m0, m1) };
            assert_eq!(g, want, "COT {i}");
            assert_ne!(g, other, "COT {i}: the other message differs");
        }
        // The index is in the tweak: the same correlation at another index hashes apart.
        let moved = CotSender {
            first: s.first + 1,
            ..s.clone()
        };
        assert_ne!(moved.random_ot(&h)[0], pairs[0]);
    }

    #[test]
    fn fixed_choices_keep_the_correlation_with_the_wanted_bits() {
        let h = Hasher::default();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let (mut s, mut r, _) = dealt(&mut rng, 200, 0);
        let wanted: Vec<bool> = (0..200).map(|_| rng.random()).collect();
        let d = r.fix_choices(&wanted);
        s.fix_choices(&d);
        for (i, ((&w, &v), &b)) in r.w.iter().zip(&s.v).zip(&wanted).enumerate() {
            assert_eq!(w, if b { v ^ s.delta } else { v }, "COT {i}");
            assert_eq!(v & 1, 0);
        }
        let pairs = s.random_ot(&h);
        let (choice, got) = r.random_ot(&h);
        assert_eq!(choice, wanted);
        for ((g, (m0, m1)), &b) in got.iter().zip(&pairs).zip(&wanted) {
            assert_eq!(g, if b { m1 } else { m0 });
        }
    }

    #[test]
    fn additive_cots_share_the_choice_times_the_correlation_in_the_field() {
        let h = Hasher::default();
        let f = Field::new(2061584302081).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (s, r, c) = dealt(&mut rng, 500, 99);
        let mut x: Vec<u64> = (0..500).map(|_| f.random(&mut rng)).collect();
        x[0] = 0;
        x[1] = f.p() - 1;
        let (keep, y) = s.additive(&h, &f, &x);
        let t = r.additive(&h, &f, &y);
        for (i, (((&t, &keep), &y), (&c, &x))) in t
            .iter()
            .zip(&keep)
            .zip(&y)
            .zip(c.iter().zip(&x))
            .enumerate()
        {
            // Clear reference: c_i * x_i mod p.
            assert_eq!(f.sub(t, keep), if c { x } else { 0 }, "COT {i}");
            assert!(t < f.p() && keep < f.p() && y < f.p());
        }
    }
}
