//! The two-party runtime's building blocks, free of model knowledge: field arithmetic, the
//! framed transport and garbled circuits so far; OT, BFV and Beaver triples come next.

pub mod field;
pub mod gc;
pub mod he;
pub mod linear;
pub mod ot;
pub mod transport;
