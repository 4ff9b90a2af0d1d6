//! SIMD-slot packings of a linear layer, costed beside the coefficient packing: the
//! hybrid-diagonal matrix-vector product (Halevi-Shoup with baby-step giant-step rotations, as
//! Gazelle uses it) for fully connected layers, and Gazelle's slot-packed convolution (input
//! channels in slots, one rotation per kernel tap) for convolutions. Both need rotations, so
//! Galois keys from the client, and their plaintexts are dense in the ring (a slot vector
//! encodes to a polynomial with uniform coefficients mod p, l1-norm up to N p / 2), which is
//! what decides them here: the estimate says whether the session's flooding fits.
//!
//! These are estimates from public data only (shape, parameters, the session's replies); the
//! runtime runs coefficient packings, and `c3dc inspect` shows these beside the chosen one.

use crate::he_model::FloodBudget;
use crate::he_model::{
    flood_bits, HeModel, NoiseBudget, COST_IN_US, COST_OUT_US, COST_PREPARE_US, COST_PRODUCT_US,
};
use crate::packing::ConvShape;
use serde::{Deserialize, Serialize};

/// Microseconds per rotation on the reference machine of [`COST_PRODUCT_US`]: one key switch
/// with fhe.rs's RNS-digit keys at the full modulus (N = 8192, four limbs) takes 2.93 ms on one
/// thread (`cargo bench -p c3d-runtime --bench he_layers`, docs/bench-runtime.md), shared by
/// the machine's two cores.
pub const COST_ROTATE_US: f64 = 1470.0;

/// Which slot packing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotKind {
    /// Hybrid-diagonal matrix-vector product (fully connected layers).
    Diagonal,
    /// Gazelle's slot-packed convolution (convolutions).
    Gazelle,
}

/// What a slot packing would cost a layer, and whether its flooding fits the parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotEstimate {
    /// Which packing.
    pub kind: SlotKind,
    /// Plaintext products (each with its own prepared plaintext).
    pub products: usize,
    /// Rotations (key switches).
    pub rotations: usize,
    /// Distinct rotation steps: the Galois keys the client would send.
    pub galois_keys: usize,
    /// Bytes of those keys.
    pub key_bytes: u64,
    /// Ciphertexts the client sends.
    pub cts_in: usize,
    /// Ciphertexts the server returns.
    pub cts_out: usize,
    /// log2 of the noise bound of a reply before flooding.
    pub noise_bits: u32,
    /// Ciphertext modulus bits its flooding needs for the session.
    pub modulus_needed: u32,
    /// Ciphertext modulus bits the parameters have.
    pub modulus_have: u32,
    /// Estimated seconds on the reference machine, both parties (the unit of
    /// [`crate::packing::Packing::cost`]).
    pub seconds: f64,
}

impl SlotEstimate {
    /// Whether the session's flooding fits the parameters.
    pub fn fits(&self) -> bool {
        self.modulus_needed <= self.modulus_have
    }
}

fn log2_ceil(x: u64) -> u32 {
    64 - x.max(1).saturating_sub(1).leading_zeros()
}

