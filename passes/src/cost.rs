//! The cost model: for each node of a plan, what the two-party protocol will spend on it:
//! HE ciphertexts and products offline, AND gates and bytes of garbled circuits, Beaver bytes,
//! and the server's plaintext multiply-adds online. Every choice the passes make (packing,
//! rewrites, pruning) is weighed with it, and `c3dc inspect` prints it.
//!
//! The figures are exact counts of what the runtime does for the same plan (the runtime's
//! tests check the AND-gate formula against its circuit builder and the HE counts and bytes
//! against a real run), except bytes of OT, which follow IKNP's message sizes.

use c3d_ir::he_model::{
    flood_bits, session_replies, switch_target_fits, FloodBudget, HeModel, NoiseBudget,
};
use c3d_ir::op::Op;
use c3d_ir::packing::{ConvShape, Packing};
use c3d_ir::{NodeId, Plan, Protocol, Weights};
use serde::Serialize;

/// Bytes of one garbled AND gate (half-gates: two 128-bit rows).
pub const AND_BYTES: u64 = 32;
/// Bytes of one wire label.
pub const LABEL_BYTES: u64 = 16;
/// Bytes one IKNP random OT costs on the wire: the receiver's 128-bit column row and the
/// sender's two 128-bit corrections.
pub const OT_BYTES: u64 = 48;

/// Bits of p (the width of every garbled value).
pub fn width(p: u64) -> u64 {
    (64 - p.leading_zeros()) as u64
}

/// AND gates of one garbled unit: the maximum of `k` shared values (k = 1: a ReLU alone),
/// truncated by `t` bits, with or without the ReLU, re-masked. Reconstructing each value mod p
/// and comparing costs 5 n per extra input; the fixed part depends on the low zero bits of
/// p - 1 through the constant comparisons with p.
pub fn gc_unit_ands(p: u64, t: u32, k: u64, relu: bool) -> u64 {
    let n = width(p);
    let tz = (p - 1).trailing_zeros() as u64;
    let base = 7 * n + (n - tz) + 2;
    let base = if relu { base - 1 - t as u64 } else { base };
    base + (k.max(1) - 1) * 5 * n
}

/// Digits of the millionaire's comparisons (4-bit digits) on `bits` bits.
fn digits(bits: u64) -> u64 {
    bits.div_ceil(4)
}

/// Bits on the wire of one OT max step, max(a, b) = b + DReLU(a - b) (a - b), at prime p:
/// the leaf OTs of the two comparisons of DReLU (4 choice bits and 16 four-bit entries a
/// digit), their AND gates (a pair sharing an input per digit combination and comparison, 3
/// bits each way), the 1-out-of-4 that ends DReLU, and the multiplexer (a choice bit and a
/// field element each way). The runtime's `session::compared` sends exactly these.
pub fn ot_step_bits(p: u64) -> u64 {
    let w = width(p);
    let q = digits(w + 1);
    68 * q + 12 * (q - 1) + 6 + 2 + 2 * w
}

/// Bits on the wire of one exact truncation by t bits (none for t = 0): two comparisons on
/// t + 1 bits, then a 1-out-of-16 of field elements.
pub fn ot_truncate_bits(p: u64, t: u32) -> u64 {
    if t == 0 {
        return 0;
    }
    let q = digits(t as u64 + 1);
    68 * q + 12 * (q - 1) + 4 + 16 * width(p)
}

/// COTs of one OT max step, (forward, reverse): 4 a leaf digit, one each way per pair of
/// ANDs, 2 for the 1-of-4, one each way for the multiplexer.
pub fn ot_step_cots(p: u64) -> (u64, u64) {
    let q = digits(width(p) + 1);
    (4 * q + 2 * (q - 1) + 3, 2 * (q - 1) + 1)
}

/// COTs of one exact truncation, (forward, reverse).
pub fn ot_truncate_cots(t: u32) -> (u64, u64) {
    if t == 0 {
        return (0, 0);
    }
    let q = digits(t as u64 + 1);
    (4 * q + 2 * (q - 1) + 4, 2 * (q - 1))
}

