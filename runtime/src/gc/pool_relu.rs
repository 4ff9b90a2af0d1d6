//! The circuits of the garbled layers, ReLU, max-pool and max-pool + ReLU, all one
//! construction over F_p: reconstruct each of k values from the two shares, take the maximum
//! as signed values, truncate by t bits (floor), optionally apply ReLU, and re-mask with the
//! evaluator's next-layer mask. k = 1 with ReLU is a plain ReLU; k > 1 is a pooling window.
//!
//! Inputs. Garbler: for each j, its share s_j with the offset H = (p-1)/2 already added,
//! s_j + H mod p (done in the clear; see [`garbler_input`]). Then y_j + H mod p is monotone in
//! the signed value of y_j, so the maximum is an unsigned comparison and the sign falls out of
//! the subtraction of H. Evaluator: its shares c_j, then -r mod p.
//! Output: (f(max_j floor(y_j / 2^t)) - r) mod p, where y_j is the centred value of s_j + c_j
//! and f is ReLU or the identity. This is exactly what `c3dc simulate` computes.

use super::circuit::{to_bits, Bits, Builder, Circuit};

/// Bits of p.
pub fn width(p: u64) -> usize {
    (64 - p.leading_zeros()) as usize
}

/// The garbler's input bits for its shares: s_j + (p-1)/2 mod p, each `width(p)` bits.
pub fn garbler_input(p: u64, shares: &[u64]) -> Vec<bool> {
    let h = (p - 1) / 2;
    shares
        .iter()
        .flat_map(|&s| to_bits(((s as u128 + h as u128) % p as u128) as u64, width(p)))
        .collect()
}

/// The evaluator's input bits: its shares, then -r mod p.
pub fn evaluator_input(p: u64, shares: &[u64], r: u64) -> Vec<bool> {
    let n = width(p);
    shares
        .iter()
        .flat_map(|&c| to_bits(c, n))
        .chain(to_bits((p - r % p) % p, n))
        .collect()
}

/// The circuit for k values, truncation t, with or without ReLU.
pub fn pool_relu(p: u64, t: u32, k: usize, relu: bool) -> Circuit {
    assert!(
        k >= 1 && (t as usize) < width(p),
        "k >= 1 and t below the width of p"
    );
    let n = width(p);
    let h = (p - 1) / 2;
    let (mut b, g, e) = Builder::new((k * n) as u32, ((k + 1) * n) as u32);
    // Keys y_j + H mod p, maximum by unsigned comparison.
    let mut m: Bits = b.add_mod(&g[..n], &e[..n], p);
    for j in 1..k {
        let key = b.add_mod(&g[j * n..(j + 1) * n], &e[j * n..(j + 1) * n], p);
        let (_, lt) = b.sub_borrow(&m, &key);
        m = b.mux(lt, &key, &m);
    }
    // Signed value v = m - H in n + 1 bits two's complement; the borrow is the sign.
    let zero = b.constant(false);
    let mut m1 = m.clone();
    m1.push(zero);
    let hb = b.constant_bits(h as u128, n + 1);
    let (v, neg) = b.sub_borrow(&m1, &hb);
    let tu = t as usize;
    let val: Bits = if relu {
        // Non-negative: v < 2^(n-1), so v >> t fits; negative: 0.
        let keep = b.not(neg);
        (0..n)
            .map(|i| {
                if i + tu < n {
                    b.and(v[i + tu], keep)
                } else {
                    zero
                }
            })
            .collect()
    } else {
        // Arithmetic shift of the n+1-bit value, then back into [0, p) by adding p if negative.
        let shifted: Bits = (0..=n)
            .map(|i| if i + tu <= n { v[i + tu] } else { neg })
            .collect();
        let pb: Bits = b
            .constant_bits(p as u128, n + 1)
            .into_iter()
            .map(|w| b.and(w, neg))
            .collect();
        let (s, _) = b.add_carry(&shifted, &pb, zero);
        s[..n].to_vec()
    };
    let out = b.add_mod(&val, &e[k * n..(k + 1) * n], p);
    b.finish(out)
}

/// The same computation on integers: the reference the circuits are tested against.
pub fn reference(p: u64, t: u32, relu: bool, s: &[u64], c: &[u64], r: u64) -> u64 {
    let pi = p as i128;
    let m = s
        .iter()
        .zip(c)
        .map(|(&a, &b)| {
            let y = (a as i128 + b as i128).rem_euclid(pi);
            let y = if y > (pi - 1) / 2 { y - pi } else { y };
            y >> t
        })
        .max()
        .expect("k >= 1");
    let v = if relu { m.max(0) } else { m };
    (v - r as i128).rem_euclid(pi) as u64
}