/// The slot packings that apply to layer `s` (the diagonal one for fully connected layers,
/// Gazelle's for convolutions), estimated at the default backend's parameters for `p` in a
/// session of `budget`'s replies.
pub fn slot_estimates(s: &ConvShape, p: u64, budget: &FloodBudget) -> Vec<SlotEstimate> {
    let he = HeModel::for_prime(p);
    let n = he.degree();
    // Column rotations cycle the two rows of N / 2 slots.
    let row = n / 2;
    let limbs = HeModel::limb_bits(p).len() as u32;
    let t_bits = 64 - p.leading_zeros();
    // A dense plaintext's l1-norm: N coefficients up to p / 2.
    let l1_bits = log2_ceil(n as u64) + t_bits - 1;
    // A key switch with RNS-digit keys adds up to (limbs) N (q_i / 2) |e| per coefficient.
    let ks_bits = log2_ceil(limbs as u64) + log2_ceil(n as u64) + 61 + 5;
    // One Galois key: a digit per limb, each two polynomials at the full modulus, the second
    // sent as a seed.
    let key_bytes_each = limbs as u64 * (he.modulus_bits as u64 + 1) * n as u64 / 8;
    // Rotated inputs times dense plaintexts, `terms` of them summed, then rotations of the
    // sum (their key-switch noise adds one bit at most).
    let noise = |terms: u64| l1_bits + ks_bits.max(t_bits) + 1 + log2_ceil(terms) + 2;
    let finish = |kind, products: usize, rotations, steps: usize, cts_in, cts_out, terms| {
        let noise_bits = noise(terms);
        let modulus_needed = match flood_bits(&he, noise_bits, budget) {
            Ok(f) => f + t_bits + 3,
            Err(_) => noise_bits + budget.margin_bits(n) + t_bits + 3,
        };
        let seconds = (products as f64 * (COST_PRODUCT_US + COST_PREPARE_US)
            + rotations as f64 * COST_ROTATE_US
            + cts_in as f64 * COST_IN_US
            + cts_out as f64 * COST_OUT_US)
            / 1e6;
        SlotEstimate {
            kind,
            products,
            rotations,
            galois_keys: steps,
            key_bytes: steps as u64 * key_bytes_each,
            cts_in,
            cts_out,
            noise_bits,
            modulus_needed,
            modulus_have: he.modulus_bits,
            seconds,
        }
    };
    let fully_connected = s.input == [1, 1, 1] && s.kernel == [1, 1, 1] && !s.depthwise;
    if fully_connected {
        // Blocks of at most a row of inputs by a row of outputs; each block has
        // min(a, b) extended diagonals, summed with baby steps g (rotations of the input,
        // shared by the blocks of one input row) and giant steps, then log2(max / min)
        // rotate-and-add steps.
        let (ni, no) = (s.c_in, s.c_out);
        let (bi, bo) = (ni.div_ceil(row), no.div_ceil(row));
        let (mut products, mut rotations, mut steps) = (0, 0, 0);
        let mut max_terms = 0;
        for i in 0..bi {
            let a = (ni - i * row).min(row);
            let mut baby = 0;
            for o in 0..bo {
                let b = (no - o * row).min(row);
                let d = a.min(b);
                let g = (d as f64).sqrt().ceil() as usize;
                let fold = log2_ceil((a.max(b)).div_ceil(d) as u64) as usize;
                products += d;
                rotations += d.div_ceil(g) - 1 + fold;
                baby = baby.max(g - 1);
                steps = steps.max(g - 1 + d.div_ceil(g) - 1 + fold);
                max_terms = max_terms.max(d);
            }
            rotations += baby;
        }
        return vec![finish(
            SlotKind::Diagonal,
            products,
            rotations,
            steps,
            bi,
            bo,
            (max_terms * bi) as u64,
        )];
    }
    if s.depthwise {
        return Vec::new();
    }
    // Gazelle: the padded input volume in slots, c_n channels per ciphertext when it fits a
    // row (halos between tiles ignored, which only favours it); one rotation per tap of each
    // input ciphertext; a plaintext per (input ciphertext, tap, output channel); the c_n
    // channels of a sum folded by log2(c_n) rotations per output channel.
    let v: usize = (0..3)
        .map(|a| s.input[a] + s.pad_begin[a] + s.pad_end[a])
        .product();
    let tiles = v.div_ceil(row);
    let c_n = (row / v).max(1).min(s.c_in);
    let taps: usize = s.kernel.iter().product();
    let in_cts = tiles * s.c_in.div_ceil(c_n);
    let fold = log2_ceil(c_n as u64) as usize;
    let products = in_cts * taps * s.c_out;
    let rotations = in_cts * (taps - 1) + tiles * s.c_out * fold;
    let cts_out = tiles * s.c_out.div_ceil(c_n);
    vec![finish(
        SlotKind::Gazelle,
        products,
        rotations,
        taps - 1 + fold,
        in_cts,
        cts_out,
        (s.c_in.div_ceil(c_n) * taps) as u64,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::DELPHI_PRIME;

    fn conv(c_in: usize, c_out: usize, dhw: [usize; 3]) -> ConvShape {
        ConvShape::same_3x3x3(c_in, c_out, dhw)
    }

    /// The counts against a direct count of the hybrid method on a small square block, and
    /// the Gazelle counts against their formulas by hand.
    #[test]
    fn counts_follow_the_methods() {
        let b = FloodBudget::new(16);
        // 64 x 64: 64 diagonals, baby steps 8 (7 rotations), giant steps 8 (7), no fold.
        let e = &slot_estimates(&ConvShape::fully_connected(64, 64), DELPHI_PRIME, &b)[0];
        assert_eq!(e.kind, SlotKind::Diagonal);
        assert_eq!((e.products, e.rotations, e.galois_keys), (64, 14, 14));
        assert_eq!((e.cts_in, e.cts_out), (1, 1));
        // 256 inputs to 16 outputs: 16 diagonals (4 + 4 steps) and log2(16) = 4 folds.
        let e = &slot_estimates(&ConvShape::fully_connected(256, 16), DELPHI_PRIME, &b)[0];
        assert_eq!((e.products, e.rotations), (16, 3 + 3 + 4));
        // Ragged: 5000 inputs to 100 outputs is two input blocks (4096 + 904).
        let e = &slot_estimates(&ConvShape::fully_connected(5000, 100), DELPHI_PRIME, &b)[0];
        assert_eq!((e.products, e.cts_in, e.cts_out), (200, 2, 1));
        // Gazelle on 4 channels of 6 x 6 x 6 (padded 8^3 = 512 slots: 4 channels per
        // ciphertext): one input ciphertext, 26 tap rotations, 4 x 27 x 8 products.
        let g = &slot_estimates(&conv(4, 8, [6, 6, 6]), DELPHI_PRIME, &b)[0];
        assert_eq!(g.kind, SlotKind::Gazelle);
        assert_eq!(g.cts_in, 1);
        assert_eq!(g.products, 27 * 8);
        assert_eq!(g.rotations, 26 + 8 * 2);
        assert_eq!(g.cts_out, 2);
        // A depthwise layer has no slot candidate here.
        let mut d = conv(4, 4, [6, 6, 6]);
        d.depthwise = true;
        assert!(slot_estimates(&d, DELPHI_PRIME, &b).is_empty());
    }

    /// At Delphi's 41-bit prime, dense slot plaintexts times key-switched inputs need more
    /// modulus than the 217 bits the parameters have, for every C3D layer shape, while the
    /// coefficient packing of each fits.
    #[test]
    fn slot_packings_do_not_fit_the_flooding_at_n_8192() {
        let b = FloodBudget::new(5636);
        for s in [
            conv(3, 64, [16, 112, 112]),
            conv(512, 512, [2, 7, 7]),
            ConvShape::fully_connected(8192, 4096),
            ConvShape::fully_connected(4096, 487),
        ] {
            for e in slot_estimates(&s, DELPHI_PRIME, &b) {
                assert!(!e.fits(), "{s:?}: {e:?}");
                assert!(e.modulus_needed > 217);
            }
            let he = HeModel::for_prime(DELPHI_PRIME);
            assert!(crate::packing::Packing::choose(&s, &he, 16, &b).is_ok());
        }
    }
}
