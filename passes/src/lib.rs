//! Graph passes of the compiler: BatchNorm folding, calibration, and the range analysis that
//! chooses the field and fixed-point scales. Each pass is a module with its own tests.

pub mod calibrate;
pub mod cost;
pub mod fold;
pub mod packing;
pub mod prune;
pub mod quantize;
pub mod rewrite;
pub mod separable;

pub use quantize::{quantize, QuantConfig, QuantError, Quantized};
