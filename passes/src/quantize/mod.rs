//! Range analysis and fixed-point scale choice: maps a float model into F_p.
//!
//! Every activation leaving a non-linear layer carries `f` fractional bits; weights carry
//! `f` bits plus a few for layers whose weights are all small; a linear layer's output carries
//! the sum of its input's and its weights' bits until the next non-linear layer truncates back
//! to `f` inside the garbled circuit.
//!
//! Bounds ([`bounds`]): the model input is bounded by the preprocessing (pixels 0..=255),
//! which is sound. A linear layer's output is bounded by its worst case,
//! max_o (sum |w_int[o]| B_in + |b_int[o]|), which is sound given its input bound. A
//! non-linear layer's output takes the smaller of the sound bound and the largest calibrated
//! activation times 2^safety_bits, because worst cases compounded through a deep network are
//! far beyond any real activation. The layout ([`layout`]) gives every node its scales and
//! bound for one (p, f); the search ([`search`]) takes the smallest candidate prime, and then
//! the largest f, for which every bound fits in (-p/2, p/2): no intermediate value can wrap
//! for inputs whose activations stay within the calibrated range times the margin. The
//! emission ([`emit`]) quantizes the weights and writes the plan.
//!
//! Each non-linear layer's protocol comes from the protocol pass ([`crate::protocol`]), run
//! first: a layer squared with Beaver pairs is bounded and scaled differently from a garbled
//! one.

mod bounds;
mod emit;
mod layout;
mod search;

pub use layout::{divisor_bits, extra_weight_bits};

use crate::calibrate::{calibrate, CalibConfig, CalibError};
use crate::protocol::{choose_protocols, ProtocolError, ProtocolOptions};
use c3d_ir::fixed::candidate_primes;
use c3d_ir::{Model, Plan, Tensor, Weights};
use std::collections::HashMap;

/// Settings of the quantization pass.
#[derive(Clone, Debug)]
pub struct QuantConfig {
    /// Force this many fractional bits (otherwise chosen).
    pub frac_bits: Option<u32>,
    /// Force this prime (otherwise the smallest candidate that fits).
    pub prime: Option<u64>,
    /// Smallest acceptable f when choosing.
    pub min_frac_bits: u32,
    /// Largest f tried.
    pub max_frac_bits: u32,
    /// Generated calibration inputs (uniform over the preprocessed pixel range).
    pub calib_samples: usize,
    /// Seed of the generated calibration inputs.
    pub seed: u64,
    /// Extra calibration inputs from the user.
    pub calib_inputs: Vec<Tensor<f32>>,
    /// Margin, in bits, over the largest calibrated activation.
    pub safety_bits: u32,
    /// ReLU layers (by node name) replaced by x^2 with Beaver squares: no comparisons, the
    /// scale doubles until the next garbled layer truncates.
    pub approx: Vec<String>,
    /// The comparison protocols allowed and the network the choice among them is made for.
    pub network: c3d_ir::NetworkModel,
}

impl QuantConfig {
    /// Its calibration settings (calibration knows nothing of quantization).
    pub fn calibration(&self) -> CalibConfig<'_> {
        CalibConfig {
            samples: self.calib_samples,
            seed: self.seed,
            inputs: &self.calib_inputs,
        }
    }
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            frac_bits: None,
            prime: None,
            min_frac_bits: 8,
            max_frac_bits: 16,
            calib_samples: 4,
            seed: 0x00C3_D0C3,
            calib_inputs: Vec::new(),
            safety_bits: 2,
            approx: Vec::new(),
            network: Default::default(),
        }
    }
}

