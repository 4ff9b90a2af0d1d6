//! Weight pruning: the projection onto a per-layer cardinality constraint ("at most
//! (1 - S) n non-zero weights"), which is the compiler's retrain-free path and the Z-step of
//! SLR training (surrogate Lagrangian relaxation: W-step by SGD on the augmented Lagrangian,
//! Z-step by this projection, multipliers updated in between).
//!
//! The projection is aligned with the layer's HE packing so that the zeros save real work:
//! whole product blocks (the kernels of one group of output channels over one block of input
//! channels, which the server multiplies as one plaintext) go first, smallest Frobenius norm
//! first, and single weights, smallest magnitude first, make up the rest. The layer ends with
//! exactly round(S n) zeros (more only if it had more to begin with). Zero blocks skip HE
//! products offline, zero weights skip multiply-adds online.

use c3d_ir::packing::{ConvShape, Packing};

/// Projects `w` (layout C_out, C_in, taps) onto at most (1 - `sparsity`) of its size in
/// non-zeros, block-aligned with `pk`. Returns the number of zeros.
pub fn project(w: &mut [f32], s: &ConvShape, pk: &Packing, sparsity: f64) -> usize {
    let n = w.len();
    let target = ((sparsity.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut zeros = w.iter().filter(|&&v| v == 0.0).count();
    if zeros >= target || n == 0 {
        return zeros;
    }
    let taps = if s.depthwise {
        n / s.c_out.max(1)
    } else {
        n / (s.c_out * s.c_in).max(1)
    };
    let idx = |o: usize, c: usize| (o * s.c_in + c) * taps;
    // Blocks of the packing: (input block, output group), with their norms.
    let mut blocks: Vec<(f64, usize, usize)> = Vec::new();
    if !s.depthwise {
        for b in 0..pk.in_blocks(s) {
            for g in 0..pk.out_groups(s) {
                let mut norm = 0f64;
                for o in g * pk.m_o..((g + 1) * pk.m_o).min(s.c_out) {
                    for c in b * pk.c_t..((b + 1) * pk.c_t).min(s.c_in) {
                        norm += w[idx(o, c)..idx(o, c) + taps]
                            .iter()
                            .map(|&v| v as f64 * v as f64)
                            .sum::<f64>();
                    }
                }
                blocks.push((norm, b, g));
            }
        }
    }
    blocks.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(_, b, g) in &blocks {
        let mut live = 0;
        for o in g * pk.m_o..((g + 1) * pk.m_o).min(s.c_out) {
            for c in b * pk.c_t..((b + 1) * pk.c_t).min(s.c_in) {
                live += w[idx(o, c)..idx(o, c) + taps]
                    .iter()
                    .filter(|&&v| v != 0.0)
                    .count();
            }
        }
        if live == 0 || zeros + live > target {
            continue;
        }
        for o in g * pk.m_o..((g + 1) * pk.m_o).min(s.c_out) {
            for c in b * pk.c_t..((b + 1) * pk.c_t).min(s.c_in) {
                w[idx(o, c)..idx(o, c) + taps].fill(0.0);
            }
        }
        zeros += live;
    }
    // Single weights make up the rest.
    let mut rest: Vec<usize> = (0..n).filter(|&i| w[i] != 0.0).collect();
    rest.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
    for &i in rest.iter().take(target - zeros) {
        w[i] = 0.0;
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn layer() -> (ConvShape, Packing, Vec<f32>) {
        let s = ConvShape {
            c_in: 6,
            c_out: 8,
            input: [2, 4, 4],
            kernel: [3, 3, 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        };
        let pk = Packing {
            tile: [2, 4, 4],
            c_t: 2,
            m_o: 4,
            degree: 8192,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let w = (0..s.weight_len())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        (s, pk, w)
    }

    #[test]
    fn meets_the_sparsity_exactly_and_keeps_the_largest() {
        for sp in [0.0, 0.5, 0.9, 0.95, 0.333] {
            let (s, pk, w0) = layer();
            let mut w = w0.clone();
            let z = project(&mut w, &s, &pk, sp);
            let want = (sp * w.len() as f64).round() as usize;
            assert_eq!(z, want);
            assert_eq!(
                w.iter().filter(|&&v| v == 0.0).count(),
                want,
                "sparsity {sp}"
            );
            // Survivors are unchanged.
            for (a, b) in w.iter().zip(&w0) {
                assert!(*a == 0.0 || a == b);
            }
        }
    }

    #[test]
    fn whole_blocks_go_first() {
        // Make one block (inputs 0..2, outputs 0..4) tiny: at 1/6 sparsity it is exactly the
        // block that goes, so the packing skips its product.
        let (s, pk, mut w) = layer();
        let taps = 27;
        for o in 0..4 {
            for c in 0..2 {
                for t in 0..taps {
                    w[(o * 6 + c) * taps + t] *= 1e-3;
                }
            }
        }
        let mut w2 = w.clone();
        project(&mut w2, &s, &pk, 1.0 / 6.0);
        for o in 0..8 {
            for c in 0..6 {
                let k = &w2[(o * 6 + c) * taps..(o * 6 + c + 1) * taps];
                let zero = k.iter().all(|&v| v == 0.0);
                assert_eq!(zero, o < 4 && c < 2, "kernel ({o},{c})");
            }
        }
        // Only the scaled block went: 4 x 2 kernels of 27 weights, each below 1e-3.
        let removed: f32 = w
            .iter()
            .zip(&w2)
            .filter(|(_, b)| **b == 0.0)
            .map(|(a, _)| a.abs())
            .sum();
        assert!(removed <= 4.0 * 2.0 * 27.0 * 1e-3, "{removed}");
    }
}
