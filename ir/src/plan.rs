//! The plan: everything public about a compiled model (safe to hand to a client), and the
//! server-only quantized weights that go beside it.

use crate::error::{IrError, Result};
use crate::fixed::FixedPoint;
use crate::graph::{Graph, NodeId};
use crate::op::OpClass;
use crate::packing::Packing;
use crate::shape::Shape;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Colour channel order the model expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (Caffe-trained models such as the original C3D).
    Bgr,
}

/// How the client turns decoded frames into the model input. Runs on the client only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Frames the model takes (the input's D).
    pub frames: usize,
    /// Frames are resized to (height, width) before cropping.
    pub resize: (usize, usize),
    /// Centre crop (height, width): the input's H and W.
    pub crop: (usize, usize),
    /// Pixels (0..=255) are multiplied by this first.
    pub pixel_scale: f32,
    /// Then the per-channel mean is subtracted...
    pub mean: [f32; 3],
    /// ...and the result divided by the per-channel std.
    pub std: [f32; 3],
    /// Channel order of the input tensor.
    pub channel_order: ChannelOrder,
}

impl Preprocess {
    /// A default for models that bring no metadata: frames resized straight to the input size,
    /// pixels mapped to [-1, 1] (the I3D convention).
    pub fn default_for(input: &Shape) -> Self {
        let (_, _, d, h, w) = input.ncdhw().unwrap_or((1, 3, 1, 1, 1));
        Preprocess {
            frames: d,
            resize: (h, w),
            crop: (h, w),
            pixel_scale: 2.0 / 255.0,
            mean: [1.0; 3],
            std: [1.0; 3],
            channel_order: ChannelOrder::Rgb,
        }
    }

    /// The range [lo, hi] every preprocessed input value lies in (pixels in 0..=255).
    pub fn input_range(&self) -> (f32, f32) {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for c in 0..3 {
            for px in [0.0f32, 255.0] {
                let v = (px * self.pixel_scale - self.mean[c]) / self.std[c];
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }

    /// Checks the numbers make sense against the model input shape.
    pub fn validate(&self, input: &Shape) -> Result<()> {
        let bad = |m: String| {
            Err(IrError::Format {
                what: "plan",
                msg: m,
            })
        };
        let Some((_, c, d, h, w)) = input.ncdhw() else {
            return bad(format!("model input {input} is not (N,C,D,H,W)"));
        };
        if c != 3 {
            return bad(format!(
                "model input has {c} channels; video preprocessing needs 3"
            ));
        }
        if self.frames != d || self.crop != (h, w) {
            return bad(format!(
                "preprocessing gives {} frames of {}x{}, model input is {d}x{h}x{w}",
                self.frames, self.crop.0, self.crop.1
            ));
        }
        if self.resize.0 < self.crop.0 || self.resize.1 < self.crop.1 {
            return bad("resize smaller than the crop".into());
        }
        let finite = self.pixel_scale.is_finite()
            && self.mean.iter().all(|m| m.is_finite())
            && self.std.iter().all(|s| s.is_finite() && *s > 0.0);
        if !finite {
            return bad("preprocessing scale, mean or std not finite (or std <= 0)".into());
        }
        Ok(())
    }
}

/// Public description of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model name (from the ONNX file or the user).
    pub name: String,
    /// The ONNX producer, for the record.
    pub producer: String,
    /// Preprocessing the client applies to video.
    pub preprocess: Preprocess,
    /// Class names, when the model brings them (empty otherwise).
    pub class_names: Vec<String>,
    /// ReLU layers (node names) the model was trained to run as x^2 (ONNX metadata
    /// `c3d.approx`); the compiler squares them whatever `--approx` says.
    pub approx: Vec<String>,
}

/// Fixed-point scales of one node, chosen by range analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerQuant {
    /// Fractional bits of each input as it arrives.
    pub in_scales: Vec<u32>,
    /// Left shift applied to each input first (aligns the scales of Add and Concat inputs).
    pub in_shifts: Vec<u32>,
    /// Integer multiplier applied to each input first (aligns the divisors of Add and Concat
    /// inputs).
    pub in_mults: Vec<u64>,
    /// Fractional bits of the output.
    pub out_scale: u32,
    /// Public divisor of the output: its real value is int / (2^out_scale * divisor). Uniform
    /// average pools and means sum and multiply the divisor; ReLU and max commute with it; the
    /// client divides when it decodes.
    pub divisor: u64,
    /// Fractional bits of the weights or public coefficients (0 where there are none).
    pub weight_frac_bits: u32,
    /// Public bound on the quantized weights: every |weight| < 2^weight_mag_bits (0 where
    /// there are none). The HE noise budget of the layer is sized from it.
    pub weight_mag_bits: u32,
    /// Bits a non-linear layer truncates before comparing (brings the scale back to f).
    pub truncate_bits: u32,
    /// Whole bits bounding the output: every value's magnitude is at most 2^bound_bits (worst
    /// case over the calibrated input range, with the safety margin). Rounded up from the
    /// range analysis's exact bound ([`LayerQuant::bound_bits_of`]), so the plan does not carry
    /// the exact weighted norm of the layer's weights that bound comes from.
    pub bound_bits: u32,
    /// Whole bits of headroom to wrapping mod p, rounded down (conservative): every value's
    /// magnitude stays within ((p-1)/2) / 2^headroom_bits. A function of p and `bound_bits`
    /// only ([`LayerQuant::headroom_bits_of`]): it says nothing the bound does not.
    pub headroom_bits: u32,
}

