//! The OT-based protocol for non-linear layers (issue 16), beside the garbled circuits of
//! [`crate::gc`]: building blocks over correlated OT ([`crate::ot::cot`]) in the manner of
//! CrypTFlow2 (Rathee et al., CCS 2020) and Cheetah (Huang et al., USENIX Security 2022).
//! Crypto cores, no IO. Built so far: Beaver bit triples from two random OTs, AND gates on them,
//! boolean-to-arithmetic conversion into F_p, and the millionaire's comparison.

pub mod and_gates;
pub mod b2a;
pub mod bit_triples;
pub mod millionaire;