/// Candidates an OT-compared layer handles per chunk (the runtime's chunk).
pub const OT_CHUNK: u64 = 1 << 16;
/// AND gates per garbled chunk (the runtime's chunk).
pub const GC_CHUNK_ANDS: u64 = 1 << 18;
/// Least and most COTs per silent-OT round (the runtime's `ot::cot_pool`).
const ROUND_MIN: u64 = 1 << 14;
const ROUND_MAX: u64 = 1 << 21;

/// The silent-OT rounds the runtime prepares for `total` COTs in one direction: (rounds,
/// COTs per round), as few rounds of at most 2^21 as cover it, each a power of two.
pub fn silent_rounds(total: u64) -> (u64, u64) {
    let rounds = total.max(1).div_ceil(ROUND_MAX);
    let n = total
        .max(1)
        .div_ceil(rounds)
        .next_power_of_two()
        .clamp(ROUND_MIN, ROUND_MAX);
    (total.div_ceil(n), n)
}

/// Bytes of one silent-OT round of n COTs (t = 256 trees of depth h = log2(2n / 256)): the
/// IKNP random OTs for the trees' base OTs (16 B each) and the tree messages ((2h + 1) blocks
/// a tree), with their frame headers.
pub fn silent_round_bytes(n: u64) -> u64 {
    let t = 256u64;
    let h = (2 * n / t).trailing_zeros() as u64;
    16 * t * h + 16 * t * (2 * h + 1) + 2 * 5
}

/// Bytes of the silent-OT rounds of one OT-compared layer, both directions.
pub fn silent_bytes(fwd: u64, rev: u64) -> u64 {
    [fwd, rev]
        .into_iter()
        .map(|c| {
            let (r, n) = silent_rounds(c);
            r * silent_round_bytes(n)
        })
        .sum()
}
/// Garbled AND gates garbled and evaluated per second, both parties on the reference 2-core
/// machine (docs/bench-runtime.md).
pub const GC_ANDS_PER_S: f64 = 1.0e7;
/// COTs expanded and consumed per second by the OT comparisons, both parties on the reference
/// machine (docs/bench-runtime.md).
pub const OT_COTS_PER_S: f64 = 2.0e6;

/// What one node costs in the protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LayerCost {
    /// Ciphertexts the client encrypts and sends (offline).
    pub he_cts_in: u64,
    /// Ciphertexts the server returns (offline).
    pub he_cts_out: u64,
    /// Plaintext-ciphertext products the server computes (offline), zero kernels skipped.
    pub he_products: u64,
    /// Products the packing would need if no kernel were zero.
    pub he_products_dense: u64,
    /// Bytes of HE ciphertexts, both ways (offline).
    pub he_bytes: u64,
    /// log2 of the public bound on the noise of the layer's replies before flooding, B (the
    /// largest over the nodes in a total; 0 without HE).
    pub he_noise_bits: u32,
    /// The flooding width b of the layer's replies for the session's R
    /// ([`c3d_ir::he_model::flood_bits`]; the widest in a total; 0 without HE or when the
    /// parameters cannot carry it).
    pub he_flood_bits: u32,
    /// Comparisons (two-input maxima and ReLUs).
    pub comparisons: u64,
    /// AND gates garbled (offline) and evaluated (online).
    pub and_gates: u64,
    /// Bytes of garbled tables and OTs for the client's input labels (offline).
    pub gc_bytes_offline: u64,
    /// Bytes of the server's input labels and the client's output labels (online).
    pub gc_bytes_online: u64,
    /// Bytes of Beaver square pairs by OT (offline).
    pub beaver_bytes_offline: u64,
    /// Bytes of opening masked values (online).
    pub beaver_bytes_online: u64,
    /// The server's plaintext multiply-adds online, zero weights skipped.
    pub online_macs: u64,
    /// Bytes of the client's masked input, x - r (online).
    pub input_bytes_online: u64,
    /// COTs the OT comparisons consume (both directions).
    pub ot_cots: u64,
    /// Bytes of silent-OT rounds for them (offline).
    pub ot_bytes_offline: u64,
    /// Bytes of the OT comparisons themselves (online).
    pub ot_bytes_online: u64,
    /// Messages online that wait for the peer's answer (each costs half a round trip).
    pub flights: u64,
}