impl LayerQuant {
    /// A magnitude bound rounded up to whole bits: the least b >= 0 with `bound` <= 2^b (0
    /// for bounds of at most 1, and for NaN). Exact at powers of two (no float log2 rounding
    /// below the bound).
    pub fn bound_bits_of(bound: f64) -> u32 {
        if bound.is_nan() || bound <= 1.0 {
            return 0;
        }
        if bound.is_infinite() || bound > 2f64.powi(1000) {
            return 1000;
        }
        let mut b = bound.log2().ceil().max(0.0) as i32;
        while 2f64.powi(b) < bound {
            b += 1;
        }
        while b > 0 && 2f64.powi(b - 1) >= bound {
            b -= 1;
        }
        b as u32
    }

    /// The public headroom of a layer whose values are bounded by 2^`bound_bits`:
    /// floor(log2((p-1)/2)) - bound_bits, or 0 where that is negative (a bound that fits the
    /// field, as the range analysis checks on the exact bound, may round up past it by under
    /// one bit: the true headroom is then in [0, 1)). Never more than the true headroom.
    pub fn headroom_bits_of(fixed: &FixedPoint, bound_bits: u32) -> u32 {
        let m = fixed.max_signed().max(1);
        (63 - m.leading_zeros()).saturating_sub(bound_bits)
    }
}

/// How a node runs in the two-party protocol. `Protocol::default_for` gives each op class
/// its default; the compiler's protocol pass (`c3d_passes::protocol::choose_protocols`) makes
/// the final choice per non-linear layer, among the protocols that `Protocol::runs` allows and
/// the user's options permit, by the cost model. `Protocol::runs` is the one rule of which
/// protocol may run which op class (checked by `Plan::validate` and by the runtime's schedule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// The client's input enters masked.
    Input,
    /// Local on additive shares (reshape, pad, concat, add, public-coefficient pooling).
    Local,
    /// Linear layer with secret weights: BFV offline, field arithmetic online.
    HeLinear,
    /// Comparisons in a garbled circuit.
    GarbledCircuit,
    /// Replaced by x^2 with Beaver triples (approximation chosen by the user).
    BeaverSquare,
    /// The client computes it on the revealed output.
    Client,
    /// Comparisons by OT on silent-OT correlations (millionaire, DReLU mod p, multiplexer,
    /// exact truncation): exact, as garbled circuits are, for a fraction of their traffic.
    OtComparison,
}

impl Protocol {
    /// Every protocol, in declaration order (what a choice among candidates walks).
    pub const ALL: [Protocol; 7] = [
        Protocol::Input,
        Protocol::Local,
        Protocol::HeLinear,
        Protocol::GarbledCircuit,
        Protocol::BeaverSquare,
        Protocol::Client,
        Protocol::OtComparison,
    ];

    /// The default protocol for an op class.
    pub fn default_for(class: OpClass) -> Self {
        match class {
            OpClass::Input => Protocol::Input,
            OpClass::SecretLinear => Protocol::HeLinear,
            OpClass::Local => Protocol::Local,
            OpClass::NonLinear => Protocol::GarbledCircuit,
            OpClass::ClientOutput => Protocol::Client,
        }
    }

