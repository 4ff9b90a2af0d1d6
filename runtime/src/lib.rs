//! The two-party runtime's building blocks, free of model knowledge: field arithmetic, the
//! framed transport, oblivious transfer, garbled circuits, BFV homomorphic encryption, the
//! offline linear-layer protocol and Beaver triples; the sessions over a plan, and
//! [`party`], the API that embeds either role in a program.

pub mod beaver;
pub mod bitpack;
pub mod field;
pub mod gc;
pub mod he;
pub mod linear;
pub mod nonlinear;
pub mod ot;
pub mod party;
pub mod service;
pub mod session;
pub mod tls;
pub mod transport;
#[cfg(feature = "video")]
pub mod video;
pub mod wire;

pub use party::{Client, Prediction, Server};
