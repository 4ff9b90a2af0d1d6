//! Arithmetic in F_p for the plan's prime (p < 2^62), vectorised over slices: Montgomery
//! multiplication, additive sharing, and fixed-point encoding. No model knowledge here.

use c3d_ir::FixedPoint;
use rand::{CryptoRng, Rng};

/// The prime field of a plan, with its Montgomery constants (R = 2^64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    p: u64,
    /// -p^-1 mod 2^64.
    p_neg_inv: u64,
    /// R^2 mod p.
    r2: u64,
    /// Bits of p, for uniform sampling by rejection.
    bits: u32,
}

/// Why a modulus cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("field modulus {0} is not an odd prime below 2^62")]
pub struct BadModulus(pub u64);

/// An operand prepared for repeated multiplication (kept in Montgomery form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared(u64);

impl Field {
    /// The field of prime `p` (odd, below 2^62).
    pub fn new(p: u64) -> Result<Self, BadModulus> {
        if !(3..1 << 62).contains(&p) || !c3d_ir::fixed::is_prime(p) {
            return Err(BadModulus(p));
        }
        // Newton iteration for p^-1 mod 2^64 (p odd): each step doubles the correct bits.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p.wrapping_mul(inv)));
        }
        let r = ((1u128 << 64) % p as u128) as u64;
        let r2 = ((r as u128 * r as u128) % p as u128) as u64;
        Ok(Field {
            p,
            p_neg_inv: inv.wrapping_neg(),
            r2,
            bits: 64 - p.leading_zeros(),
        })
    }

    /// The field of a plan's fixed-point format.
    pub fn of(fx: &FixedPoint) -> Result<Self, BadModulus> {
        Self::new(fx.p)
    }

    /// The modulus.
    pub fn p(&self) -> u64 {
        self.p
    }

    /// Montgomery reduction of t < p * 2^64: t * R^-1 mod p.
    #[inline(always)]
    fn redc(&self, t: u128) -> u64 {
        let m = (t as u64).wrapping_mul(self.p_neg_inv);
        // t + m p < 2^124 + 2^126: no overflow for p < 2^62.
        let u = ((t + m as u128 * self.p as u128) >> 64) as u64;
        if u >= self.p {
            u - self.p
        } else {
            u
        }
    }

    /// a + b mod p (canonical inputs).
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.p {
            s - self.p
        } else {
            s
        }
    }

    /// a - b mod p (canonical inputs).
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.p - b
        }
    }

    /// -a mod p.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.p - a
        }
    }

    /// Prepares `b` for [`Field::mul_prepared`].
    #[inline(always)]
    pub fn prepare(&self, b: u64) -> Prepared {
        Prepared(self.redc(b as u128 * self.r2 as u128))
    }

    /// a * b mod p with b prepared: one Montgomery reduction.
    #[inline(always)]
    pub fn mul_prepared(&self, a: u64, b: Prepared) -> u64 {
        self.redc(a as u128 * b.0 as u128)
    }

    /// a * b mod p (canonical inputs).
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.mul_prepared(a, self.prepare(b))
    }

    /// Reduces any u64.
    #[inline(always)]
    pub fn reduce(&self, a: u64) -> u64 {
        a % self.p
    }

    /// a[i] += b[i].
    pub fn add_assign(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len(), "slices of different lengths");
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.add(*x, y);
        }
    }

    /// a[i] -= b[i].
    pub fn sub_assign(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len(), "slices of different lengths");
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.sub(*x, y);
        }
    }

    /// a[i] *= b[i].
    pub fn mul_assign(&self, a: &mut [u64], b: &[u64]) {
        assert_eq!(a.len(), b.len(), "slices of different lengths");
        for (x, &y) in a.iter_mut().zip(b) {
            *x = self.mul(*x, y);
        }
    }

    /// a[i] *= c.
    pub fn scale_assign(&self, a: &mut [u64], c: u64) {
        let c = self.prepare(c);
        for x in a.iter_mut() {
            *x = self.mul_prepared(*x, c);
        }
    }

    /// acc[i] += c * b[i]: the inner loop of the online linear layers.
    pub fn axpy(&self, acc: &mut [u64], c: u64, b: &[u64]) {
        assert_eq!(acc.len(), b.len(), "slices of different lengths");
        let c = self.prepare(c);
        for (x, &y) in acc.iter_mut().zip(b) {
            *x = self.add(*x, self.mul_prepared(y, c));
        }
    }

    /// sum a[i] * b[i] mod p, reducing lazily: products below 2^124 are summed in u128 eight at a
    /// time (below 2^127) before one reduction.
    pub fn dot(&self, a: &[u64], b: &[u64]) -> u64 {
        assert_eq!(a.len(), b.len(), "slices of different lengths");
        let mut acc = 0u64;
        for (ca, cb) in a.chunks(8).zip(b.chunks(8)) {
            let t: u128 = ca
                .iter()
                .zip(cb)
                .map(|(&x, &y)| x as u128 * y as u128)
                .sum();
            acc = self.add(acc, (t % self.p as u128) as u64);
        }
        acc
    }

    /// A uniform element (rejection sampling, no modulo bias).
    pub fn random<R: Rng + CryptoRng>(&self, rng: &mut R) -> u64 {
        let mask = if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        loop {
            let r = rng.next_u64() & mask;
            if r < self.p {
                return r;
            }
        }
    }

    /// Uniform elements.
    pub fn random_vec<R: Rng + CryptoRng>(&self, rng: &mut R, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.random(rng)).collect()
    }

    /// Splits `x` into two additive shares: a uniform mask r and x - r.
    pub fn share<R: Rng + CryptoRng>(&self, x: &[u64], rng: &mut R) -> (Vec<u64>, Vec<u64>) {
        let r = self.random_vec(rng, x.len());
        let mut other = x.to_vec();
        self.sub_assign(&mut other, &r);
        (r, other)
    }

    /// Recombines two additive shares.
    pub fn reconstruct(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut out = a.to_vec();
        self.add_assign(&mut out, b);
        out
    }

    /// Encodes reals as field elements with `scale` fractional bits (the plan's rounding).
    pub fn encode(&self, fx: &FixedPoint, xs: &[f32], scale: u32) -> Vec<u64> {
        xs.iter()
            .map(|&x| fx.to_field(fx.encode(x as f64, scale)))
            .collect()
    }

    /// Decodes field elements with `scale` fractional bits and a public divisor.
    pub fn decode(&self, fx: &FixedPoint, xs: &[u64], scale: u32, divisor: u64) -> Vec<f32> {
        xs.iter()
            .map(|&x| (fx.decode(fx.from_field(x), scale) / divisor.max(1) as f64) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c3d_ir::fixed::{candidate_primes, DELPHI_PRIME};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn edge(p: u64) -> Vec<u64> {
        vec![0, 1, 2, p / 2, p / 2 + 1, p - 2, p - 1]
    }

    #[test]
    fn every_op_matches_u128_arithmetic() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for p in candidate_primes()
            .into_iter()
            .chain([3, 65537, (1 << 61) - 1])
        {
            let f = Field::new(p).unwrap();
            let mut vals = edge(p);
            vals.extend(f.random_vec(&mut rng, 200));
            for &a in &vals {
                for &b in vals.iter().step_by(7) {
                    let (a1, b1, p1) = (a as u128, b as u128, p as u128);
                    assert_eq!(f.add(a, b) as u128, (a1 + b1) % p1, "add {a} {b} mod {p}");
                    assert_eq!(
                        f.sub(a, b) as u128,
                        (a1 + p1 - b1) % p1,
                        "sub {a} {b} mod {p}"
                    );
                    assert_eq!(f.mul(a, b) as u128, (a1 * b1) % p1, "mul {a} {b} mod {p}");
                }
                assert_eq!(f.add(a, f.neg(a)), 0);
            }
        }
    }

    #[test]
    fn slice_ops_and_dot_match_the_scalar_definitions() {
        let f = Field::new(DELPHI_PRIME).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = f.random_vec(&mut rng, 1001);
        let b = f.random_vec(&mut rng, 1001);
        let p = DELPHI_PRIME as u128;
        let want: u128 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| x as u128 * y as u128 % p)
            .sum::<u128>()
            % p;
        assert_eq!(f.dot(&a, &b) as u128, want);
        let mut acc = a.clone();
        f.axpy(&mut acc, 12345, &b);
        for i in 0..a.len() {
            assert_eq!(acc[i] as u128, (a[i] as u128 + 12345 * b[i] as u128) % p);
        }
        let mut m = a.clone();
        f.mul_assign(&mut m, &b);
        let mut s = a.clone();
        f.scale_assign(&mut s, p as u64 - 1);
        for i in 0..a.len() {
            assert_eq!(m[i], f.mul(a[i], b[i]));
            assert_eq!(s[i], f.neg(a[i]));
        }
    }

    #[test]
    fn shares_reconstruct_and_masks_are_uniform() {
        let f = Field::new(DELPHI_PRIME).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let x = f.random_vec(&mut rng, 5000);
        let (r, y) = f.share(&x, &mut rng);
        assert_eq!(f.reconstruct(&r, &y), x);
        // The mask's top bit is set about as often as p's upper half predicts.
        let high = r.iter().filter(|&&v| v >= DELPHI_PRIME / 2).count() as f64 / r.len() as f64;
        assert!((high - 0.5).abs() < 0.03, "{high}");
        assert!(r.iter().all(|&v| v < DELPHI_PRIME));
    }

    #[test]
    fn fixed_point_round_trips_with_the_plans_format() {
        let fx = FixedPoint {
            p: DELPHI_PRIME,
            frac_bits: 12,
        };
        let f = Field::of(&fx).unwrap();
        let xs = [0.0f32, 1.5, -2.25, 1000.125, -1.0 / 4096.0];
        let e = f.encode(&fx, &xs, 12);
        assert_eq!(e[2], DELPHI_PRIME - 9216);
        assert_eq!(f.decode(&fx, &e, 12, 1), xs.to_vec());
        assert_eq!(f.decode(&fx, &e[1..2], 12, 3), vec![0.5]);
    }

    #[test]
    fn bad_moduli_are_refused() {
        for p in [0, 1, 2, 4, 9, 1 << 62, u64::MAX] {
            assert_eq!(Field::new(p), Err(BadModulus(p)));
        }
    }
}