    /// Whether this protocol can run a node of this op class: the single source of that rule.
    pub fn runs(self, class: OpClass) -> bool {
        match self {
            Protocol::Input => class == OpClass::Input,
            Protocol::Local => class == OpClass::Local,
            Protocol::HeLinear => class == OpClass::SecretLinear,
            Protocol::GarbledCircuit | Protocol::BeaverSquare | Protocol::OtComparison => {
                class == OpClass::NonLinear
            }
            Protocol::Client => class == OpClass::ClientOutput,
        }
    }
}

/// Per-node plan entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    /// The node this entry is for.
    pub node: NodeId,
    /// Fixed-point scales.
    pub quant: LayerQuant,
    /// Protocol for the node.
    pub protocol: Protocol,
    /// HE packing of a layer with secret weights, chosen by the packing pass (the runtime
    /// refuses a plan whose HE linear layers have none, or one its parameters cannot carry).
    pub packing: Option<Packing>,
    /// Fraction of zero weights (once pruning has run).
    pub sparsity: Option<f64>,
}

/// A pass that ran, and what it reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassRecord {
    /// Pass name.
    pub name: String,
    /// One line on what it did.
    pub detail: String,
}

/// How the range analysis was calibrated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Number of calibration inputs.
    pub samples: usize,
    /// Seed of the generated calibration inputs (public: calibration is not secret).
    pub seed: u64,
    /// Bits of margin added over the largest calibrated activation.
    pub safety_bits: u32,
}

/// A compiled model: public, safe to give the client. Never holds weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Model description and preprocessing.
    pub meta: ModelMeta,
    /// The graph.
    pub graph: Graph,
    /// Field and activation scale.
    pub fixed: FixedPoint,
    /// One entry per node, in topological order.
    pub layers: Vec<NodePlan>,
    /// Passes that ran, in order.
    pub passes: Vec<PassRecord>,
    /// Calibration of the range analysis.
    pub calibration: Calibration,
    /// Salted commitment to the weights the plan was compiled with (see
    /// [`Weights::commitment`]): SHA-256 over a domain separator, the weights file's 32-byte
    /// salt and the quantized weights. Without the salt, which never leaves the server, it
    /// cannot confirm a guess of the weights.
    pub weights_hash: [u8; 32],
    /// How the compiler chose between the exact comparison protocols, and for which network.
    pub network: NetworkModel,
}

/// Which exact protocol runs the comparisons (`c3dc compile --nonlinear`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NonlinearChoice {
    /// Garbled circuits everywhere.
    Gc,
    /// OT-based comparisons wherever they can run (garbled circuits elsewhere).
    Ot,
    /// Per layer, the faster on the network described (the default).
    #[default]
    Auto,
}

/// The network the protocol choice was made for, stored in the plan for the record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkModel {
    /// The choice asked for.
    pub nonlinear: NonlinearChoice,
    /// Bandwidth, Mbit/s.
    pub bandwidth_mbit: f64,
    /// Round-trip time, ms.
    pub rtt_ms: f64,
}

impl Default for NetworkModel {
    /// A LAN: 1 Gbit/s, 0.5 ms round trips.
    fn default() -> Self {
        NetworkModel {
            nonlinear: NonlinearChoice::Auto,
            bandwidth_mbit: 1000.0,
            rtt_ms: 0.5,
        }
    }
}

impl Plan {
    /// The plan entry of a node.
    pub fn layer(&self, id: NodeId) -> Option<&NodePlan> {
        self.layers.iter().find(|l| l.node == id)
    }

    /// Fewest fractional bits any activation (input, ReLU or max-pool output) carries.
    pub fn lowest_activation_bits(&self) -> Option<u32> {
        self.layers
            .iter()
            .filter(|l| {
                matches!(
                    self.graph.node(l.node).op.class(),
                    OpClass::NonLinear | OpClass::Input
                )
            })
            .map(|l| l.quant.out_scale)
            .min()
    }

