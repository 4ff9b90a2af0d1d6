//! The fixed-point format: values of F_p read as signed integers in (-p/2, p/2) scaled by
//! 2^-scale, and the choice of BFV-batching-friendly primes.

use serde::{Deserialize, Serialize};

/// Delphi's prime 15 * 2^37 + 1 (41 bits): batching-friendly for BFV up to N = 2^36.
pub const DELPHI_PRIME: u64 = 2_061_584_302_081;

/// The field and the number of fractional bits of activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedPoint {
    /// The prime modulus.
    pub p: u64,
    /// Fractional bits of every activation leaving a non-linear layer.
    pub frac_bits: u32,
}

impl FixedPoint {
    /// Largest magnitude a signed value may have without wrapping: (p - 1) / 2.
    pub fn max_signed(&self) -> u64 {
        (self.p - 1) / 2
    }

    /// Bits of p.
    pub fn prime_bits(&self) -> u32 {
        64 - self.p.leading_zeros()
    }

    /// Reduces any integer into the centred range (-p/2, p/2].
    pub fn center_i128(&self, v: i128) -> i64 {
        let p = self.p as i128;
        let mut r = v.rem_euclid(p);
        if r > (p - 1) / 2 {
            r -= p;
        }
        r as i64
    }

    /// Reduces an i64 into the centred range.
    pub fn center(&self, v: i64) -> i64 {
        let p = self.p as i64;
        let mut r = v.rem_euclid(p);
        if r > (p - 1) / 2 {
            r -= p;
        }
        r
    }

    /// The canonical field element in [0, p) of a centred value.
    pub fn to_field(&self, v: i64) -> u64 {
        v.rem_euclid(self.p as i64) as u64
    }

    /// The centred value of a field element.
    pub fn from_field(&self, x: u64) -> i64 {
        self.center((x % self.p) as i64)
    }

    /// Encodes a real number with `scale` fractional bits (round to nearest), centred mod p.
    pub fn encode(&self, x: f64, scale: u32) -> i64 {
        let v = (x * (scale as f64).exp2()).round();
        // Saturate before the cast; values beyond i64 wrap mod p like any other overflow.
        let v = v.clamp(-(2f64.powi(62)), 2f64.powi(62)) as i64;
        self.center(v)
    }

    /// Decodes a centred value with `scale` fractional bits.
    pub fn decode(&self, v: i64, scale: u32) -> f64 {
        v as f64 / (scale as f64).exp2()
    }
}

/// Deterministic Miller-Rabin for 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        b %= n;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, b);
            }
            b = mulmod(b, b);
            e >>= 1;
        }
        r
    };
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// The smallest prime p > 2^(bits-1) with p = 1 mod 2^two_adicity (so BFV can batch with
/// ring degree up to 2^(two_adicity-1)). Delphi's prime has bits 41, two-adicity 37.
pub fn batching_prime(bits: u32, two_adicity: u32) -> Option<u64> {
    if !(two_adicity + 1..=62).contains(&bits) {
        return None;
    }
    let step = 1u64 << two_adicity;
    let mut p = (1u64 << (bits - 1)) + 1;
    while p < (1u64 << bits) {
        if is_prime(p) {
            return Some(p);
        }
        p += step;
    }
    None
}

/// The candidate primes the compiler picks from, smallest first: Delphi's 41-bit prime, then
/// larger batching-friendly primes (p = 1 mod 2^14, enough for N = 8192) for models whose range
/// analysis needs more room.
pub fn candidate_primes() -> Vec<u64> {
    let mut v = vec![DELPHI_PRIME];
    for bits in [45u32, 49, 53, 57, 61] {
        if let Some(p) = batching_prime(bits, 14) {
            v.push(p);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delphi_prime_is_prime_and_friendly() {
        assert!(is_prime(DELPHI_PRIME));
        assert_eq!(DELPHI_PRIME, 15 * (1u64 << 37) + 1);
        assert!(!is_prime(DELPHI_PRIME + 2));
    }

    #[test]
    fn miller_rabin_matches_trial_division() {
        let trial = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        for n in 0..5000u64 {
            assert_eq!(is_prime(n), trial(n), "{n}");
        }
        for n in (1u64 << 32)..(1u64 << 32) + 300 {
            assert_eq!(is_prime(n), trial(n), "{n}");
        }
    }

    #[test]
    fn candidates_are_batching_primes() {
        for p in candidate_primes() {
            assert!(is_prime(p));
            assert_eq!((p - 1) % (1 << 14), 0);
        }
    }

    #[test]
    fn encode_decode_and_centering() {
        let fp = FixedPoint {
            p: DELPHI_PRIME,
            frac_bits: 8,
        };
        assert_eq!(fp.encode(1.5, 8), 384);
        assert_eq!(fp.encode(-1.5, 8), -384);
        assert_eq!(fp.decode(-384, 8), -1.5);
        assert_eq!(fp.to_field(-1), DELPHI_PRIME - 1);
        assert_eq!(fp.from_field(DELPHI_PRIME - 1), -1);
        assert_eq!(
            fp.center(fp.max_signed() as i64 + 1),
            -(fp.max_signed() as i64)
        );
        assert_eq!(fp.center_i128(DELPHI_PRIME as i128 * 5 + 7), 7);
    }
}