impl LayerCost {
    /// Bytes offline, both directions.
    pub fn bytes_offline(&self) -> u64 {
        self.he_bytes + self.gc_bytes_offline + self.beaver_bytes_offline + self.ot_bytes_offline
    }

    /// Bytes online, both directions.
    pub fn bytes_online(&self) -> u64 {
        self.gc_bytes_online
            + self.beaver_bytes_online
            + self.input_bytes_online
            + self.ot_bytes_online
    }

    /// Estimated seconds of a non-linear layer's protocol on `net`: its bytes at the
    /// bandwidth, half a round trip per flight, and the compute at the reference rates.
    pub fn seconds(&self, net: &c3d_ir::NetworkModel) -> f64 {
        let bytes = (self.bytes_offline() + self.bytes_online()) as f64;
        bytes * 8.0 / (net.bandwidth_mbit.max(1e-3) * 1e6)
            + self.flights as f64 * net.rtt_ms.max(0.0) / 2000.0
            + self.and_gates as f64 / GC_ANDS_PER_S
            + self.ot_cots as f64 / OT_COTS_PER_S
    }

    fn add(&mut self, o: &LayerCost) {
        self.he_cts_in += o.he_cts_in;
        self.he_cts_out += o.he_cts_out;
        self.he_products += o.he_products;
        self.he_products_dense += o.he_products_dense;
        self.he_bytes += o.he_bytes;
        self.he_noise_bits = self.he_noise_bits.max(o.he_noise_bits);
        self.he_flood_bits = self.he_flood_bits.max(o.he_flood_bits);
        self.comparisons += o.comparisons;
        self.and_gates += o.and_gates;
        self.gc_bytes_offline += o.gc_bytes_offline;
        self.gc_bytes_online += o.gc_bytes_online;
        self.beaver_bytes_offline += o.beaver_bytes_offline;
        self.beaver_bytes_online += o.beaver_bytes_online;
        self.online_macs += o.online_macs;
        self.input_bytes_online += o.input_bytes_online;
        self.ot_cots += o.ot_cots;
        self.ot_bytes_offline += o.ot_bytes_offline;
        self.ot_bytes_online += o.ot_bytes_online;
        self.flights += o.flights;
    }
}

/// The cost of every node and the total.
#[derive(Clone, Debug, Serialize)]
pub struct PlanCost {
    /// Per node, in plan order.
    pub layers: Vec<(NodeId, LayerCost)>,
    /// Sum over the nodes.
    pub total: LayerCost,
    /// R: the ciphertexts the server floods and returns in a session
    /// ([`c3d_ir::he_model::session_replies`]; 0 when a layer has no packing yet).
    pub he_replies: u64,
    /// log2 of the bound on the statistical distance of everything flooded in a session from
    /// noise independent of the weights: sum over HE layers of N R_l 2^(B_l - b_l - 1), with
    /// R_l the layer's replies (at most -41 by construction; None without HE replies or when
    /// a layer's flooding does not fit).
    pub he_distance_log2: Option<f64>,
}

/// Bytes of a ciphertext the client sends (one polynomial at the full modulus; the other is
/// a seed), for the default backend's parameters.
pub fn ct_in_bytes(he: &HeModel) -> u64 {
    let bits: usize = HeModel::limb_bits(he.p).iter().sum();
    (he.degree() * bits / 8 + 49) as u64
}

/// Bits of one coefficient of a reply: the limbs it keeps when switched down to the fewest
/// that still decrypt (the backend's switching rule, on the limbs' sizes less one bit).
pub fn reply_coeff_bits(he: &HeModel) -> u64 {
    let mut kept = 0;
    for b in HeModel::limb_bits(he.p) {
        kept += b;
        if switch_target_fits(kept as u32 - 1, he.p) {
            break;
        }
    }
    kept as u64
}

/// Bytes of the ciphertexts the server returns for a layer of `outputs` outputs in `cts`
/// replies: each reply's second polynomial whole and, of its first, the coefficients that
/// hold outputs (the default backend's reply format), rounded up to bytes per reply.
pub fn replies_bytes(he: &HeModel, cts: u64, outputs: u64) -> u64 {
    (cts * he.degree() as u64 + outputs) * reply_coeff_bits(he) / 8 + cts
}

