//! The op set: what C3D and I3D need, with shape inference and work counts.

use crate::shape::Shape;
use serde::{Deserialize, Serialize};

/// Why a window does not fit an axis.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A kernel extent, stride or dilation of zero.
    #[error("kernel, stride and dilation must be >= 1 (axis {axis})")]
    ZeroExtent {
        /// The axis (0 = D, 1 = H, 2 = W).
        axis: usize,
    },
    /// Padding as wide as the (dilated) window.
    #[error("padding ({begin},{end}) must be smaller than the window ({extent}) on axis {axis}")]
    PadTooWide {
        /// Padding before.
        begin: usize,
        /// Padding after.
        end: usize,
        /// The dilated window extent.
        extent: usize,
        /// The axis.
        axis: usize,
    },
    /// Not even one window fits the padded input.
    #[error("window {kernel} (dilated {extent}) does not fit input length {len} with padding ({begin},{end}) on axis {axis}")]
    DoesNotFit {
        /// Kernel extent.
        kernel: usize,
        /// The dilated window extent.
        extent: usize,
        /// Input length.
        len: usize,
        /// Padding before.
        begin: usize,
        /// Padding after.
        end: usize,
        /// The axis.
        axis: usize,
    },
}

/// Why an op cannot take the shapes it is given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Wrong number of inputs.
    #[error("expects {expected} inputs, got {got}")]
    Arity {
        /// Inputs the op takes.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// No inputs for an op of variable arity.
    #[error("expects at least one input")]
    NoInputs,
    /// Not a (N, C, D, H, W) tensor.
    #[error("expects a 5-D (N,C,D,H,W) input, got {0}")]
    NotVideo(Shape),
    /// An input node without its declared shape.
    #[error("input without a shape")]
    InputWithoutShape,
    /// A convolution given the wrong channel count.
    #[error("expects {expected} input channels, got {got}")]
    Channels {
        /// Channels the convolution takes.
        expected: usize,
        /// Channels given.
        got: usize,
    },
    /// The window does not fit the input.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// A fully connected layer given the wrong input.
    #[error("expects an (N, {in_features}) input, got {got}")]
    LinearInput {
        /// Features the layer takes.
        in_features: usize,
        /// The shape given.
        got: Shape,
    },
    /// A reshape without its target.
    #[error("reshape without a target shape")]
    ReshapeWithoutTarget,
    /// A reshape that changes the element count.
    #[error("cannot reshape {from} into {to}")]
    Reshape {
        /// Input shape.
        from: Shape,
        /// Target shape.
        to: Shape,
    },
    /// An axis past the input's rank.
    #[error("axis {axis} out of range for {shape}")]
    Axis {
        /// The axis.
        axis: usize,
        /// The input shape.
        shape: Shape,
    },
    /// Concatenated shapes that differ off the axis.
    #[error("cannot concatenate {shape} with {first} on axis {axis}")]
    Concat {
        /// The shape that does not fit.
        shape: Shape,
        /// The first input's shape.
        first: Shape,
        /// The axis.
        axis: usize,
    },
    /// Added shapes that differ.
    #[error("adds tensors of different shapes {0} and {1} (broadcasting is not supported)")]
    Add(Shape, Shape),
    /// Pads for a different rank.
    #[error("{pads} pads for a rank-{rank} input")]
    PadRank {
        /// Pads given.
        pads: usize,
        /// The input's rank.
        rank: usize,
    },
    /// Reduction axes that are empty or out of range.
    #[error("bad axes {axes:?} for {shape}")]
    Axes {
        /// The axes.
        axes: Vec<usize>,
        /// The input shape.
        shape: Shape,
    },
    /// A stored shape that the inputs do not give.
    #[error("stored shape {stored} but inputs give {inferred}")]
    Stored {
        /// The node's stored shape.
        stored: Shape,
        /// The shape its inputs give.
        inferred: Shape,
    },
}

