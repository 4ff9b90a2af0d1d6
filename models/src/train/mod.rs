//! The bundled trained model, `c3d-motion`: a small C3D-shaped network (three 3x3x3
//! convolutions with ReLU and max-pooling, two fully connected layers, softmax) for the
//! [`crate::motion`] data set, with its float forward and backward passes written out
//! (im2col and matrix products), SGD training with momentum, and export to / import from
//! ONNX in PyTorch's idioms.
//!
//! Everything is deterministic: batch gradients are computed per clip in parallel and summed
//! in a fixed order, so a run gives the same weights on any number of threads.

use crate::motion::{self, FRAMES, SIZE};
use crate::weights::Init;
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

mod onnx;
pub use onnx::ReadError;

/// Output channels of the three convolutions.
pub const WIDTHS: [usize; 3] = [8, 16, 32];
/// Max-pool window (= stride) after each convolution, (D, H, W).
pub const POOLS: [[usize; 3]; 3] = [[1, 2, 2], [2, 2, 2], [2, 2, 2]];
/// Width of the hidden fully connected layer.
pub const HIDDEN: usize = 64;
/// Layers with weights, in order; parameter `2 i` is layer i's weight, `2 i + 1` its bias.
pub const LAYERS: [&str; 5] = ["conv1", "conv2", "conv3", "fc6", "fc7"];
/// ONNX node name of the activation after fc6 (the one the squares variant replaces).
pub const FC6_ACT: &str = "/fc6/Relu";

/// Input volume of each convolution, (D, H, W).
fn conv_dims() -> [[usize; 3]; 3] {
    let mut dims = [[FRAMES, SIZE, SIZE]; 3];
    for l in 1..3 {
        for a in 0..3 {
            dims[l][a] = dims[l - 1][a] / POOLS[l - 1][a];
        }
    }
    dims
}

/// Input channels of each weighted layer.
fn fan_ins() -> [usize; 5] {
    let feat = features();
    [3, WIDTHS[0], WIDTHS[1], feat, HIDDEN]
}

/// Length of the flattened feature vector after the last pool.
pub fn features() -> usize {
    let d = conv_dims()[2];
    WIDTHS[2] * (0..3).map(|a| d[a] / POOLS[2][a]).product::<usize>()
}

/// The network's parameters and its fc6 activation.
#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    /// Weight and bias of each layer of [`LAYERS`], alternating; weights in ONNX layout
    /// (C_out, C_in, kD, kH, kW) or (out, in).
    pub params: Vec<Vec<f32>>,
    /// fc6 is followed by x^2 instead of ReLU (trained for Beaver squaring).
    pub square_fc6: bool,
}

/// The dimensions of each parameter tensor.
pub fn param_dims() -> Vec<Vec<usize>> {
    let fan = fan_ins();
    let outs = [
        WIDTHS[0],
        WIDTHS[1],
        WIDTHS[2],
        HIDDEN,
        motion::CLASSES.len(),
    ];
    let mut v = Vec::new();
    for l in 0..5 {
        if l < 3 {
            v.push(vec![outs[l], fan[l], 3, 3, 3]);
        } else {
            v.push(vec![outs[l], fan[l]]);
        }
        v.push(vec![outs[l]]);
    }
    v
}

/// What a forward pass keeps for the backward pass.
struct Cache {
    cols: Vec<Array2<f32>>,
    pre: Vec<Vec<f32>>,
    arg: Vec<Vec<usize>>,
    feat: Vec<f32>,
    h_pre: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
}

