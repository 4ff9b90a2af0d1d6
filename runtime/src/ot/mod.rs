//! Oblivious transfer: the "simplest OT" of Chou and Orlandi over Ristretto for 128 base
//! transfers, and IKNP extension on top of them for as many as the protocol needs, in
//! chosen-message and random modes. 128-bit labels, 128-bit computational security. The parts
//! of silent OT built so far (issue 16): the GGM punctured PRF that gives single-point COTs
//! (`ggm_pprf`), t of them as regular-noise multi-point COT (`mpcot_regular`), the
//! Expand-Convolute code that compresses the noisy vector (`exconv`), the dual-LPN parameter
//! rule (`lpn_params`) and the rounds between the parties (`silent_cot`); what comparisons
//! derive from COTs (`cot`), 1-out-of-2^m OT from m of them (`one_of_n`), and the session's
//! supply of COTs, prepared offline and expanded as consumed (`cot_pool`).

pub mod base;
pub mod cot;
pub mod cot_pool;
pub mod exconv;
pub mod ggm_pprf;
pub mod iknp;
pub mod lpn_params;
pub mod mpcot_regular;
pub mod one_of_n;
pub mod silent_cot;
pub mod transpose;

use crate::transport::TransportError;

/// Why an OT run failed.
#[derive(Debug, thiserror::Error)]
pub enum OtError {
    /// The channel failed or the peer sent a frame of the wrong kind or size.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer sent a value that is not a valid group element.
    #[error("the peer sent an invalid curve point ({0})")]
    BadPoint(&'static str),
    /// The peer's message does not match what this step calls for.
    #[error("malformed OT message: {0}")]
    Malformed(String),
    /// More COTs were asked for than the session prepared (a bug in the count, not the
    /// peer's doing).
    #[error("{wanted} COTs asked for, {left} left of those prepared offline")]
    Exhausted {
        /// COTs asked for.
        wanted: usize,
        /// COTs left.
        left: u64,
    },
}

/// Result of an OT step.
pub type Result<T> = std::result::Result<T, OtError>;

/// Number of base OTs, the security parameter of the extension.
pub const KAPPA: usize = 128;

pub use iknp::{OtReceiver, OtSender};
