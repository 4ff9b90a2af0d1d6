//! Plain tensor kernels shared by the float evaluator and the fixed-point simulator. They are
//! generic over the element type so the same loops serve f32 and the exact integer paths.

use crate::op::{Conv3dParams, Window3d};
use crate::shape::Shape;
use rayon::prelude::*;
use std::ops::{Add, AddAssign, Mul};

/// Element types the kernels compute in.
pub trait Elem:
    Copy
    + Send
    + Sync
    + Default
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + AddAssign
    + Mul<Output = Self>
{
}
impl<T> Elem for T where
    T: Copy
        + Send
        + Sync
        + Default
        + PartialEq
        + PartialOrd
        + Add<Output = T>
        + AddAssign
        + Mul<Output = T>
{
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// Its shape.
    pub shape: Shape,
    /// Its elements, row-major.
    pub data: Vec<T>,
}

impl<T: Clone> Tensor<T> {
    /// Wraps data of the given shape (lengths must agree).
    pub fn new(shape: Shape, data: Vec<T>) -> Self {
        assert_eq!(
            shape.numel(),
            data.len(),
            "tensor data does not fill its shape"
        );
        Tensor { shape, data }
    }

    /// Applies a function to every element.
    pub fn map<U>(&self, f: impl Fn(&T) -> U) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(f).collect(),
        }
    }
}

/// For output positions along one axis: the range [lo, hi) of outputs whose tap `k` lands
/// inside an input of length `len`, and the input index of output `lo`.
fn valid_range(
    win: &Window3d,
    a: usize,
    k: usize,
    out_len: usize,
    len: usize,
) -> (usize, usize, i64) {
    let s = win.stride[a] as i64;
    let off = (k * win.dilation[a]) as i64 - win.pads[a].0 as i64;
    // input index = o * s + off, need 0 <= idx < len
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let hi = if (len as i64) - off <= 0 {
        0
    } else {
        ((len as i64 - off + s - 1) / s).min(out_len as i64)
    };
    let lo = lo.min(hi);
    (lo as usize, hi as usize, lo * s + off)
}