/// A sliding window over (D, H, W), shared by convolutions and pools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window3d {
    /// Kernel extent (D, H, W).
    pub kernel: [usize; 3],
    /// Stride (D, H, W).
    pub stride: [usize; 3],
    /// Dilation (D, H, W).
    pub dilation: [usize; 3],
    /// Padding (begin, end) for D, H, W.
    pub pads: [(usize, usize); 3],
    /// Output size rounds up (a last partial window is kept).
    pub ceil_mode: bool,
}

impl Window3d {
    /// A dense window: stride 1, no dilation, no padding.
    pub fn dense(kernel: [usize; 3]) -> Self {
        Window3d {
            kernel,
            stride: [1; 3],
            dilation: [1; 3],
            pads: [(0, 0); 3],
            ceil_mode: false,
        }
    }

    /// Effective kernel extent along axis `a` once dilated.
    pub fn extent(&self, a: usize) -> usize {
        (self.kernel[a] - 1) * self.dilation[a] + 1
    }

    /// Output length along axis `a` for an input of length `len` (PyTorch's rule for ceil mode:
    /// a window that starts in the end padding is dropped).
    pub fn out_len(&self, a: usize, len: usize) -> Result<usize, WindowError> {
        let (k, s, d) = (self.kernel[a], self.stride[a], self.dilation[a]);
        if k == 0 || s == 0 || d == 0 {
            return Err(WindowError::ZeroExtent { axis: a });
        }
        let (pb, pe) = self.pads[a];
        if pb >= self.extent(a) || pe >= self.extent(a) {
            return Err(WindowError::PadTooWide {
                begin: pb,
                end: pe,
                extent: self.extent(a),
                axis: a,
            });
        }
        let num = (len + pb + pe) as i64 - self.extent(a) as i64;
        let s = s as i64;
        let mut out = if self.ceil_mode {
            (num + s - 1).div_euclid(s) + 1
        } else {
            num.div_euclid(s) + 1
        };
        if self.ceil_mode && out > 0 && (out - 1) * s >= (len + pb) as i64 {
            out -= 1;
        }
        if out < 1 {
            return Err(WindowError::DoesNotFit {
                kernel: k,
                extent: self.extent(a),
                len,
                begin: pb,
                end: pe,
                axis: a,
            });
        }
        Ok(out as usize)
    }

    /// Output (D, H, W) for an input (D, H, W).
    pub fn out_dims(&self, input: [usize; 3]) -> Result<[usize; 3], WindowError> {
        Ok([
            self.out_len(0, input[0])?,
            self.out_len(1, input[1])?,
            self.out_len(2, input[2])?,
        ])
    }

    /// For output position `o` along axis `a`: the input indices the window touches that lie
    /// inside the input (padding excluded).
    pub fn taps(&self, a: usize, o: usize, len: usize) -> impl Iterator<Item = usize> + '_ {
        let start = (o * self.stride[a]) as i64 - self.pads[a].0 as i64;
        (0..self.kernel[a]).filter_map(move |k| {
            let i = start + (k * self.dilation[a]) as i64;
            (i >= 0 && (i as usize) < len).then_some(i as usize)
        })
    }

    /// Number of window positions that lie inside the padded input (i.e. counting padding but not
    /// the part of a ceil-mode window hanging past the end padding), along axis `a`.
    pub fn padded_taps(&self, a: usize, o: usize, len: usize) -> usize {
        let start = (o * self.stride[a]) as i64 - self.pads[a].0 as i64;
        let end_limit = (len + self.pads[a].1) as i64;
        (0..self.kernel[a])
            .filter(|k| start + ((k * self.dilation[a]) as i64) < end_limit)
            .count()
    }
}

/// Convolution parameters. Weights (O, I, kD, kH, kW) and bias (O) live in the weights file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv3dParams {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel, stride, dilation and padding.
    pub window: Window3d,
}

/// Where an op runs in the two-party protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpClass {
    /// The client's input.
    Input,
    /// Linear with the server's secret weights: HE offline, plaintext field arithmetic online.
    SecretLinear,
    /// Linear with public coefficients: local on additive shares, no interaction.
    Local,
    /// Needs comparisons: garbled circuits (or Beaver squaring when approximated).
    NonLinear,
    /// Computed by the client alone on the revealed logits.
    ClientOutput,
}