/// Walks a 3x3x3, stride-1, zero-padding-1 convolution's taps inside the input: `f(col, i)`
/// for every entry `col` of the (channel, kd, kh, kw) x (output position) column matrix, laid
/// out row-major, whose input element `i` (in C, D, H, W order) is not padding. The order is
/// fixed (channel, tap, z, y, x), so sums over it are reproducible.
fn for_each_tap(c: usize, [d, h, w]: [usize; 3], mut f: impl FnMut(usize, usize)) {
    let p = d * h * w;
    for ci in 0..c {
        for k in 0..27 {
            let (kd, kh, kw) = (k / 9, (k / 3) % 3, k % 3);
            let row = (ci * 27 + k) * p;
            for z in 0..d {
                let Some(zz) = (z + kd).checked_sub(1).filter(|&v| v < d) else {
                    continue;
                };
                for y in 0..h {
                    let Some(yy) = (y + kh).checked_sub(1).filter(|&v| v < h) else {
                        continue;
                    };
                    let input = ((ci * d + zz) * h + yy) * w;
                    let out = row + (z * h + y) * w;
                    for xw in 0..w {
                        if let Some(xx) = (xw + kw).checked_sub(1).filter(|&v| v < w) {
                            f(out + xw, input + xx);
                        }
                    }
                }
            }
        }
    }
}

/// im2col for a 3x3x3 kernel, stride 1, zero padding 1: rows (channel, kd, kh, kw), columns
/// the output positions.
fn im2col(x: &[f32], c: usize, dims: [usize; 3]) -> Array2<f32> {
    let p: usize = dims.iter().product();
    let mut buf = vec![0f32; c * 27 * p];
    for_each_tap(c, dims, |col, i| buf[col] = x[i]);
    Array2::from_shape_vec((c * 27, p), buf).expect("im2col shape")
}

/// The adjoint of [`im2col`]: sums column gradients back into the input.
fn col2im(cols: &Array2<f32>, c: usize, dims: [usize; 3]) -> Vec<f32> {
    let p: usize = dims.iter().product();
    let cols = cols.as_standard_layout();
    let buf = cols.as_slice().expect("contiguous");
    let mut x = vec![0f32; c * p];
    for_each_tap(c, dims, |col, i| x[i] += buf[col]);
    x
}

/// Max-pooling with window = stride `k`, no padding; returns the output and, per output,
/// the input index it took.
fn maxpool(x: &[f32], c: usize, [d, h, w]: [usize; 3], k: [usize; 3]) -> (Vec<f32>, Vec<usize>) {
    let (od, oh, ow) = (d / k[0], h / k[1], w / k[2]);
    let mut out = Vec::with_capacity(c * od * oh * ow);
    let mut arg = Vec::with_capacity(out.capacity());
    for ci in 0..c {
        for z in 0..od {
            for y in 0..oh {
                for xw in 0..ow {
                    let mut best = (f32::NEG_INFINITY, 0);
                    for a in 0..k[0] {
                        for b in 0..k[1] {
                            for e in 0..k[2] {
                                let i = ((ci * d + z * k[0] + a) * h + y * k[1] + b) * w
                                    + xw * k[2]
                                    + e;
                                if x[i] > best.0 {
                                    best = (x[i], i);
                                }
                            }
                        }
                    }
                    out.push(best.0);
                    arg.push(best.1);
                }
            }
        }
    }
    (out, arg)
}

fn linear(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    b.iter()
        .enumerate()
        .map(|(o, &bo)| {
            bo + w[o * x.len()..(o + 1) * x.len()]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f32>()
        })
        .collect()
}

/// Softmax cross-entropy: the loss and its gradient in the logits.
fn softmax_xent(logits: &[f32], label: usize) -> (f32, Vec<f32>) {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    let mut g: Vec<f32> = e.iter().map(|v| v / s).collect();
    let loss = -(g[label].max(1e-30)).ln();
    g[label] -= 1.0;
    (loss, g)
}

