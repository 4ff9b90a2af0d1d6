//! Magnitude bounds of the range analysis, per tensor channel and in integer units: how each
//! op family maps its inputs' bounds to its output's. A linear layer's bound is its worst
//! case given its input's, which is sound; a non-linear layer's takes the smaller of that and
//! the calibrated largest value times the safety margin ([`calibrated`]).

use c3d_ir::{Shape, Window3d};

/// Largest public divisor the analysis lets accumulate before it uses a rounded reciprocal.
pub(crate) const MAX_DIVISOR: u64 = 1 << 20;

/// Per-channel magnitude bounds of one tensor (axis 1; one entry for rank below 2), in
/// integer units, and whether every value is known to be non-negative.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub(crate) chan: Vec<f64>,
    pub(crate) nonneg: bool,
}

impl Bound {
    pub(crate) fn max(&self) -> f64 {
        self.chan.iter().fold(0f64, |m, &v| m.max(v))
    }

    pub(crate) fn uniform(&self, n: usize) -> Bound {
        Bound {
            chan: vec![self.max(); n.max(1)],
            nonneg: self.nonneg,
        }
    }

    /// Input bounds come per colour channel; any other channel count gets the largest.
    pub(crate) fn uniform_if_needed(self, n: usize) -> Bound {
        if self.chan.len() == n {
            self
        } else {
            self.uniform(n)
        }
    }

    pub(crate) fn scaled(&self, k: f64) -> Bound {
        Bound {
            chan: self.chan.iter().map(|v| v * k).collect(),
            nonneg: self.nonneg,
        }
    }
}

/// Channels of a tensor of this shape (axis 1; one for rank below 2).
pub(crate) fn channels(s: &Shape) -> usize {
    if s.rank() >= 2 {
        s.dims()[1]
    } else {
        1
    }
}

/// Maps per-channel bounds through a reshape: each new channel takes the largest bound of the
/// old channels its elements came from (row-major order is kept).
pub(crate) fn reshape_bound(b: &Bound, from: &Shape, to: &Shape) -> Bound {
    let per = from.numel() / from.dims().first().copied().unwrap_or(1).max(1);
    let (c0, c1) = (channels(from), channels(to));
    if from.rank() < 2 || to.rank() < 2 || b.chan.len() != c0 {
        return b.uniform(c1);
    }
    let (in0, in1) = (per / c0.max(1), per / c1.max(1));
    let chan = (0..c1)
        .map(|j| {
            let (lo, hi) = (j * in1 / in0.max(1), ((j + 1) * in1 - 1) / in0.max(1));
            b.chan[lo..=hi.min(c0 - 1)]
                .iter()
                .fold(0f64, |m, &v| m.max(v))
        })
        .collect();
    Bound {
        chan,
        nonneg: b.nonneg,
    }
}

/// The number of inputs every window of a pool sums, when it is the same for all windows.
pub(crate) fn uniform_count(
    win: &Window3d,
    include_pad: bool,
    input: &Shape,
    out: &Shape,
) -> Option<usize> {
    let (_, _, d, h, w) = input.ncdhw()?;
    let (_, _, od, oh, ow) = out.ncdhw()?;
    let mut total = 1;
    for (a, (len, olen)) in [(d, od), (h, oh), (w, ow)].into_iter().enumerate() {
        let count = |o: usize| {
            if include_pad {
                win.padded_taps(a, o, len)
            } else {
                win.taps(a, o, len).count()
            }
        };
        let c0 = count(0);
        if (1..olen).any(|o| count(o) != c0) {
            return None;
        }
        total *= c0;
    }
    Some(total)
}

/// Per-output-channel bound of sum(round(w * 2^wb) * x) + b for inputs bounded per channel by
/// `inb`, computed from the float weights: rounding moves each weight by at most 1/2, which is
/// added as slack, so the bound holds for the quantized weights without quantizing them.
pub(crate) fn linear_bound(w: &[f32], bq: &[i64], inb: &Bound, wb: u32) -> Vec<f64> {
    use rayon::prelude::*;
    let cin = inb.chan.len().max(1);
    let per = w.len() / bq.len().max(1);
    let k = (per / cin).max(1);
    let scale = 2f64.powi(wb as i32);
    bq.par_iter()
        .enumerate()
        .map(|(o, &bo)| {
            let (mut pos, mut neg) = (0f64, 0f64);
            for (j, &wv) in w[o * per..(o + 1) * per].iter().enumerate() {
                let x = inb.chan[(j / k).min(cin - 1)];
                let q = (wv as f64 * scale).abs() + 0.5;
                if wv > 0.0 {
                    pos += q * x;
                } else if wv < 0.0 {
                    neg += q * x;
                }
            }
            let bo = bo as f64;
            if inb.nonneg {
                (pos + bo).abs().max((bo - neg).abs())
            } else {
                pos + neg + bo.abs()
            }
        })
        .collect()
}