/// One operation of the IR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// The model input (N, C, D, H, W).
    Input,
    /// 3-D convolution with bias.
    Conv3d(Conv3dParams),
    /// Fully connected layer on (N, F) with bias: weights (out, in).
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// Max pooling; padded positions are ignored (as with -inf padding).
    MaxPool3d(Window3d),
    /// max(0, max over the window's valid taps): a max-pool with its ReLU fused into one
    /// comparison block (written by the rewrite pass, never imported).
    MaxPoolRelu3d(Window3d),
    /// Average pooling.
    AvgPool3d {
        /// The window.
        window: Window3d,
        /// Divide by the full kernel size (true) or by the number of valid inputs (false).
        count_include_pad: bool,
    },
    /// max(x, 0).
    Relu,
    /// Reinterprets the elements (row-major order kept) as the node's shape.
    Reshape,
    /// Concatenation along an axis.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Elementwise sum of two tensors of the same shape.
    Add,
    /// Zero padding, (begin, end) per dimension.
    Pad {
        /// Padding per dimension.
        pads: Vec<(usize, usize)>,
    },
    /// Mean over some axes.
    Mean {
        /// Axes reduced.
        axes: Vec<usize>,
        /// Reduced axes kept with length 1.
        keepdims: bool,
    },
    /// Softmax along an axis (client side).
    Softmax {
        /// The axis.
        axis: usize,
    },
    /// Index of the maximum along an axis, as a float (client side).
    Argmax {
        /// The axis.
        axis: usize,
        /// The axis kept with length 1.
        keepdims: bool,
    },
}

