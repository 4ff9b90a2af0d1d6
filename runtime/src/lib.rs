//! The two-party runtime's building blocks, free of model knowledge: field arithmetic and the
//! framed transport so far; OT, garbled circuits, BFV and Beaver triples come next.

pub mod field;
pub mod gc;
pub mod transport;
