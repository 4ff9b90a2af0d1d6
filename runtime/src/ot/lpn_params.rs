//! The parameters of silent OT's dual-LPN compression with regular noise, and the rule that
//! refuses an insecure set. docs/security.md ("Silent OT parameters") writes the computation
//! out; this is its code, so a set the runtime accepts is one that computation accepts.
//!
//! Linear tests are the attack the parameters are sized against: for a code whose dual has
//! minimum relative distance delta, t regular noise positions leave a bias of at most
//! (1 - 2 delta)^t, so the security is lambda = -t log2(1 - 2 delta) bits (Boyle et al. 2019;
//! libOTe `ConfigureCode.cpp`, `getRegNoiseWeight`). t is rounded up, never down.

/// The codes the compression may use, with the relative distance the estimate assumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DualCode {
    /// Expand-Convolute (Raghuraman, Rindal, Tanguy, Crypto 2023) with expander weight 7 and
    /// accumulator width 24.
    ExConv7x24,
    /// Expand-Convolute with expander weight 21 and accumulator width 24.
    ExConv21x24,
}

impl DualCode {
    /// The minimum relative distance assumed for the estimate: 0.15 and 0.2, the values libOTe
    /// used from 2024-01 to 2025-06 and cryprot-ot uses (libOTe now assumes 0.25 for both, which
    /// only raises the margin).
    pub fn min_distance(self) -> f64 {
        match self {
            DualCode::ExConv7x24 => 0.15,
            DualCode::ExConv21x24 => 0.2,
        }
    }
}

/// The target: 128-bit computational security.
pub const SECURITY_BITS: f64 = 128.0;

/// One round's parameters: n COTs out of a noisy vector of N = 2n, in t blocks of N/t.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilentParams {
    /// The compression code.
    pub code: DualCode,
    /// COTs per round.
    pub n: u64,
    /// Length of the noisy vector (N = 2n).
    pub big_n: u64,
    /// Noise weight: one position per block.
    pub t: u64,
}

/// Why a parameter set is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    /// The vector is not twice the output.
    #[error("the noisy vector has {big_n} entries, not 2n = {}", 2 * .n)]
    Rate {
        /// COTs per round.
        n: u64,
        /// Its length.
        big_n: u64,
    },
    /// The blocks are not whole powers of two of at least 2 positions.
    #[error("{big_n} positions do not split into {t} blocks of a power of two >= 2")]
    Blocks {
        /// Positions.
        big_n: u64,
        /// Blocks.
        t: u64,
    },
    /// Too few noise positions for the target.
    #[error("noise weight {t} gives {bits:.1} bits against linear tests; at least {min} needed for 128 bits")]
    Weight {
        /// The weight asked for.
        t: u64,
        /// Its security.
        bits: f64,
        /// The least weight that reaches the target.
        min: u64,
    },
}

/// Bits of security against linear tests of t regular noise positions under `code`.
pub fn linear_test_bits(code: DualCode, t: u64) -> f64 {
    -(t as f64) * (1.0 - 2.0 * code.min_distance()).log2()
}

/// The least noise weight reaching [`SECURITY_BITS`] under `code` (rounded up).
pub fn min_weight(code: DualCode) -> u64 {
    (SECURITY_BITS / -(1.0 - 2.0 * code.min_distance()).log2()).ceil() as u64
}

impl SilentParams {
    /// The default set for `n` COTs per round: N = 2n, t = 256 blocks (a power of two above
    /// [`min_weight`] for ExConv7x24, 131.7 bits).
    pub fn for_round(n: u64) -> Result<SilentParams, ParamError> {
        let p = SilentParams {
            code: DualCode::ExConv7x24,
            n,
            big_n: 2 * n,
            t: 256,
        };
        p.check()?;
        Ok(p)
    }

    /// Positions per block, N / t.
    pub fn block(&self) -> u64 {
        self.big_n / self.t
    }

    /// Depth of each block's GGM tree, log2(N / t).
    pub fn depth(&self) -> u32 {
        self.block().trailing_zeros()
    }

    /// Refuses a set that is malformed or below the target.
    pub fn check(&self) -> Result<(), ParamError> {
        if self.big_n != 2 * self.n {
            return Err(ParamError::Rate {
                n: self.n,
                big_n: self.big_n,
            });
        }
        let blocks_ok = self.t > 0
            && self.big_n.is_multiple_of(self.t)
            && self.block() >= 2
            && self.block().is_power_of_two();
        if !blocks_ok {
            return Err(ParamError::Blocks {
                big_n: self.big_n,
                t: self.t,
            });
        }
        let bits = linear_test_bits(self.code, self.t);
        if bits < SECURITY_BITS {
            return Err(ParamError::Weight {
                t: self.t,
                bits,
                min: min_weight(self.code),
            });
        }
        Ok(())
    }

    /// The traffic of one round in bytes, both ways: t h base random OTs by IKNP (16 bytes
    /// each, receiver to sender) and t tree messages of 2h + 1 blocks (sender to receiver).
    pub fn round_bytes(&self) -> u64 {
        let h = self.depth() as u64;
        16 * self.t * h + 16 * self.t * (2 * h + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_are_those_the_security_computation_gives() {
        // -log2(0.7) = 0.514573, -log2(0.6) = 0.736966: 128 / those, rounded up.
        assert_eq!(min_weight(DualCode::ExConv7x24), 249);
        assert_eq!(min_weight(DualCode::ExConv21x24), 174);
        let bits = linear_test_bits(DualCode::ExConv7x24, 256);
        assert!((bits - 131.73).abs() < 0.01, "{bits}");
    }

    #[test]
    fn truncating_the_weight_is_refused() {
        // libOTe rounds 248.75 down to 248 (127.6 bits); this rule does not.
        let p = SilentParams {
            code: DualCode::ExConv7x24,
            n: 124 << 13,
            big_n: 248 << 13,
            t: 248,
        };
        assert!(matches!(
            p.check(),
            Err(ParamError::Weight { min: 249, .. })
        ));
        let enough = SilentParams {
            n: 128 << 13,
            big_n: 256 << 13,
            t: 256,
            ..p
        };
        assert_eq!(enough.check(), Ok(()));
    }

    #[test]
    fn malformed_sets_are_refused_and_the_default_passes() {
        let ok = SilentParams::for_round(1 << 21).unwrap();
        assert_eq!((ok.block(), ok.depth()), (1 << 14, 14));
        // The memo's table: 176,128 bytes a round, 0.67 bits per COT.
        assert_eq!(ok.round_bytes(), 176_128);
        let bits_per_cot = ok.round_bytes() as f64 * 8.0 / ok.n as f64;
        assert!((bits_per_cot - 0.672).abs() < 0.001, "{bits_per_cot}");
        let rate = SilentParams {
            big_n: 3 << 20,
            ..ok
        };
        assert!(matches!(rate.check(), Err(ParamError::Rate { .. })));
        // 2^21 / 256 = 2^13 is fine, but 2^20 + 2^19 positions in 256 blocks are not powers of two.
        let odd = SilentParams {
            n: 3 << 18,
            big_n: 3 << 19,
            ..ok
        };
        assert!(matches!(odd.check(), Err(ParamError::Blocks { .. })));
        assert!(matches!(
            SilentParams::for_round(64),
            Err(ParamError::Blocks { .. })
        ));
    }
}