impl Net {
    /// He-initialised weights, zero biases.
    pub fn init(seed: u64, square_fc6: bool) -> Net {
        let mut init = Init::new(seed);
        let fan = fan_ins();
        let params = param_dims()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let n: usize = d.iter().product();
                if i % 2 == 1 {
                    vec![0.0; n]
                } else {
                    let taps = if i / 2 < 3 { 27 } else { 1 };
                    init.he(n, fan[i / 2] * taps)
                }
            })
            .collect();
        let mut net = Net { params, square_fc6 };
        if square_fc6 {
            // x^2 of He-scaled pre-activations starts with logits in the tens; start small.
            net.params[6].iter_mut().for_each(|w| *w *= 0.5);
            net.params[8].iter_mut().for_each(|w| *w *= 0.25);
        }
        net
    }

    fn forward_cached(&self, x: &[f32]) -> Cache {
        assert_eq!(x.len(), motion::CLIP_LEN, "clip size");
        let dims = conv_dims();
        let mut a = x.to_vec();
        let mut c = 3;
        let (mut cols, mut pre, mut args) = (Vec::new(), Vec::new(), Vec::new());
        for l in 0..3 {
            let col = im2col(&a, c, dims[l]);
            let cout = WIDTHS[l];
            let w = ArrayView2::from_shape((cout, c * 27), &self.params[2 * l]).expect("w");
            let mut y = w.dot(&col);
            for (o, mut row) in y.rows_mut().into_iter().enumerate() {
                row += self.params[2 * l + 1][o];
            }
            let p: Vec<f32> = y.into_raw_vec_and_offset().0;
            let act: Vec<f32> = p.iter().map(|v| v.max(0.0)).collect();
            let (pooled, arg) = maxpool(&act, cout, dims[l], POOLS[l]);
            cols.push(col);
            pre.push(p);
            args.push(arg);
            a = pooled;
            c = cout;
        }
        let h_pre = linear(&self.params[6], &self.params[7], &a);
        let h: Vec<f32> = if self.square_fc6 {
            h_pre.iter().map(|v| v * v).collect()
        } else {
            h_pre.iter().map(|v| v.max(0.0)).collect()
        };
        let logits = linear(&self.params[8], &self.params[9], &h);
        Cache {
            cols,
            pre,
            arg: args,
            feat: a,
            h_pre,
            h,
            logits,
        }
    }

    /// The logits (before softmax) for one preprocessed clip.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.forward_cached(x).logits
    }

    /// The predicted class of one preprocessed clip.
    pub fn predict(&self, x: &[f32]) -> usize {
        argmax(&self.forward(x))
    }

    /// Loss and parameter gradients for one labelled clip.
    pub fn gradient(&self, x: &[f32], label: usize) -> (f32, Vec<Vec<f32>>) {
        let (loss, _, g) = self.gradient_and_hit(x, label);
        (loss, g)
    }

    /// Loss, whether the top class is right, and the parameter gradients.
    fn gradient_and_hit(&self, x: &[f32], label: usize) -> (f32, bool, Vec<Vec<f32>>) {
        let c = self.forward_cached(x);
        let hit = argmax(&c.logits) == label;
        let (loss, dlog) = softmax_xent(&c.logits, label);
        let mut g: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let outer = |dy: &[f32], x: &[f32]| -> Vec<f32> {
            dy.iter()
                .flat_map(|&a| x.iter().map(move |&b| a * b))
                .collect()
        };
        let back = |w: &[f32], dy: &[f32], n: usize| -> Vec<f32> {
            let mut dx = vec![0f32; n];
            for (o, &d) in dy.iter().enumerate() {
                for (i, v) in dx.iter_mut().enumerate() {
                    *v += w[o * n + i] * d;
                }
            }
            dx
        };
        g[8] = outer(&dlog, &c.h);
        g[9] = dlog.clone();
        let dh = back(&self.params[8], &dlog, c.h.len());
        let dh_pre: Vec<f32> = dh
            .iter()
            .zip(&c.h_pre)
            .map(|(&d, &v)| {
                if self.square_fc6 {
                    2.0 * v * d
                } else if v > 0.0 {
                    d
                } else {
                    0.0
                }
            })
            .collect();
        g[6] = outer(&dh_pre, &c.feat);
        g[7] = dh_pre.clone();
        let mut da = back(&self.params[6], &dh_pre, c.feat.len());
        let dims = conv_dims();
        for l in (0..3).rev() {
            let cout = WIDTHS[l];
            let cin = if l == 0 { 3 } else { WIDTHS[l - 1] };
            let mut dpre = vec![0f32; c.pre[l].len()];
            for (i, &src) in c.arg[l].iter().enumerate() {
                dpre[src] += da[i];
            }
            for (d, &v) in dpre.iter_mut().zip(&c.pre[l]) {
                if v <= 0.0 {
                    *d = 0.0;
                }
            }
            let p = dpre.len() / cout;
            let dy = Array2::from_shape_vec((cout, p), dpre).expect("dy");
            g[2 * l] = dy.dot(&c.cols[l].t()).into_raw_vec_and_offset().0;
            g[2 * l + 1] = dy.rows().into_iter().map(|r| r.sum()).collect();
            if l > 0 {
                let w = ArrayView2::from_shape((cout, cin * 27), &self.params[2 * l]).expect("w");
                da = col2im(&w.t().dot(&dy), cin, dims[l]);
            }
        }
        (loss, hit, g)
    }

    /// Mean loss and accuracy over a set of clips.
    pub fn evaluate(&self, data: &[(Vec<f32>, usize)]) -> (f64, f64) {
        let r: Vec<(f32, bool)> = data
            .par_iter()
            .map(|(x, y)| {
                let l = self.forward(x);
                (softmax_xent(&l, *y).0, argmax(&l) == *y)
            })
            .collect();
        let n = data.len().max(1) as f64;
        (
            r.iter().map(|v| v.0 as f64).sum::<f64>() / n,
            r.iter().filter(|v| v.1).count() as f64 / n,
        )
    }
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut b = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[b] {
            b = i;
        }
    }
    b
}

