//! The offline protocol for linear layers: the client sends Enc(r) under its BFV key, the
//! server returns Enc(M r - s) and keeps s. M is any 3-D convolution (kernel, stride,
//! dilation, padding; dense or depthwise), which covers fully connected layers (1x1x1 over a
//! 1x1x1 volume) and average pools (depthwise with constant weights).
//!
//! Packing is by coefficients (as in Cheetah): a tile of C_t input channels is one
//! polynomial, the kernels of M_o output channels another, and their product holds the
//! tile's convolution outputs at known coefficients. No rotations, hence no Galois keys.

#[cfg(feature = "cuda")]
pub mod gpu;
pub mod online;
pub mod packing;
pub mod protocol;

pub use packing::{ConvShape, Packing};
pub use protocol::{client_linear, server_linear, LinearStats};

use crate::he::HeError;
use crate::transport::TransportError;

/// Why a linear-layer run failed.
#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    /// The HE backend failed or the parameters cannot carry the layer.
    #[error(transparent)]
    He(#[from] HeError),
    /// The channel failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The plan's packing does not fit this backend's parameters or noise budget.
    #[error("linear layer: {0}")]
    Packing(#[from] c3d_ir::he_model::HeModelError),
    /// The layer description or an operand does not fit.
    #[error("linear layer: {0}")]
    Shape(String),
}

/// Result of a linear-layer step.
pub type Result<T> = std::result::Result<T, LinearError>;
