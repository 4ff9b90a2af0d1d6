//! Garbled circuits: fixed-key AES hashing, a circuit builder with gadgets, half-gates
//! garbling and evaluation, and the protocol's circuits (ReLU with truncation and re-masking,
//! fused max-pool + ReLU).

pub mod circuit;
pub mod halfgates;
pub mod hash;
pub mod relu;

pub use circuit::Circuit;
pub use hash::{Hasher, Label};