/// 3-D convolution without bias: x (N,C,D,H,W), w (O,C,kD,kH,kW). Zero weights are skipped,
/// so pruned layers cost less. Accumulates in `T` exactly as written (no reduction).
pub fn conv3d<T: Elem>(x: &[T], xs: &Shape, w: &[T], p: &Conv3dParams, out: &Shape) -> Vec<T> {
    let (n, c, d, h, wd) = xs.ncdhw().expect("conv input is 5-D");
    let (_, o, od, oh, ow) = out.ncdhw().expect("conv output is 5-D");
    let [kd, kh, kw] = p.window.kernel;
    let win = &p.window;
    let plane = od * oh * ow;
    let mut y = vec![T::default(); n * o * plane];
    let zero = T::default();
    y.par_chunks_mut(plane).enumerate().for_each(|(no, yp)| {
        let (b, oc) = (no / o, no % o);
        let xb = &x[b * c * d * h * wd..(b + 1) * c * d * h * wd];
        for z in 0..od {
            let yz = &mut yp[z * oh * ow..(z + 1) * oh * ow];
            for ci in 0..c {
                let xc = &xb[ci * d * h * wd..(ci + 1) * d * h * wd];
                for a in 0..kd {
                    let iz =
                        (z * win.stride[0] + a * win.dilation[0]) as i64 - win.pads[0].0 as i64;
                    if iz < 0 || iz as usize >= d {
                        continue;
                    }
                    let xz = &xc[iz as usize * h * wd..(iz as usize + 1) * h * wd];
                    for bb in 0..kh {
                        let (ylo, yhi, iy0) = valid_range(win, 1, bb, oh, h);
                        for cc in 0..kw {
                            let wv = w[(((oc * c + ci) * kd + a) * kh + bb) * kw + cc];
                            if wv == zero {
                                continue;
                            }
                            let (xlo, xhi, ix0) = valid_range(win, 2, cc, ow, wd);
                            if xlo >= xhi {
                                continue;
                            }
                            let sx = win.stride[2];
                            for yy in ylo..yhi {
                                let iy = (iy0 + ((yy - ylo) * win.stride[1]) as i64) as usize;
                                let xrow = &xz[iy * wd..(iy + 1) * wd];
                                let yrow = &mut yz[yy * ow + xlo..yy * ow + xhi];
                                let ix0 = ix0 as usize;
                                if sx == 1 {
                                    for (yv, &xv) in yrow.iter_mut().zip(&xrow[ix0..]) {
                                        *yv += wv * xv;
                                    }
                                } else {
                                    for (j, yv) in yrow.iter_mut().enumerate() {
                                        *yv += wv * xrow[ix0 + j * sx];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

/// Fully connected without bias: x (N, I), w (O, I) -> (N, O).
pub fn linear<T: Elem>(x: &[T], n: usize, w: &[T], inp: usize, outp: usize) -> Vec<T> {
    let mut y = vec![T::default(); n * outp];
    y.par_chunks_mut(outp).enumerate().for_each(|(b, yb)| {
        let xb = &x[b * inp..(b + 1) * inp];
        yb.par_iter_mut().enumerate().for_each(|(o, yv)| {
            let mut acc = T::default();
            for (&wv, &xv) in w[o * inp..(o + 1) * inp].iter().zip(xb) {
                acc += wv * xv;
            }
            *yv = acc;
        });
    });
    y
}

/// Visits every pooling window: `f(valid input values, padded tap count)` gives the output.
pub fn pool3d<T: Copy + Send + Sync, U: Send + Default + Clone>(
    x: &[T],
    xs: &Shape,
    win: &Window3d,
    out: &Shape,
    f: impl Fn(&mut dyn Iterator<Item = T>, usize) -> U + Sync,
) -> Vec<U> {
    let (_, _, d, h, w) = xs.ncdhw().expect("pool input is 5-D");
    let (n, c, od, oh, ow) = out.ncdhw().expect("pool output is 5-D");
    let plane = od * oh * ow;
    let mut y = vec![U::default(); n * c * plane];
    y.par_chunks_mut(plane).enumerate().for_each(|(nc, yp)| {
        let xc = &x[nc * d * h * w..(nc + 1) * d * h * w];
        for z in 0..od {
            let tz: Vec<usize> = win.taps(0, z, d).collect();
            let pz = win.padded_taps(0, z, d);
            for yy in 0..oh {
                let ty: Vec<usize> = win.taps(1, yy, h).collect();
                let py = win.padded_taps(1, yy, h);
                for xx in 0..ow {
                    let tx: Vec<usize> = win.taps(2, xx, w).collect();
                    let px = win.padded_taps(2, xx, w);
                    let (ty, tx) = (&ty, &tx);
                    let mut it = tz.iter().flat_map(|&iz| {
                        ty.iter().flat_map(move |&iy| {
                            tx.iter().map(move |&ix| xc[(iz * h + iy) * w + ix])
                        })
                    });
                    yp[(z * oh + yy) * ow + xx] = f(&mut it, pz * py * px);
                }
            }
        }
    });
    y
}

/// Concatenation along `axis` of row-major tensors.
pub fn concat<T: Copy>(parts: &[(&[T], &Shape)], axis: usize, out: &Shape) -> Vec<T> {
    let outer: usize = out.dims()[..axis].iter().product();
    let mut y = Vec::with_capacity(out.numel());
    for o in 0..outer {
        for (data, s) in parts {
            let inner: usize = s.dims()[axis..].iter().product();
            y.extend_from_slice(&data[o * inner..(o + 1) * inner]);
        }
    }
    y
}

/// Pads with `zero` by (begin, end) per dimension.
pub fn pad<T: Copy>(x: &[T], xs: &Shape, pads: &[(usize, usize)], out: &Shape, zero: T) -> Vec<T> {
    let mut y = vec![zero; out.numel()];
    let ostr = out.strides();
    let rank = xs.rank();
    let last = xs.dims().last().copied().unwrap_or(1);
    if x.is_empty() {
        return y;
    }
    // Copy one innermost row at a time.
    let rows = x.len() / last.max(1);
    let mut idx = vec![0usize; rank];
    for r in 0..rows {
        let mut rem = r;
        for a in (0..rank.saturating_sub(1)).rev() {
            idx[a] = rem % xs.dims()[a];
            rem /= xs.dims()[a];
        }
        let mut off = 0;
        for a in 0..rank.saturating_sub(1) {
            off += (idx[a] + pads[a].0) * ostr[a];
        }
        if rank > 0 {
            off += pads[rank - 1].0;
        }
        y[off..off + last].copy_from_slice(&x[r * last..(r + 1) * last]);
    }
    y
}

/// Sums over `axes`; returns the sums and the number of elements in each.
pub fn sum_axes<T: Elem>(x: &[T], xs: &Shape, axes: &[usize]) -> (Vec<T>, usize) {
    let dims = xs.dims();
    let kept: Vec<usize> = (0..dims.len()).filter(|a| !axes.contains(a)).collect();
    let count: usize = axes.iter().map(|&a| dims[a]).product();
    let out_len: usize = kept.iter().map(|&a| dims[a]).product();
    let mut y = vec![T::default(); out_len];
    let strides = xs.strides();
    for (i, &v) in x.iter().enumerate() {
        let mut o = 0;
        for &a in &kept {
            o = o * dims[a] + (i / strides[a]) % dims[a];
        }
        y[o] += v;
    }
    (y, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force convolution straight from the definition.
    fn conv_ref(x: &[i64], xs: &Shape, w: &[i64], p: &Conv3dParams, out: &Shape) -> Vec<i64> {
        let (n, c, d, h, wd) = xs.ncdhw().unwrap();
        let (_, o, od, oh, ow) = out.ncdhw().unwrap();
        let k = p.window.kernel;
        let mut y = vec![0; out.numel()];
        for b in 0..n {
            for oc in 0..o {
                for z in 0..od {
                    for yy in 0..oh {
                        for xx in 0..ow {
                            let mut acc = 0;
                            for ci in 0..c {
                                for a in 0..k[0] {
                                    for bb in 0..k[1] {
                                        for cc in 0..k[2] {
                                            let iz = (z * p.window.stride[0]
                                                + a * p.window.dilation[0])
                                                as i64
                                                - p.window.pads[0].0 as i64;
                                            let iy = (yy * p.window.stride[1]
                                                + bb * p.window.dilation[1])
                                                as i64
                                                - p.window.pads[1].0 as i64;
                                            let ix = (xx * p.window.stride[2]
                                                + cc * p.window.dilation[2])
                                                as i64
                                                - p.window.pads[2].0 as i64;
                                            if iz < 0
                                                || iy < 0
                                                || ix < 0
                                                || iz >= d as i64
                                                || iy >= h as i64
                                                || ix >= wd as i64
                                            {
                                                continue;
                                            }
                                            let xv = x[(((b * c + ci) * d + iz as usize) * h
                                                + iy as usize)
                                                * wd
                                                + ix as usize];
                                            let wv = w[(((oc * c + ci) * k[0] + a) * k[1] + bb)
                                                * k[2]
                                                + cc];
                                            acc += xv * wv;
                                        }
                                    }
                                }
                            }
                            y[(((b * o + oc) * od + z) * oh + yy) * ow + xx] = acc;
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_matches_brute_force_on_strides_pads_dilations() {
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 11) as i64 - 5
        };
        for (k, s, dl, pads) in [
            ([3, 3, 3], [1, 1, 1], [1, 1, 1], [(1, 1), (1, 1), (1, 1)]),
            ([7, 7, 7], [2, 2, 2], [1, 1, 1], [(3, 3), (2, 3), (3, 2)]),
            ([1, 3, 3], [1, 2, 2], [1, 2, 1], [(0, 0), (2, 1), (0, 1)]),
            ([1, 1, 1], [1, 1, 1], [1, 1, 1], [(0, 0), (0, 0), (0, 0)]),
        ] {
            let p = Conv3dParams {
                in_channels: 2,
                out_channels: 3,
                window: Window3d {
                    kernel: k,
                    stride: s,
                    dilation: dl,
                    pads,
                    ceil_mode: false,
                },
            };
            let xs = Shape::new(vec![1, 2, 5, 9, 8]);
            let [od, oh, ow] = p.window.out_dims([5, 9, 8]).unwrap();
            let out = Shape::new(vec![1, 3, od, oh, ow]);
            let x: Vec<i64> = (0..xs.numel()).map(|_| rnd()).collect();
            let w: Vec<i64> = (0..3 * 2 * k.iter().product::<usize>())
                .map(|_| rnd())
                .collect();
            assert_eq!(
                conv3d(&x, &xs, &w, &p, &out),
                conv_ref(&x, &xs, &w, &p, &out),
                "{k:?} {s:?}"
            );
        }
    }

    #[test]
    fn pad_and_concat_and_sum() {
        let xs = Shape::new(vec![1, 2, 2]);
        let x = vec![1, 2, 3, 4];
        let out = Shape::new(vec![1, 3, 4]);
        let y = pad(&x, &xs, &[(0, 0), (1, 0), (1, 1)], &out, 0);
        assert_eq!(y, vec![0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0]);
        let a = Shape::new(vec![2, 1]);
        let b = Shape::new(vec![2, 2]);
        let c = concat(
            &[(&[1, 2][..], &a), (&[3, 4, 5, 6][..], &b)],
            1,
            &Shape::new(vec![2, 3]),
        );
        assert_eq!(c, vec![1, 3, 4, 2, 5, 6]);
        let (s, n) = sum_axes(&[1, 2, 3, 4, 5, 6], &Shape::new(vec![1, 2, 3]), &[2]);
        assert_eq!((s, n), (vec![6, 15], 3));
    }
}
