//! Garbled circuits: the label types, fixed-key AES hashing, a circuit builder with gadgets,
//! half-gates garbling and evaluation (one copy at a time or many in lockstep), and the
//! protocol's circuits (ReLU and max-pool, with truncation and re-masking).

pub mod circuit;
pub mod halfgates;
pub mod hash;
pub mod label;
pub mod lockstep;
pub mod pool_relu;

pub use circuit::Circuit;
pub use hash::Hasher;
pub use label::{Delta, Label, Tweak};