/// Greatest common divisor (for the common divisor of joined tensors).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Per channel, the smaller of the sound bound (divided by `k`, the truncation) and the
/// calibrated largest value in integer units (`unit` = 2^(scale + safety) * divisor); no
/// calibration means the sound bound.
pub(crate) fn calibrated(sound: &[f64], k: f64, obs: Option<&Vec<f64>>, unit: f64) -> Vec<f64> {
    sound
        .iter()
        .enumerate()
        .map(|(c, &b)| {
            let o = obs.and_then(|v| v.get(c)).copied().unwrap_or(f64::INFINITY);
            (b / k).min(o * unit + 1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_counts_by_brute_force() {
        let input = Shape::new(vec![1, 1, 4, 5, 5]);
        let cases = [
            (Window3d::dense([2, 3, 3]), false, Some(18)),
            (
                {
                    let mut w = Window3d::dense([1, 3, 3]);
                    w.pads = [(0, 0), (1, 1), (1, 1)];
                    w
                },
                true,
                Some(9),
            ),
            (
                {
                    let mut w = Window3d::dense([1, 3, 3]);
                    w.pads = [(0, 0), (1, 1), (1, 1)];
                    w
                },
                false,
                None,
            ),
            (
                {
                    let mut w = Window3d::dense([1, 2, 2]);
                    w.stride = [1, 2, 2];
                    w.ceil_mode = true;
                    w
                },
                false,
                None,
            ),
        ];
        for (win, include, want) in cases {
            let [d, h, w] = win.out_dims([4, 5, 5]).unwrap();
            let out = Shape::new(vec![1, 1, d, h, w]);
            assert_eq!(
                uniform_count(&win, include, &input, &out),
                want,
                "{win:?} {include}"
            );
        }
    }

    #[test]
    fn reshape_bounds_follow_the_elements() {
        let b = Bound {
            chan: vec![1.0, 5.0, 2.0],
            nonneg: true,
        };
        // Flatten (1,3,2,2) -> (1,12): each feature keeps its channel's bound.
        let r = reshape_bound(&b, &Shape::new(vec![1, 3, 2, 2]), &Shape::new(vec![1, 12]));
        assert_eq!(
            r.chan,
            vec![1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0]
        );
        assert!(r.nonneg);
        // (1,12) -> (1,2,6): each new channel takes the largest of the features it holds.
        let back = reshape_bound(&r, &Shape::new(vec![1, 12]), &Shape::new(vec![1, 2, 6]));
        assert_eq!(back.chan, vec![5.0, 5.0]);
    }

    /// The bound covers the quantized layer's largest output over every input at the corners
    /// of the box (a linear map's extremes), found by brute force.
    #[test]
    fn linear_bounds_cover_the_brute_force_extremes() {
        let w = [0.30f32, -0.71, 0.05, -0.2, 0.9, 0.0];
        let wb = 4;
        let bq = [3i64, -5];
        let wq: Vec<i64> = w
            .iter()
            .map(|&v| (v as f64 * 16.0).round() as i64)
            .collect();
        for nonneg in [false, true] {
            let inb = Bound {
                chan: vec![7.0, 2.0, 5.0],
                nonneg,
            };
            let got = linear_bound(&w, &bq, &inb, wb);
            for (o, &bo) in bq.iter().enumerate() {
                let mut worst = 0i64;
                for corner in 0..8u32 {
                    let mut y = bo;
                    for j in 0..3 {
                        let hi = inb.chan[j] as i64;
                        let x = match (corner >> j & 1, nonneg) {
                            (1, _) => hi,
                            (0, true) => 0,
                            _ => -hi,
                        };
                        y += wq[o * 3 + j] * x;
                    }
                    worst = worst.max(y.abs());
                }
                assert!(got[o] >= worst as f64, "output {o}: {} < {worst}", got[o]);
            }
        }
    }
}