/// Which (output channel, input channel) kernels have a non-zero weight, laid out
/// C_out x C_in (weights are laid out (C_out, C_in, taps); not for depthwise layers).
pub fn nonzero_kernels(s: &ConvShape, weight: &[i64]) -> Vec<bool> {
    let taps: usize = s.kernel.iter().product();
    weight
        .chunks(taps.max(1))
        .map(|k| k.iter().any(|&v| v != 0))
        .collect()
}

/// Products per tile of `pk` whose kernel block is not all zero, from the layer's
/// [`nonzero_kernels`]; a group with none left keeps one product, as the runtime does (every
/// reply exists). A depthwise layer has one product per group.
pub fn live_per_tile(s: &ConvShape, pk: &Packing, nz: &[bool]) -> usize {
    let (blocks, groups) = (pk.in_blocks(s), pk.out_groups(s));
    if s.depthwise {
        return groups;
    }
    let mut live = vec![false; blocks * groups];
    for o in 0..s.c_out {
        for c in 0..s.c_in {
            if nz[o * s.c_in + c] {
                live[(c / pk.c_t) * groups + o / pk.m_o] = true;
            }
        }
    }
    (0..groups)
        .map(|g| (0..blocks).filter(|&b| live[b * groups + g]).count().max(1))
        .sum()
}

/// What a non-linear node costs under `protocol` (garbled circuits, OT comparisons or Beaver
/// squares; zero under any other) at the prime `p`, truncating `t` bits: the one formula the plan's cost and
/// the protocol pass's choice ([`crate::protocol`]) both use.
pub fn nonlinear_cost(
    op: &Op,
    shapes: &[&c3d_ir::Shape],
    out: &c3d_ir::Shape,
    protocol: Protocol,
    p: u64,
    t: u32,
) -> LayerCost {
    let n = width(p);
    let outs = out.numel() as u64;
    let mut c = LayerCost::default();
    match protocol {
        Protocol::GarbledCircuit => {
            let (units, taps, relu) = match op {
                Op::Relu => (outs, outs, true),
                Op::MaxPool3d(_) => {
                    let taps = op.comparisons(shapes, out) + outs;
                    (outs, taps, false)
                }
                Op::MaxPoolRelu3d(_) => {
                    let taps = op.comparisons(shapes, out);
                    (outs, taps, true)
                }
                _ => (0, 0, false),
            };
            c.comparisons = op.comparisons(shapes, out);
            // Every unit pays its fixed part once and 5 n per extra tap.
            c.and_gates = units * gc_unit_ands(p, t, 1, relu) + (taps - units) * 5 * n;
            // The client's inputs: its share of every tap and one output mask per unit.
            let ot_bits = (taps + units) * n;
            c.gc_bytes_offline = c.and_gates * AND_BYTES + ot_bits * OT_BYTES;
            // Online: the server's labels for its shares, the client's output labels.
            c.gc_bytes_online = (taps + units) * n * LABEL_BYTES;
            // One exchange of labels per chunk.
            c.flights = 2 * c.and_gates.div_ceil(GC_CHUNK_ANDS).max(units.min(1));
        }
        Protocol::OtComparison => {
            if !matches!(op, Op::Relu | Op::MaxPool3d(_) | Op::MaxPoolRelu3d(_)) {
                return c;
            }
            c.comparisons = op.comparisons(shapes, out);
            // Every comparison is one max step (a ReLU's against 0).
            let steps = c.comparisons;
            let bits = steps * ot_step_bits(p) + outs * (ot_truncate_bits(p, t) + n);
            c.ot_bytes_online = bits.div_ceil(8);
            let (sf, sr) = ot_step_cots(p);
            let (tf, tr) = ot_truncate_cots(t);
            let (fwd, rev) = (steps * sf + outs * tf, steps * sr + outs * tr);
            c.ot_cots = fwd + rev;
            c.ot_bytes_offline = silent_bytes(fwd, rev);
            // Per chunk: each level of the window tree 2 flights for the leaves, 2 per AND
            // level, 2 for the 1-of-4 and 3 for the multiplexer; the truncation likewise; 1
            // for the re-randomisation.
            let cands = steps + outs;
            let chunks = cands.div_ceil(OT_CHUNK).max(outs.min(1));
            let k_max = if outs == 0 { 1 } else { cands.div_ceil(outs) };
            let levels = 64 - (k_max.max(1) - 1).leading_zeros() as u64;
            let and_levels = |bits: u64| 64 - (digits(bits).max(1) - 1).leading_zeros() as u64;
            let level = 2 + 2 * and_levels(n + 1) + 2 + 3;
            let trunc = if t > 0 {
                2 + 2 * and_levels(t as u64 + 1) + 2
            } else {
                0
            };
            c.flights = chunks * (levels * level + trunc + 1);
        }
        Protocol::BeaverSquare => {
            c.comparisons = 0;
            // Gilboa: n OTs of n-bit messages per pair.
            c.beaver_bytes_offline = outs * n * (OT_BYTES + n.div_ceil(8));
            // Each party opens its share of x - a: 8 bytes each way.
            c.beaver_bytes_online = outs * 16;
        }
        _ => {}
    }
    c
}

