//! The values of half-gates garbling, each its own type so one cannot stand for another: a
//! wire [`Label`], the free-XOR offset [`Delta`] and the hash [`Tweak`]. All are 128 bits,
//! `#[repr(transparent)]` over `u128`, and every operation is inlined, so the types cost
//! nothing over bare words.

use rand::{CryptoRng, Rng};
use std::ops::BitXor;

/// A 128-bit wire label: one of the two a garbler assigns to each wire, L or L ^ delta.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Label(u128);

/// The garbler's global free-XOR offset: the two labels of every wire differ by it. Its
/// least significant bit is set, so the two labels of a wire have opposite colour bits
/// (point-and-permute). Made only from a cryptographic generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Delta(u128);

/// A tweak of the correlation-robust hash. The AND gate at tweak t hashes under 2j and
/// 2j + 1 with j = t / 2, and the next gate is at 2j + 2, so no two gates share a tweak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Tweak(u128);

impl Label {
    /// A uniformly random label (one 128-bit draw from `rng`).
    #[inline]
    pub fn random<R: Rng + CryptoRng>(rng: &mut R) -> Label {
        Label(rng.random::<u128>())
    }

    /// The label as it goes on the wire: 16 bytes, little-endian.
    #[inline(always)]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }

    /// The label of 16 wire bytes (little-endian).
    #[inline(always)]
    pub fn from_bytes(b: [u8; 16]) -> Label {
        Label(u128::from_le_bytes(b))
    }

    /// The colour bit of point-and-permute (the least significant bit), which tells the
    /// evaluator which table row to use and nothing about the wire's value.
    #[inline(always)]
    pub fn pointer(self) -> bool {
        self.0 & 1 == 1
    }

    /// The low 64 bits, all the server keeps of an output zero label: enough to tell the
    /// wire's two labels apart and to catch a wrong one.
    #[inline(always)]
    pub fn low_half(self) -> u64 {
        self.0 as u64
    }

    /// `self` if `bit`, else the zero label; without a branch on the bit.
    #[inline(always)]
    pub fn select(self, bit: bool) -> Label {
        Label((bit as u128).wrapping_neg() & self.0)
    }
}

impl Delta {
    /// A fresh offset from a cryptographic generator: one 128-bit draw, least significant
    /// bit set.
    #[inline]
    pub fn random<R: Rng + CryptoRng>(rng: &mut R) -> Delta {
        Delta(rng.random::<u128>() | 1)
    }

    /// The offset as a label if `bit`, else the zero label; without a branch on the bit.
    #[inline(always)]
    pub fn select(self, bit: bool) -> Label {
        Label(self.0).select(bit)
    }

    /// The low 64 bits, all the server keeps to tell a wire's two labels apart.
    #[inline(always)]
    pub fn low_half(self) -> u64 {
        self.0 as u64
    }
}

impl Tweak {
    /// The tweak `t` (public: tweaks only keep hash inputs apart).
    #[inline(always)]
    pub const fn new(t: u128) -> Tweak {
        Tweak(t)
    }

    /// The two tweaks of the AND gate at this tweak: the garbler half's and the evaluator
    /// half's.
    #[inline(always)]
    pub fn and_gate(self) -> [Tweak; 2] {
        let j = self.0 / 2;
        [Tweak(2 * j), Tweak(2 * j + 1)]
    }

    /// The tweak of the next AND gate.
    #[inline(always)]
    pub fn next_gate(self) -> Tweak {
        Tweak(2 * (self.0 / 2 + 1))
    }

    /// The tweak as the hash's block: 16 bytes, little-endian.
    #[inline(always)]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}

impl BitXor for Label {
    type Output = Label;
    #[inline(always)]
    fn bitxor(self, o: Label) -> Label {
        Label(self.0 ^ o.0)
    }
}

impl BitXor<Delta> for Label {
    type Output = Label;
    #[inline(always)]
    fn bitxor(self, d: Delta) -> Label {
        Label(self.0 ^ d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn a_delta_flips_the_colour_bit_and_select_is_all_or_nothing() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..100 {
            let (l, d) = (Label::random(&mut rng), Delta::random(&mut rng));
            assert_ne!(l.pointer(), (l ^ d).pointer());
            assert_eq!(l ^ d ^ d, l);
            assert_eq!(l.select(true), l);
            assert_eq!(l.select(false), Label::default());
            assert_eq!(Label::default() ^ d.select(true), l ^ l ^ d);
            assert_eq!(Label::from_bytes(l.to_bytes()), l);
        }
    }

    #[test]
    fn gate_tweaks_never_repeat() {
        let mut t = Tweak::new(7 << 40);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for x in t.and_gate() {
                assert!(seen.insert(x.to_bytes()), "tweak {x:?} twice");
            }
            t = t.next_gate();
        }
        assert_eq!(Tweak::new(5).and_gate(), [Tweak::new(4), Tweak::new(5)]);
    }
}