/// SGD settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Clips per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay to zero over the run).
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay on weights (not biases).
    pub weight_decay: f32,
    /// Shuffling seed.
    pub seed: u64,
    /// The batch gradient (data term) is scaled down to at most this norm: x^2 activations
    /// can blow up early in training.
    pub clip_norm: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 12,
            batch: 32,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            seed: 7,
            clip_norm: 5.0,
        }
    }
}

/// One epoch's record.
#[derive(Clone, Debug)]
pub struct EpochLog {
    /// Epoch number from 1.
    pub epoch: usize,
    /// Mean training loss (data term only).
    pub loss: f64,
    /// Training accuracy during the epoch.
    pub accuracy: f64,
}

/// Adds further terms' gradients to a layer's weight gradient: (layer, weight, gradient).
pub type ExtraGrad<'a> = dyn Fn(usize, &[f32], &mut [f32]) + 'a;

/// Minimises the mean cross-entropy over `data` by SGD with momentum. `extra` adds the
/// gradient of any further terms (SLR's multiplier and penalty) to each weight's gradient:
/// it gets the layer index, the weight and the gradient.
pub fn train(
    net: &mut Net,
    data: &[(Vec<f32>, usize)],
    cfg: &TrainConfig,
    extra: &ExtraGrad<'_>,
    progress: &mut dyn FnMut(&EpochLog),
) -> Vec<EpochLog> {
    let mut vel: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
    let steps_per_epoch = data.len().div_ceil(cfg.batch);
    let total = (cfg.epochs * steps_per_epoch).max(1);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut logs = Vec::new();
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            cfg.seed.wrapping_mul(1_000_003) + epoch as u64,
        ));
        let (mut loss, mut hits) = (0f64, 0usize);
        for (s, chunk) in order.chunks(cfg.batch).enumerate() {
            let step = epoch * steps_per_epoch + s;
            let lr =
                cfg.lr * 0.5 * (1.0 + (std::f32::consts::PI * step as f32 / total as f32).cos());
            let per: Vec<(f32, bool, Vec<Vec<f32>>)> = chunk
                .par_iter()
                .map(|&i| {
                    let (x, y) = &data[i];
                    net.gradient_and_hit(x, *y)
                })
                .collect();
            let mut grad: Vec<Vec<f32>> = net.params.iter().map(|p| vec![0.0; p.len()]).collect();
            for (l, hit, g) in per {
                loss += l as f64;
                hits += hit as usize;
                for (acc, gi) in grad.iter_mut().zip(g) {
                    acc.iter_mut().zip(gi).for_each(|(a, b)| *a += b);
                }
            }
            let norm = grad
                .iter()
                .flatten()
                .map(|g| (*g as f64).powi(2))
                .sum::<f64>()
                .sqrt() as f32
                / chunk.len() as f32;
            let scale = (1.0 / chunk.len() as f32) * (cfg.clip_norm / norm.max(1e-12)).min(1.0);
            for (i, (p, (gr, v))) in net
                .params
                .iter_mut()
                .zip(grad.iter_mut().zip(vel.iter_mut()))
                .enumerate()
            {
                gr.iter_mut().for_each(|g| *g *= scale);
                if i % 2 == 0 {
                    gr.iter_mut()
                        .zip(p.iter())
                        .for_each(|(g, w)| *g += cfg.weight_decay * w);
                    extra(i / 2, p, gr);
                }
                for ((w, g), m) in p.iter_mut().zip(gr.iter()).zip(v.iter_mut()) {
                    *m = cfg.momentum * *m + g;
                    *w -= lr * *m;
                }
            }
        }
        let log = EpochLog {
            epoch: epoch + 1,
            loss: loss / data.len().max(1) as f64,
            accuracy: hits as f64 / data.len().max(1) as f64,
        };
        progress(&log);
        logs.push(log);
    }
    logs
}

