//! Graph passes of the compiler, one per module, each with its own tests: BatchNorm folding
//! ([`fold`]), the e-graph rewrites ([`rewrite`]), separable max-pools ([`separable`]),
//! calibration ([`calibrate`]), the protocol choice ([`protocol`]), the range analysis that
//! chooses the field and fixed-point scales ([`quantize`]), the HE packing choice
//! ([`packing`]) and pruning ([`prune`]), all weighed with the cost model ([`cost`]).

#![forbid(unsafe_code)]

pub mod calibrate;
pub mod cost;
pub mod fold;
pub mod packing;
pub mod protocol;
pub mod prune;
pub mod quantize;
pub mod rewrite;
pub mod separable;

pub use quantize::{quantize, QuantConfig, QuantError, Quantized};
