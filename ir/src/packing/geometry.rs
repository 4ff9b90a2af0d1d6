//! The geometry of a linear layer as HE packs it: a 3-D convolution over (C, D, H, W)
//! tensors (a fully connected layer is a 1x1x1 one), its padded volume and outputs, and the
//! layer in the clear mod p, the reference every protocol must meet.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::shape::Shape;
use serde::{Deserialize, Serialize};

/// Why a node or shape is not a convolution the packing can cut.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// A batch or rank other than one (N = 1, rank 5) clip.
    #[error("`{node}`: one clip at a time (N = 1, rank 5), got {shape}")]
    NotOneClip {
        /// The node.
        node: String,
        /// Its tensor's shape.
        shape: Shape,
    },
    /// A fully connected layer over a batch.
    #[error("`{node}`: one clip at a time (N = 1)")]
    Batch {
        /// The node.
        node: String,
    },
    /// Channels or ceil mode that do not match the tensors.
    #[error("`{node}`: convolution geometry does not match its tensors")]
    Mismatch {
        /// The node.
        node: String,
    },
    /// The geometry's output volume is not the node's.
    #[error("`{node}`: convolution output {computed:?} is not the tensor's {tensor:?}")]
    Output {
        /// The node.
        node: String,
        /// The volume the geometry gives.
        computed: [usize; 3],
        /// The node tensor's volume.
        tensor: [usize; 3],
    },
    /// An op that has no secret weights.
    #[error("`{node}`: {op} has no secret weights")]
    NoSecretWeights {
        /// The node.
        node: String,
        /// Its op.
        op: &'static str,
    },
    /// No input or output channels.
    #[error("no channels")]
    NoChannels,
    /// A depthwise layer that changes the channel count.
    #[error("a depthwise layer maps {c_in} channels to {c_out}")]
    Depthwise {
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
    },
    /// A zero extent, stride or dilation.
    #[error("a zero extent, stride or dilation on axis {axis}")]
    ZeroExtent {
        /// The axis.
        axis: usize,
    },
    /// A kernel wider than the padded input.
    #[error("kernel span {span} exceeds the padded input {padded} on axis {axis}")]
    Span {
        /// The dilated kernel's extent.
        span: usize,
        /// The padded input's extent.
        padded: usize,
        /// The axis.
        axis: usize,
    },
}

/// A 3-D convolution over (C, D, H, W) tensors, without bias (the server adds its bias to
/// its own share online).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvShape {
    /// Input channels.
    pub c_in: usize,
    /// Output channels (equal to `c_in` when depthwise).
    pub c_out: usize,
    /// Input volume (D, H, W), before padding.
    pub input: [usize; 3],
    /// Kernel extent.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Dilation.
    pub dilation: [usize; 3],
    /// Zero padding before each axis.
    pub pad_begin: [usize; 3],
    /// Zero padding after each axis.
    pub pad_end: [usize; 3],
    /// Each output channel reads only its own input channel (average pooling).
    pub depthwise: bool,
}

impl ConvShape {
    /// A fully connected layer y = W x with W of shape (outputs, inputs).
    pub fn fully_connected(inputs: usize, outputs: usize) -> Self {
        ConvShape {
            c_in: inputs,
            c_out: outputs,
            input: [1, 1, 1],
            kernel: [1, 1, 1],
            stride: [1, 1, 1],
            dilation: [1, 1, 1],
            pad_begin: [0; 3],
            pad_end: [0; 3],
            depthwise: false,
        }
    }

    /// A 3x3x3 convolution with stride 1 and one voxel of padding on every side (every C3D
    /// convolution) over an `input` volume (D, H, W).
    pub fn same_3x3x3(c_in: usize, c_out: usize, input: [usize; 3]) -> Self {
        ConvShape {
            c_in,
            c_out,
            input,
            kernel: [3; 3],
            stride: [1; 3],
            dilation: [1; 3],
            pad_begin: [1; 3],
            pad_end: [1; 3],
            depthwise: false,
        }
    }