/// A split as (preprocessed input, label) pairs.
pub fn labelled(seed: u64, n: usize) -> Vec<(Vec<f32>, usize)> {
    (0..n as u64)
        .into_par_iter()
        .map(|i| {
            let c = motion::clip(seed, i);
            (c.input(), c.label)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backward pass against central finite differences of the loss: for every tensor,
    /// the directional derivative along its gradient and along a random direction (whole
    /// directions, so single ReLU or max-pool kinks average out), for both fc6 activations.
    #[test]
    fn gradient_matches_finite_differences() {
        for square in [false, true] {
            let mut net = Net::init(3, square);
            // Keep the logits near 1 so that f32 rounding of the loss stays far below the
            // differences being measured (x^2 on random weights gives logits near 60).
            net.params[8].iter_mut().for_each(|w| *w *= 0.05);
            let c = motion::clip(motion::TRAIN_SEED, 4);
            let x = c.input();
            let (_, g) = net.gradient(&x, c.label);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            for (t, gt) in g.iter().enumerate() {
                let random: Vec<f32> = (0..gt.len())
                    .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0f32))
                    .collect();
                for dir in [gt.clone(), random] {
                    let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    let u: Vec<f32> = dir.iter().map(|v| v / norm).collect();
                    let h = 1e-3f32;
                    let loss_at = |s: f32| {
                        let mut n2 = net.clone();
                        n2.params[t]
                            .iter_mut()
                            .zip(&u)
                            .for_each(|(w, d)| *w += s * d);
                        softmax_xent(&n2.forward(&x), c.label).0 as f64
                    };
                    let num = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
                    let got: f64 = gt.iter().zip(&u).map(|(a, b)| (a * b) as f64).sum();
                    assert!(
                        (num - got).abs() <= 1e-3 + 0.03 * num.abs().max(got.abs()),
                        "tensor {t} (square {square}): backward {got}, numeric {num}"
                    );
                }
            }
        }
    }

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        let dims = [2, 3, 4];
        let c = 2;
        let n = c * 24;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let cols = im2col(&x, c, dims);
        let y = Array2::from_shape_fn(cols.raw_dim(), |(a, b)| ((a * 7 + b) as f32).cos());
        let lhs: f32 = (&cols * &y).sum();
        let back = col2im(&y, c, dims);
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn training_is_deterministic_and_learns() {
        let data = labelled(motion::TRAIN_SEED, 96);
        let cfg = TrainConfig {
            epochs: 2,
            ..TrainConfig::default()
        };
        let run = || {
            let mut net = Net::init(1, false);
            let logs = train(&mut net, &data, &cfg, &|_, _, _| {}, &mut |_| {});
            (net, logs)
        };
        let (a, la) = run();
        let (b, _) = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        assert_eq!(a, b, "same weights on 1 thread and on the pool");
        assert!(la[1].loss < la[0].loss, "loss falls: {la:?}");
    }

    #[test]
    fn onnx_round_trip() {
        let net = Net::init(5, true);
        let bytes = crate::onnx_builder::to_bytes(&net.to_onnx());
        assert_eq!(Net::from_onnx(&bytes).unwrap(), net);
        assert!(Net::from_onnx(b"garbage").is_err());
    }
}