#[cfg(test)]
mod tests {
    use super::super::circuit::from_bits;
    use super::super::halfgates::tests_support::run_garbled;
    use super::*;
    use c3d_ir::fixed::DELPHI_PRIME;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Shares of chosen signed values: c uniform, s = y - c.
    fn shares(p: u64, ys: &[i64], rng: &mut ChaCha20Rng) -> (Vec<u64>, Vec<u64>) {
        let c: Vec<u64> = ys.iter().map(|_| rng.random_range(0..p)).collect();
        let s = ys
            .iter()
            .zip(&c)
            .map(|(&y, &cv)| (y as i128 - cv as i128).rem_euclid(p as i128) as u64)
            .collect();
        (s, c)
    }

    fn check(p: u64, t: u32, relu: bool, ys: &[i64], rng: &mut ChaCha20Rng, garbled: bool) {
        let circ = pool_relu(p, t, ys.len(), relu);
        let (s, c) = shares(p, ys, rng);
        let r = rng.random_range(0..p);
        let gi = garbler_input(p, &s);
        let ei = evaluator_input(p, &c, r);
        let want = reference(p, t, relu, &s, &c, r);
        let clear = from_bits(&circ.eval(&gi, &ei));
        assert_eq!(clear, want, "p {p} t {t} relu {relu} ys {ys:?}");
        if garbled {
            assert_eq!(
                from_bits(&run_garbled(&circ, &gi, &ei, rng)),
                want,
                "garbled, ys {ys:?}"
            );
        }
    }

    #[test]
    fn relu_and_pools_match_the_reference_on_edge_values() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        for p in [DELPHI_PRIME, 65537, 251] {
            let h = ((p - 1) / 2) as i64;
            for t in [0u32, 1, 5] {
                let step = 1i64 << t;
                let edges = [
                    0,
                    1,
                    -1,
                    step - 1,
                    step,
                    -step,
                    -step + 1,
                    -step - 1,
                    h,
                    -h,
                    h - 1,
                    -h + 1,
                ];
                for relu in [true, false] {
                    for &y in &edges {
                        check(p, t, relu, &[y], &mut rng, false);
                    }
                    // Windows with equal maxima, all negative, mixed.
                    check(p, t, relu, &[5, 5, 5, 5], &mut rng, false);
                    check(p, t, relu, &[-h, -3, -h + 7, -1], &mut rng, false);
                    check(p, t, relu, &[h, -h, 0, h], &mut rng, false);
                }
            }
        }
    }

    #[test]
    fn random_values_clear_and_garbled() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let p = DELPHI_PRIME;
        let h = ((p - 1) / 2) as i64;
        for i in 0..300 {
            let k = [1, 4, 8][i % 3];
            let ys: Vec<i64> = (0..k).map(|_| rng.random_range(-h..=h)).collect();
            let t = rng.random_range(0..20);
            check(p, t, i % 2 == 0, &ys, &mut rng, i % 10 == 0);
        }
    }

    #[test]
    fn the_compilers_cost_model_counts_these_circuits_exactly() {
        for p in c3d_ir::fixed::candidate_primes()
            .into_iter()
            .chain([DELPHI_PRIME, (1 << 61) - 1])
        {
            for t in [0u32, 8, 12, 20] {
                for k in [1usize, 2, 4, 8, 27] {
                    for relu in [true, false] {
                        assert_eq!(
                            pool_relu(p, t, k, relu).and_count() as u64,
                            c3d_passes::cost::gc_unit_ands(p, t, k as u64, relu),
                            "p = {p}, t = {t}, k = {k}, relu = {relu}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn and_gate_counts_at_the_plans_prime() {
        let relu = pool_relu(DELPHI_PRIME, 12, 1, true).and_count();
        let pool8 = pool_relu(DELPHI_PRIME, 12, 8, true).and_count();
        let pool4 = pool_relu(DELPHI_PRIME, 12, 4, false).and_count();
        eprintln!("41-bit p, t = 12: ReLU {relu} ANDs, 2x2x2 pool+ReLU {pool8} ({:.0} per input), 1x2x2 pool {pool4}", pool8 as f64 / 8.0);
        // Delphi's ReLU is about 324 ANDs; ours must stay below it.
        assert!(relu < 324, "{relu}");
        // A fused window costs less per input than separate ReLUs would.
        assert!(pool8 < 8 * relu);
    }
}