    /// Semantic checks beyond the file format: the graph, one entry per node in topological
    /// order, scales consistent with the graph, a usable field.
    pub fn validate(&self) -> Result<()> {
        self.graph.validate()?;
        let bad = |m: String| {
            Err(IrError::Format {
                what: "plan",
                msg: m,
            })
        };
        let fx = &self.fixed;
        if !crate::fixed::is_prime(fx.p) || fx.p < (1 << 20) || fx.p >= (1 << 62) {
            return bad(format!(
                "field modulus {} is not a prime of 21..62 bits",
                fx.p
            ));
        }
        if fx.frac_bits == 0 || fx.frac_bits > 24 {
            return bad(format!(
                "{} fractional bits is out of range 1..=24",
                fx.frac_bits
            ));
        }
        let order = self.graph.topo_order()?;
        if order.len() != self.layers.len() {
            return bad(format!(
                "{} plan entries for {} nodes",
                self.layers.len(),
                order.len()
            ));
        }
        let pos: BTreeMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut seen = BTreeMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            let Some(&p) = pos.get(&l.node) else {
                return bad(format!("plan entry {i} names a missing node"));
            };
            seen.insert(l.node, i);
            let node = self.graph.node(l.node);
            let ins = self.graph.inputs_of(l.node);
            if ins.iter().any(|n| !seen.contains_key(n)) {
                return bad(format!(
                    "plan entry for `{}` comes before its inputs (order {p})",
                    node.name
                ));
            }
            let q = &l.quant;
            if q.in_scales.len() != ins.len()
                || q.in_shifts.len() != ins.len()
                || q.in_mults.len() != ins.len()
            {
                return bad(format!("scales of `{}` do not match its inputs", node.name));
            }
            for (k, &inp) in ins.iter().enumerate() {
                let up = &self.layers[seen[&inp]].quant;
                if up.out_scale != q.in_scales[k] {
                    return bad(format!("scale of `{}` input {k} disagrees", node.name));
                }
            }
            let bad_mult = q.in_mults.iter().any(|&m| m == 0 || m > 1 << 20);
            if q.out_scale > 62
                || q.weight_frac_bits > 40
                || q.in_shifts.iter().any(|&s| s > 40)
                || bad_mult
                || q.divisor == 0
                || q.divisor > 1 << 20
            {
                return bad(format!("scales of `{}` out of range", node.name));
            }
            if q.weight_mag_bits > 62 {
                return bad(format!("weight bound of `{}` out of range", node.name));
            }
            if q.bound_bits > 62 || q.headroom_bits > 62 {
                return bad(format!(
                    "value bound or headroom of `{}` out of range",
                    node.name
                ));
            }
            if l.protocol == Protocol::BeaverSquare {
                if !matches!(node.op, crate::op::Op::Relu)
                    || q.truncate_bits != 0
                    || q.out_scale != 2 * q.in_scales[0]
                {
                    return bad(format!(
                        "`{}` is squared by Beaver but is not a ReLU with doubled scale",
                        node.name
                    ));
                }
            } else if node.op.class() == OpClass::NonLinear
                && q.in_scales[0] != q.out_scale + q.truncate_bits
            {
                return bad(format!("truncation of `{}` inconsistent", node.name));
            }
            let class = node.op.class();
            if !l.protocol.runs(class) {
                return bad(format!(
                    "`{}` ({}) cannot run as {:?}",
                    node.name,
                    node.op.name(),
                    l.protocol
                ));
            }
        }
        let input = self.graph.io()?.0;
        self.meta.preprocess.validate(&self.graph.node(input).shape)
    }
}

/// Quantized weights and bias of one layer, as centred field values (`Debug` shows sizes
/// only).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    /// Weights at `weight_frac_bits` fractional bits, in the op's weight layout.
    pub weight: Vec<i64>,
    /// Bias at the layer's output scale.
    pub bias: Vec<i64>,
}

/// The server-only weights file: quantized weights of every layer with secret weights, and
/// the salt of the plan's commitment to them. Its `Debug` shows sizes only, so a log or a
/// panic message cannot carry a weight or the salt.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// Salt of the plan's `weights_hash` commitment: 32 bytes the compiler draws from the OS
    /// CSPRNG for each compilation. Secret like the weights (a client holding it could test
    /// guessed weights against the plan's commitment). All zero in weights built by hand.
    pub salt: [u8; 32],
    /// Weights by node.
    pub layers: BTreeMap<NodeId, LayerWeights>,
}

