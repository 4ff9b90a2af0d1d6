//! The online half of a linear layer: the server applies its weights to its share in plain
//! field arithmetic. Products are accumulated in u128 and reduced only when the next one could
//! overflow, one output channel per task.

use super::packing::ConvShape;
use rayon::prelude::*;

/// W x + b mod p for a share x (layout C, D, H, W), weights (C_out, C_in or 1, kd, kh, kw) and
/// one bias per output channel, all field elements.
pub fn apply(s: &ConvShape, x: &[u64], w: &[u64], bias: &[u64], p: u64) -> Vec<u64> {
    assert_eq!(x.len(), s.input_len(), "input length");
    assert_eq!(w.len(), s.weight_len(), "weight length");
    assert_eq!(bias.len(), s.c_out, "bias length");
    let [od, oh, ow] = s.output();
    let [id, ih, iw] = s.input;
    let [kd, kh, kw] = s.kernel;
    let plane = od * oh * ow;
    let pm = p as u128 - 1;
    // Products are below (p-1)^2; this many fit in a u128 on top of a reduced value.
    let cap = ((u128::MAX - pm) / (pm * pm).max(1)).min(1 << 20) as usize;
    let per_o = if s.depthwise { 1 } else { s.c_in };
    // Valid (output, input) index pairs along one axis for kernel tap k.
    let axis = |a: usize, k: usize, olen: usize, ilen: usize| -> Vec<(usize, usize)> {
        (0..olen)
            .filter_map(|o| {
                let i = (o * s.stride[a] + k * s.dilation[a]) as isize - s.pad_begin[a] as isize;
                (i >= 0 && (i as usize) < ilen).then_some((o, i as usize))
            })
            .collect()
    };
    let zs: Vec<_> = (0..kd).map(|k| axis(0, k, od, id)).collect();
    let ys: Vec<_> = (0..kh).map(|k| axis(1, k, oh, ih)).collect();
    let xs: Vec<_> = (0..kw).map(|k| axis(2, k, ow, iw)).collect();
    let mut out = vec![0u64; s.output_len()];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(o, out_o)| {
            let mut acc = vec![0u128; plane];
            let mut terms = 0usize;
            for ci in 0..per_o {
                let c = if s.depthwise { o } else { ci };
                for i in 0..kd {
                    for j in 0..kh {
                        for l in 0..kw {
                            let wv = w[(((o * per_o + ci) * kd + i) * kh + j) * kw + l];
                            if wv == 0 {
                                continue;
                            }
                            if terms == cap {
                                acc.iter_mut().for_each(|a| *a %= p as u128);
                                terms = 0;
                            }
                            terms += 1;
                            let wv = wv as u128;
                            for &(z, zi) in &zs[i] {
                                for &(y, yi) in &ys[j] {
                                    let row = &x[((c * id + zi) * ih + yi) * iw..][..iw];
                                    let arow = &mut acc[(z * oh + y) * ow..][..ow];
                                    for &(xo, xi) in &xs[l] {
                                        arow[xo] += wv * row[xi] as u128;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let b = bias[o] as u128;
            for (d, a) in out_o.iter_mut().zip(&acc) {
                *d = ((a % p as u128 + b) % p as u128) as u64;
            }
        });
    out
}

/// Multiply-adds [`apply`] performs: zero weights (pruned) and taps in the padding skipped.
pub fn macs(s: &ConvShape, w: &[u64]) -> u64 {
    let [od, oh, ow] = s.output();
    let [kd, kh, kw] = s.kernel;
    let valid = |a: usize, k: usize, olen: usize| -> u64 {
        (0..olen)
            .filter(|&o| {
                let i = (o * s.stride[a] + k * s.dilation[a]) as isize - s.pad_begin[a] as isize;
                i >= 0 && (i as usize) < s.input[a]
            })
            .count() as u64
    };
    let zs: Vec<u64> = (0..kd).map(|k| valid(0, k, od)).collect();
    let ys: Vec<u64> = (0..kh).map(|k| valid(1, k, oh)).collect();
    let xs: Vec<u64> = (0..kw).map(|k| valid(2, k, ow)).collect();
    let taps = kd * kh * kw;
    w.iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(i, _)| {
            let t = i % taps;
            zs[t / (kh * kw)] * ys[(t / kw) % kh] * xs[t % kw]
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn equals_the_clear_reference_with_bias() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for (p, shape) in [
            (
                c3d_ir::fixed::DELPHI_PRIME,
                ConvShape {
                    c_in: 3,
                    c_out: 4,
                    input: [3, 5, 6],
                    kernel: [2, 3, 3],
                    stride: [1, 2, 1],
                    dilation: [1, 1, 2],
                    pad_begin: [1, 1, 0],
                    pad_end: [0, 2, 1],
                    depthwise: false,
                },
            ),
            // A 61-bit prime: the accumulator must reduce every few terms.
            ((1u64 << 61) - 1, ConvShape::fully_connected(300, 7)),
            (
                65537,
                ConvShape {
                    depthwise: true,
                    c_out: 3,
                    ..ConvShape::fully_connected(3, 3)
                },
            ),
        ] {
            let x: Vec<u64> = (0..shape.input_len())
                .map(|_| rng.random_range(0..p))
                .collect();
            let w: Vec<u64> = (0..shape.weight_len())
                .map(|k| {
                    if k % 5 == 0 {
                        0
                    } else {
                        rng.random_range(0..p)
                    }
                })
                .collect();
            let b: Vec<u64> = (0..shape.c_out).map(|_| rng.random_range(0..p)).collect();
            let want = shape.apply(&x, &w, p);
            let plane = shape.output_len() / shape.c_out;
            let want: Vec<u64> = want
                .iter()
                .enumerate()
                .map(|(i, &v)| ((v as u128 + b[i / plane] as u128) % p as u128) as u64)
                .collect();
            assert_eq!(apply(&shape, &x, &w, &b, p), want, "{shape:?}");
        }
    }
}