impl Op {
    /// Short name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Conv3d(_) => "Conv3d",
            Op::Linear { .. } => "Linear",
            Op::MaxPool3d(_) => "MaxPool3d",
            Op::MaxPoolRelu3d(_) => "MaxPoolRelu3d",
            Op::AvgPool3d { .. } => "AvgPool3d",
            Op::Relu => "Relu",
            Op::Reshape => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::Add => "Add",
            Op::Pad { .. } => "Pad",
            Op::Mean { .. } => "Mean",
            Op::Softmax { .. } => "Softmax",
            Op::Argmax { .. } => "Argmax",
        }
    }

    /// Where the op runs in the protocol.
    pub fn class(&self) -> OpClass {
        match self {
            Op::Input => OpClass::Input,
            Op::Conv3d(_) | Op::Linear { .. } => OpClass::SecretLinear,
            Op::AvgPool3d { .. }
            | Op::Reshape
            | Op::Concat { .. }
            | Op::Add
            | Op::Pad { .. }
            | Op::Mean { .. } => OpClass::Local,
            Op::Relu | Op::MaxPool3d(_) | Op::MaxPoolRelu3d(_) => OpClass::NonLinear,
            Op::Softmax { .. } | Op::Argmax { .. } => OpClass::ClientOutput,
        }
    }

    /// Number of inputs the op takes (`None`: one or more).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input => Some(0),
            Op::Add => Some(2),
            Op::Concat { .. } => None,
            _ => Some(1),
        }
    }

    /// Weight and bias shapes for ops with weights.
    pub fn weight_shapes(&self) -> Option<(Shape, Shape)> {
        match self {
            Op::Conv3d(c) => {
                let [kd, kh, kw] = c.window.kernel;
                Some((
                    Shape::new(vec![c.out_channels, c.in_channels, kd, kh, kw]),
                    Shape::new(vec![c.out_channels]),
                ))
            }
            Op::Linear {
                in_features,
                out_features,
            } => Some((
                Shape::new(vec![*out_features, *in_features]),
                Shape::new(vec![*out_features]),
            )),
            _ => None,
        }
    }

    /// Infers the output shape from the input shapes. `target` is the node's declared shape,
    /// needed by `Reshape` (which has no parameters of its own).
    pub fn infer_shape(
        &self,
        inputs: &[&Shape],
        target: Option<&Shape>,
    ) -> Result<Shape, ShapeError> {
        if let Some(n) = self.arity() {
            if inputs.len() != n {
                return Err(ShapeError::Arity {
                    expected: n,
                    got: inputs.len(),
                });
            }
        } else if inputs.is_empty() {
            return Err(ShapeError::NoInputs);
        }
        let video = |s: &Shape| s.ncdhw().ok_or_else(|| ShapeError::NotVideo(s.clone()));
        let axis_err = |axis: usize, s: &Shape| ShapeError::Axis {
            axis,
            shape: s.clone(),
        };
        match self {
            Op::Input => target.cloned().ok_or(ShapeError::InputWithoutShape),
            Op::Conv3d(c) => {
                let (n, ch, d, h, w) = video(inputs[0])?;
                if ch != c.in_channels {
                    return Err(ShapeError::Channels {
                        expected: c.in_channels,
                        got: ch,
                    });
                }
                let [od, oh, ow] = c.window.out_dims([d, h, w])?;
                Ok(Shape::new(vec![n, c.out_channels, od, oh, ow]))
            }
            Op::Linear {
                in_features,
                out_features,
            } => match inputs[0].dims() {
                [n, f] if f == in_features => Ok(Shape::new(vec![*n, *out_features])),
                _ => Err(ShapeError::LinearInput {
                    in_features: *in_features,
                    got: inputs[0].clone(),
                }),
            },
            Op::MaxPool3d(win) | Op::MaxPoolRelu3d(win) | Op::AvgPool3d { window: win, .. } => {
                let (n, ch, d, h, w) = video(inputs[0])?;
                let [od, oh, ow] = win.out_dims([d, h, w])?;
                Ok(Shape::new(vec![n, ch, od, oh, ow]))
            }
            Op::Relu => Ok(inputs[0].clone()),
            Op::Reshape => {
                let t = target.ok_or(ShapeError::ReshapeWithoutTarget)?;
                if t.numel() != inputs[0].numel() {
                    return Err(ShapeError::Reshape {
                        from: inputs[0].clone(),
                        to: t.clone(),
                    });
                }
                Ok(t.clone())
            }
            Op::Concat { axis } => {
                let first = inputs[0];
                if *axis >= first.rank() {
                    return Err(axis_err(*axis, first));
                }
                let mut dims = first.0.clone();
                dims[*axis] = 0;
                for s in inputs {
                    if s.rank() != first.rank()
                        || s.0
                            .iter()
                            .zip(&first.0)
                            .enumerate()
                            .any(|(i, (a, b))| i != *axis && a != b)
                    {
                        return Err(ShapeError::Concat {
                            shape: (*s).clone(),
                            first: first.clone(),
                            axis: *axis,
                        });
                    }
                    dims[*axis] += s.0[*axis];
                }
                Ok(Shape(dims))
            }
            Op::Add => {
                if inputs[0] != inputs[1] {
                    return Err(ShapeError::Add(inputs[0].clone(), inputs[1].clone()));
                }
                Ok(inputs[0].clone())
            }
            Op::Pad { pads } => {
                if pads.len() != inputs[0].rank() {
                    return Err(ShapeError::PadRank {
                        pads: pads.len(),
                        rank: inputs[0].rank(),
                    });
                }
                Ok(Shape(
                    inputs[0]
                        .0
                        .iter()
                        .zip(pads)
                        .map(|(d, (b, e))| d + b + e)
                        .collect(),
                ))
            }
            Op::Mean { axes, keepdims } => {
                let s = inputs[0];
                if axes.is_empty() || axes.iter().any(|&a| a >= s.rank()) {
                    return Err(ShapeError::Axes {
                        axes: axes.clone(),
                        shape: s.clone(),
                    });
                }
                Ok(reduce_shape(s, axes, *keepdims))
            }
            Op::Softmax { axis } => {
                if *axis >= inputs[0].rank() {
                    return Err(axis_err(*axis, inputs[0]));
                }
                Ok(inputs[0].clone())
            }
            Op::Argmax { axis, keepdims } => {
                if *axis >= inputs[0].rank() {
                    return Err(axis_err(*axis, inputs[0]));
                }
                Ok(reduce_shape(inputs[0], &[*axis], *keepdims))
            }
        }
    }

    /// Multiply-adds the op costs in plaintext (its linear work).
    pub fn macs(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        match self {
            Op::Conv3d(c) => {
                let k: usize = c.window.kernel.iter().product();
                (out.numel() * c.in_channels * k) as u64
            }
            Op::Linear { in_features, .. } => (out.numel() * in_features) as u64,
            Op::AvgPool3d { window, .. } => {
                (out.numel() * window.kernel.iter().product::<usize>()) as u64
            }
            Op::Mean { .. } => inputs.first().map_or(0, |s| s.numel() as u64),
            Op::Add => out.numel() as u64,
            _ => 0,
        }
    }

    /// Two-input comparisons the op needs in the clear (ReLU: one per element; max-pool: one
    /// fewer than the valid window size per output; fused max-pool and ReLU: one per valid
    /// tap, the last against zero).
    pub fn comparisons(&self, inputs: &[&Shape], out: &Shape) -> u64 {
        match self {
            Op::Relu => out.numel() as u64,
            Op::MaxPoolRelu3d(win) => {
                Op::MaxPool3d(win.clone()).comparisons(inputs, out) + out.numel() as u64
            }
            Op::MaxPool3d(win) => {
                let Some((n, c, d, h, w)) = inputs[0].ncdhw() else {
                    return 0;
                };
                let Some((_, _, od, oh, ow)) = out.ncdhw() else {
                    return 0;
                };
                // Valid taps factor per axis, so the total is a product of per-axis sums.
                let axis_sum = |a: usize, o: usize, len: usize| -> u64 {
                    (0..o).map(|i| win.taps(a, i, len).count() as u64).sum()
                };
                let taps = axis_sum(0, od, d) * axis_sum(1, oh, h) * axis_sum(2, ow, w);
                (n * c) as u64 * (taps - (od * oh * ow) as u64)
            }
            _ => 0,
        }
    }
}