/// The cost of every node of a plan. With `weights`, zero kernels and weights are skipped as
/// the runtime skips them; without, layers count as dense.
pub fn plan_cost(plan: &Plan, weights: Option<&Weights>) -> PlanCost {
    let g = &plan.graph;
    let p = plan.fixed.p;
    let he = HeModel::for_prime(p);
    let replies = session_replies(plan).ok();
    let budget = replies.map(FloodBudget::new);
    let mut distance = Some(0.0f64);
    let mut layers = Vec::new();
    let mut total = LayerCost::default();
    for l in &plan.layers {
        let node = g.node(l.node);
        let ins = g.inputs_of(l.node);
        let shapes: Vec<&c3d_ir::Shape> = ins.iter().map(|&i| &g.node(i).shape).collect();
        let mut c = LayerCost::default();
        let outs = node.shape.numel() as u64;
        match l.protocol {
            Protocol::HeLinear => {
                let macs = node.op.macs(&shapes, &node.shape);
                let lw = weights.and_then(|w| w.layers.get(&l.node));
                c.online_macs = match lw {
                    Some(lw) if !lw.weight.is_empty() => {
                        let nz = lw.weight.iter().filter(|&&v| v != 0).count() as u64;
                        macs * nz / lw.weight.len() as u64
                    }
                    _ => macs,
                };
                if let (Ok(s), Some(pk)) = (ConvShape::of_node(g, l.node), &l.packing) {
                    c.he_cts_in = pk.cts_in(&s) as u64;
                    c.he_cts_out = pk.cts_out(&s) as u64;
                    c.he_products_dense = pk.products(&s) as u64;
                    c.he_products = match lw {
                        Some(lw) => {
                            let nz = nonzero_kernels(&s, &lw.weight);
                            (pk.tile_count(&s) * live_per_tile(&s, pk, &nz)) as u64
                        }
                        None => c.he_products_dense,
                    };
                    c.he_bytes = c.he_cts_in * ct_in_bytes(&he)
                        + replies_bytes(&he, c.he_cts_out, s.output_len() as u64);
                    let wb = l.quant.weight_mag_bits;
                    c.he_noise_bits = pk.noise_bits(&s, &he, wb);
                    let flood = budget.and_then(|b| flood_bits(&he, c.he_noise_bits, &b).ok());
                    c.he_flood_bits = flood.unwrap_or(0);
                    distance = match (distance, flood) {
                        (Some(d), Some(b)) => Some(
                            d + (he.degree() as f64 * c.he_cts_out as f64)
                                * 2f64.powi(c.he_noise_bits as i32 - b as i32 - 1),
                        ),
                        _ => None,
                    };
                }
            }
            Protocol::GarbledCircuit | Protocol::BeaverSquare | Protocol::OtComparison => {
                c = nonlinear_cost(
                    &node.op,
                    &shapes,
                    &node.shape,
                    l.protocol,
                    p,
                    l.quant.truncate_bits,
                );
            }
            Protocol::Input => c.input_bytes_online = outs * 8,
            Protocol::Local | Protocol::Client => {}
        }
        total.add(&c);
        layers.push((l.node, c));
    }
    PlanCost {
        layers,
        total,
        he_replies: replies.unwrap_or(0),
        he_distance_log2: distance.filter(|&d| d > 0.0).map(f64::log2),
    }
}