impl std::fmt::Debug for LayerWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWeights")
            .field("weights", &self.weight.len())
            .field("biases", &self.bias.len())
            .finish()
    }
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("layers", &self.layers.len())
            .field(
                "values",
                &self.layers.values().map(|l| l.weight.len()).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

impl Weights {
    /// Checks that every weighted node has weights of the right sizes, and nothing else does,
    /// and that every value is a centred element of F_p.
    pub fn check_against(&self, graph: &Graph, fixed: &FixedPoint) -> Result<()> {
        let lim = fixed.max_signed();
        let mut expected = 0;
        for id in graph.topo_order()? {
            let node = graph.node(id);
            if let Some((w, b)) = node.op.weight_shapes() {
                expected += 1;
                let lw = self.layers.get(&id).ok_or_else(|| {
                    IrError::Weights(format!("no weights for layer `{}`", node.name))
                })?;
                if lw.weight.len() != w.numel() || lw.bias.len() != b.numel() {
                    return Err(IrError::Weights(format!(
                        "layer `{}` has {} weights and {} biases, expected {} ({w}) and {} ",
                        node.name,
                        lw.weight.len(),
                        lw.bias.len(),
                        w.numel(),
                        b.numel()
                    )));
                }
                if lw
                    .weight
                    .iter()
                    .chain(&lw.bias)
                    .any(|v| v.unsigned_abs() > lim)
                {
                    return Err(IrError::Weights(format!(
                        "layer `{}` holds values outside the field's centred range",
                        node.name
                    )));
                }
            }
        }
        if self.layers.len() != expected {
            return Err(IrError::Weights(format!(
                "{} weighted layers in the file, the plan has {expected}",
                self.layers.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_protocol_once_in_order() {
        // A new variant breaks this match, and then the array must grow with it.
        let index = |p: Protocol| match p {
            Protocol::Input => 0,
            Protocol::Local => 1,
            Protocol::HeLinear => 2,
            Protocol::GarbledCircuit => 3,
            Protocol::BeaverSquare => 4,
            Protocol::Client => 5,
            Protocol::OtComparison => 6,
        };
        for (i, p) in Protocol::ALL.into_iter().enumerate() {
            assert_eq!(index(p), i);
        }
    }

    #[test]
    fn each_op_class_runs_under_its_default_protocol_and_no_other_class_does() {
        use OpClass::*;
        let classes = [Input, SecretLinear, Local, NonLinear, ClientOutput];
        for c in classes {
            assert!(Protocol::default_for(c).runs(c), "{c:?}");
            for other in classes.iter().filter(|&&o| o != c) {
                assert!(!Protocol::default_for(c).runs(*other), "{c:?} vs {other:?}");
            }
        }
        assert!(Protocol::BeaverSquare.runs(NonLinear));
        assert!(!Protocol::BeaverSquare.runs(SecretLinear));
    }

    #[test]
    fn debug_output_shows_no_weight_or_salt() {
        let mut w = Weights {
            salt: [0xAB; 32],
            ..Default::default()
        };
        w.layers.insert(
            NodeId::new(3),
            LayerWeights {
                weight: vec![123_456_789, -987_654_321],
                bias: vec![55_555_555],
            },
        );
        let d = format!("{w:?} {:?}", w.layers[&NodeId::new(3)]);
        for secret in ["123456789", "987654321", "55555555", "171", "AB", "ab"] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("layers: 1"), "{d}");
    }

    #[test]
    fn bounds_round_up_and_headroom_down_to_whole_bits() {
        let b = LayerQuant::bound_bits_of;
        assert_eq!(b(0.0), 0);
        assert_eq!(b(0.3), 0);
        assert_eq!(b(1.0), 0);
        assert_eq!(b(1.0001), 1);
        assert_eq!(b(2.0), 1);
        assert_eq!(b(1023.9), 10);
        assert_eq!(b(1024.0), 10);
        // Just above a power of two: log2 in floating point rounds to 40 exactly, the bound
        // must still cover the value.
        let above = 2f64.powi(40) * (1.0 + f64::EPSILON);
        assert_eq!(b(above), 41);
        assert_eq!(b(f64::NAN), 0);
        for k in 0..62 {
            let v = 2f64.powi(k) * 1.37;
            assert!(
                2f64.powi(b(v) as i32) >= v && 2f64.powi(b(v) as i32 - 1) < v,
                "{v}"
            );
        }
        // DELPHI_PRIME = 15 * 2^37 + 1: (p-1)/2 = 15 * 2^36, between 2^39 and 2^40.
        let fx = FixedPoint {
            p: crate::fixed::DELPHI_PRIME,
            frac_bits: 12,
        };
        let h = LayerQuant::headroom_bits_of;
        assert_eq!(h(&fx, 0), 39);
        assert_eq!(h(&fx, 30), 9);
        assert_eq!(h(&fx, 39), 0);
        // A bound of 2^40 still fits (p-1)/2 > 2^39.9 exactly, but not in whole bits.
        assert_eq!(h(&fx, 40), 0);
        for bits in 0..=40u32 {
            let room = (fx.max_signed() as f64).log2() - bits as f64;
            assert!(h(&fx, bits) as f64 <= room.max(0.0), "{bits}");
        }
    }
}