fn reduce_shape(s: &Shape, axes: &[usize], keepdims: bool) -> Shape {
    let mut dims = Vec::new();
    for (i, &d) in s.0.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                dims.push(1);
            }
        } else {
            dims.push(d);
        }
    }
    Shape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c3d_pool5_shape() {
        let w = Window3d {
            kernel: [2, 2, 2],
            stride: [2, 2, 2],
            dilation: [1; 3],
            pads: [(0, 0), (1, 1), (1, 1)],
            ceil_mode: false,
        };
        assert_eq!(w.out_dims([2, 7, 7]).unwrap(), [1, 4, 4]);
    }

    #[test]
    fn ceil_mode_drops_window_starting_in_padding() {
        // PyTorch: MaxPool1d(k=2, s=2, ceil_mode=True) on length 5 gives 3; on length 4 gives 2.
        let mut w = Window3d::dense([2, 2, 2]);
        w.stride = [2, 2, 2];
        w.ceil_mode = true;
        assert_eq!(w.out_len(0, 5).unwrap(), 3);
        assert_eq!(w.out_len(0, 4).unwrap(), 2);
        assert_eq!(w.out_len(0, 1).unwrap(), 1);
        w.ceil_mode = false;
        assert!(w.out_len(0, 1).is_err());
    }

    #[test]
    fn maxpool_comparisons_count_valid_taps() {
        let mut w = Window3d::dense([1, 3, 3]);
        w.stride = [1, 2, 2];
        w.pads = [(0, 0), (1, 1), (1, 1)];
        let op = Op::MaxPool3d(w);
        let i = Shape::new(vec![1, 1, 1, 4, 4]);
        let o = op.infer_shape(&[&i], None).unwrap();
        assert_eq!(o.dims(), &[1, 1, 1, 2, 2]);
        // Brute force: windows over rows {-1,0,1},{1,2,3} -> valid 2 and 3 per axis.
        let valid = [2u64 * 2, 2 * 3, 3 * 2, 3 * 3];
        let expect: u64 = valid.iter().map(|v| v - 1).sum();
        assert_eq!(op.comparisons(&[&i], &o), expect);
    }
}