    /// The linear map of a node with secret weights (Conv3d, or Linear as a 1x1x1 convolution
    /// over a 1x1x1 volume), for one clip (N = 1).
    pub fn of_node(g: &Graph, id: NodeId) -> Result<ConvShape, GeometryError> {
        let node = g.node(id);
        let one = |sh: &crate::Shape| match sh.ncdhw() {
            Some((1, c, d, h, w)) => Ok((c, [d, h, w])),
            _ => Err(GeometryError::NotOneClip {
                node: node.name.clone(),
                shape: sh.clone(),
            }),
        };
        let inputs = g.inputs_of(id);
        let shape = match &node.op {
            Op::Conv3d(cp) => {
                let (c_in, input) = one(&g.node(inputs[0]).shape)?;
                let (c_out, out) = one(&node.shape)?;
                let w = &cp.window;
                if w.ceil_mode || c_in != cp.in_channels || c_out != cp.out_channels {
                    return Err(GeometryError::Mismatch {
                        node: node.name.clone(),
                    });
                }
                let shape = ConvShape {
                    c_in,
                    c_out,
                    input,
                    kernel: w.kernel,
                    stride: w.stride,
                    dilation: w.dilation,
                    pad_begin: std::array::from_fn(|a| w.pads[a].0),
                    pad_end: std::array::from_fn(|a| w.pads[a].1),
                    depthwise: false,
                };
                shape.validate()?;
                if shape.output() != out {
                    return Err(GeometryError::Output {
                        node: node.name.clone(),
                        computed: shape.output(),
                        tensor: out,
                    });
                }
                shape
            }
            Op::Linear {
                in_features,
                out_features,
            } => {
                if node.shape.dims().first() != Some(&1) {
                    return Err(GeometryError::Batch {
                        node: node.name.clone(),
                    });
                }
                ConvShape::fully_connected(*in_features, *out_features)
            }
            op => {
                return Err(GeometryError::NoSecretWeights {
                    node: node.name.clone(),
                    op: op.name(),
                })
            }
        };
        Ok(shape)
    }