/// Why a model could not be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// No candidate (p, f) keeps every value from wrapping.
    #[error("no field fits: at p = {p} with f = {f} bits, layer `{layer}` needs {need:.1} bits of magnitude but p allows {have:.1}")]
    NoFit {
        /// Largest prime tried.
        p: u64,
        /// Smallest f tried.
        f: u32,
        /// The layer that overflowed.
        layer: String,
        /// Bits needed.
        need: f64,
        /// Bits available.
        have: f64,
    },
    /// A fractional-bits range outside 1..=24, or empty.
    #[error("fractional bits range {min}..={max} is not within 1..=24")]
    FracRange {
        /// Smallest f asked.
        min: u32,
        /// Largest f asked.
        max: u32,
    },
    /// A forced f outside 1..=24.
    #[error("{0} fractional bits is out of range 1..=24")]
    FracBits(u32),
    /// A forced p that is not a prime of 21..62 bits.
    #[error("{0} is not a prime of 21..62 bits")]
    Prime(u64),
    /// A squared ReLU whose input carries too large a pooling divisor.
    #[error("`{layer}` squares a tensor whose pooling divisor is too large")]
    SquareDivisor {
        /// The layer.
        layer: String,
    },
    /// An Add or Concat whose inputs' divisors have no small common multiple.
    #[error("`{layer}` joins tensors whose pooling divisors have no small common multiple")]
    JoinDivisor {
        /// The layer.
        layer: String,
    },
    /// The OS gave no randomness for the weights' salt.
    #[error("cannot draw the weights salt: {0}")]
    Salt(#[source] rand::rand_core::OsError),
    /// Calibration failed.
    #[error(transparent)]
    Calib(#[from] CalibError),
    /// The protocol choice failed (the user's options name no such layer).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// IR-level failure (evaluation, shapes).
    #[error(transparent)]
    Ir(#[from] c3d_ir::IrError),
}

/// Result of the pass: the public plan and the server's weights.
pub struct Quantized {
    /// The plan (weights hash filled in).
    pub plan: Plan,
    /// The quantized weights.
    pub weights: Weights,
}

/// Runs calibration and chooses (p, f); returns the plan and the quantized weights.
pub fn quantize(
    model: &Model,
    cfg: &QuantConfig,
    mut progress: impl FnMut(&str),
) -> Result<Quantized, QuantError> {
    if cfg.min_frac_bits == 0 || cfg.min_frac_bits > cfg.max_frac_bits || cfg.max_frac_bits > 24 {
        return Err(QuantError::FracRange {
            min: cfg.min_frac_bits,
            max: cfg.max_frac_bits,
        });
    }
    let stats = calibrate(model, &cfg.calibration(), &mut progress)?;
    let primes = match cfg.prime {
        Some(p) => {
            if !c3d_ir::fixed::is_prime(p) || !(1u64 << 20..1u64 << 62).contains(&p) {
                return Err(QuantError::Prime(p));
            }
            vec![p]
        }
        None => candidate_primes(),
    };
    let fs: Vec<u32> = match cfg.frac_bits {
        Some(f) if (1..=24).contains(&f) => vec![f],
        Some(f) => return Err(QuantError::FracBits(f)),
        None => (cfg.min_frac_bits..=cfg.max_frac_bits).rev().collect(),
    };
    let opts = ProtocolOptions {
        approx: cfg.approx.clone(),
        network: cfg.network,
    };
    let protocols = choose_protocols(&model.graph, &opts)?;
    // Pools by OT comparisons need headroom for their differences, which may cost a larger
    // field; they get it only within the field the plan needs anyway, else they run garbled.
    let garbled_pools: HashMap<c3d_ir::NodeId, c3d_ir::Protocol> = protocols
        .iter()
        .map(|(&id, &p)| {
            let pool = matches!(
                model.graph.node(id).op,
                c3d_ir::Op::MaxPool3d(_) | c3d_ir::Op::MaxPoolRelu3d(_)
            );
            let p = if pool && p == c3d_ir::Protocol::OtComparison {
                c3d_ir::Protocol::GarbledCircuit
            } else {
                p
            };
            (id, p)
        })
        .collect();
    let inputs = |protocols| layout::Inputs {
        model,
        stats: &stats,
        safety: cfg.safety_bits,
        protocols,
    };
    let (fx, lay) = if garbled_pools == protocols {
        search::search(&inputs(&protocols), cfg, &primes, &fs, &mut progress)?
    } else {
        let plain = search::search(&inputs(&garbled_pools), cfg, &primes, &fs, &mut |_| {});
        match (
            search::search(&inputs(&protocols), cfg, &primes, &fs, &mut progress),
            plain,
        ) {
            (Ok(ot), Ok(plain)) if ot.0.p > plain.0.p => {
                progress(&format!(
                    "quantize: OT pools would need p = {} instead of {}: the pools run garbled",
                    ot.0.p, plain.0.p
                ));
                plain
            }
            (Ok(ot), _) => ot,
            (Err(_), Ok(plain)) => plain,
            (Err(e), Err(_)) => return Err(e),
        }
    };
    emit::emit(model, cfg, fx, lay, &stats, &mut progress)
}

/// What the protocol choice came to, for the plan's record.
pub(crate) fn protocol_record(
    plan: &c3d_ir::Plan,
    moved: &[(String, String)],
) -> c3d_ir::PassRecord {
    use c3d_ir::Protocol;
    let count = |p: Protocol| plan.layers.iter().filter(|l| l.protocol == p).count();
    let n = &plan.network;
    let mut detail = format!(
        "{} non-linear layers by OT comparisons, {} garbled, {} squared (--nonlinear {:?} for {} Mbit/s, {} ms RTT)",
        count(Protocol::OtComparison),
        count(Protocol::GarbledCircuit),
        count(Protocol::BeaverSquare),
        n.nonlinear,
        n.bandwidth_mbit,
        n.rtt_ms
    );
    if !moved.is_empty() {
        let list: Vec<String> = moved
            .iter()
            .map(|(l, why)| format!("`{l}` ({why})"))
            .collect();
        detail.push_str(&format!("; garbled instead: {}", list.join(", ")));
    }
    c3d_ir::PassRecord {
        name: "protocol".into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_before_any_work() {
        let m = Model {
            graph: c3d_ir::Graph::new(),
            weights: Default::default(),
            meta: c3d_ir::ModelMeta {
                name: "empty".into(),
                producer: String::new(),
                preprocess: c3d_ir::Preprocess::default_for(&c3d_ir::Shape::new(vec![
                    1, 3, 1, 1, 1,
                ])),
                class_names: vec![],
                approx: vec![],
            },
        };
        let cfg = QuantConfig {
            min_frac_bits: 9,
            max_frac_bits: 8,
            ..QuantConfig::default()
        };
        let e = quantize(&m, &cfg, |_| {}).err().unwrap();
        assert!(matches!(e, QuantError::FracRange { min: 9, max: 8 }), "{e}");
        assert_eq!(
            e.to_string(),
            "fractional bits range 9..=8 is not within 1..=24"
        );
    }
}