    pub(crate) fn padded(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.input[a] + self.pad_begin[a] + self.pad_end[a])
    }

    /// Extent of the dilated kernel.
    pub(crate) fn span(&self) -> [usize; 3] {
        std::array::from_fn(|a| self.dilation[a] * (self.kernel[a] - 1) + 1)
    }

    /// Outputs at stride 1 over the padded volume.
    pub(crate) fn dense(&self) -> [usize; 3] {
        let (p, s) = (self.padded(), self.span());
        std::array::from_fn(|a| p[a] + 1 - s[a])
    }

    /// Output volume.
    pub fn output(&self) -> [usize; 3] {
        let d = self.dense();
        std::array::from_fn(|a| (d[a] - 1) / self.stride[a] + 1)
    }

    /// Input values (C * D * H * W).
    pub fn input_len(&self) -> usize {
        self.c_in * self.input.iter().product::<usize>()
    }

    /// Output values.
    pub fn output_len(&self) -> usize {
        self.c_out * self.output().iter().product::<usize>()
    }

    /// Weights, laid out (C_out, C_in or 1, kd, kh, kw).
    pub fn weight_len(&self) -> usize {
        self.c_out
            * if self.depthwise { 1 } else { self.c_in }
            * self.kernel.iter().product::<usize>()
    }

    /// Checks the shape is a well-formed convolution.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if self.c_in == 0 || self.c_out == 0 {
            return Err(GeometryError::NoChannels);
        }
        if self.depthwise && self.c_in != self.c_out {
            return Err(GeometryError::Depthwise {
                c_in: self.c_in,
                c_out: self.c_out,
            });
        }
        for a in 0..3 {
            if self.input[a] == 0
                || self.kernel[a] == 0
                || self.stride[a] == 0
                || self.dilation[a] == 0
            {
                return Err(GeometryError::ZeroExtent { axis: a });
            }
            if self.padded()[a] < self.span()[a] {
                return Err(GeometryError::Span {
                    span: self.span()[a],
                    padded: self.padded()[a],
                    axis: a,
                });
            }
        }
        Ok(())
    }

    /// The layer in the clear, mod p: the reference the protocol must meet.
    pub fn apply(&self, x: &[u64], w: &[u64], p: u64) -> Vec<u64> {
        let [id, ih, iw] = self.input;
        let [od, oh, ow] = self.output();
        let [kd, kh, kw] = self.kernel;
        let mut out = vec![0u64; self.output_len()];
        for o in 0..self.c_out {
            let chans: Vec<usize> = if self.depthwise {
                vec![o]
            } else {
                (0..self.c_in).collect()
            };
            for z in 0..od {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = 0u128;
                        for (ci, &c) in chans.iter().enumerate() {
                            for i in 0..kd {
                                for j in 0..kh {
                                    for l in 0..kw {
                                        let pos = [
                                            (z * self.stride[0] + i * self.dilation[0]) as isize
                                                - self.pad_begin[0] as isize,
                                            (y * self.stride[1] + j * self.dilation[1]) as isize
                                                - self.pad_begin[1] as isize,
                                            (xx * self.stride[2] + l * self.dilation[2]) as isize
                                                - self.pad_begin[2] as isize,
                                        ];
                                        if pos[0] < 0
                                            || pos[1] < 0
                                            || pos[2] < 0
                                            || pos[0] >= id as isize
                                            || pos[1] >= ih as isize
                                            || pos[2] >= iw as isize
                                        {
                                            continue;
                                        }
                                        let xv = x[((c * id + pos[0] as usize) * ih
                                            + pos[1] as usize)
                                            * iw
                                            + pos[2] as usize];
                                        let cw = if self.depthwise { 0 } else { ci };
                                        let per_o = if self.depthwise { 1 } else { self.c_in };
                                        let wv = w[(((o * per_o + cw) * kd + i) * kh + j) * kw + l];
                                        acc = (acc + xv as u128 * wv as u128) % p as u128;
                                    }
                                }
                            }
                        }
                        out[((o * od + z) * oh + y) * ow + xx] = acc as u64;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> ConvShape {
        ConvShape {
            c_in: 2,
            c_out: 3,
            input: [3, 5, 6],
            kernel: [3, 3, 2],
            stride: [1, 2, 2],
            dilation: [1, 1, 2],
            pad_begin: [1, 1, 0],
            pad_end: [1, 0, 1],
            depthwise: false,
        }
    }

    #[test]
    fn output_volume_is_the_strided_count_of_windows() {
        // By hand: padded (5, 6, 7), dilated spans (3, 3, 3), dense (3, 4, 5), strided
        // (3, 2, 3).
        let s = conv();
        assert_eq!(s.output(), [3, 2, 3]);
        assert_eq!(s.output_len(), 3 * 3 * 2 * 3);
        assert_eq!(s.weight_len(), 3 * 2 * 3 * 3 * 2);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn applies_the_convolution_as_a_brute_force_sum() {
        let s = conv();
        let p = 97;
        let x: Vec<u64> = (0..s.input_len() as u64).map(|i| i % 7).collect();
        let w: Vec<u64> = (0..s.weight_len() as u64).map(|i| i % 5).collect();
        let y = s.apply(&x, &w, p);
        // Output (o = 1, z = 0, y = 1, x = 2), summed directly over the window.
        let [id, ih, iw] = s.input;
        let mut want = 0;
        for c in 0..2 {
            for i in 0..3 {
                for j in 0..3 {
                    for l in 0..2 {
                        let (pz, py, px) =
                            (i as isize - 1, (2 + j) as isize - 1, (4 + 2 * l) as isize);
                        if pz < 0
                            || py < 0
                            || pz >= id as isize
                            || py >= ih as isize
                            || px >= iw as isize
                        {
                            continue;
                        }
                        let xv = x[((c * id + pz as usize) * ih + py as usize) * iw + px as usize];
                        want += xv * w[(((2 + c) * 3 + i) * 3 + j) * 2 + l];
                    }
                }
            }
        }
        let [od, oh, ow] = s.output();
        assert_eq!(y[(od * oh + 1) * ow + 2], want % p);
    }

    #[test]
    fn malformed_shapes_are_refused_with_their_cause() {
        let mut s = conv();
        s.kernel[2] = 5;
        assert_eq!(
            s.validate(),
            Err(GeometryError::Span {
                span: 9,
                padded: 7,
                axis: 2
            })
        );
        let s = ConvShape {
            depthwise: true,
            ..conv()
        };
        assert_eq!(
            s.validate(),
            Err(GeometryError::Depthwise { c_in: 2, c_out: 3 })
        );
    }
}
