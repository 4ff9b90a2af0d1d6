//! Framed, length-checked messages over a byte stream (TCP or TLS between the parties; a Unix
//! socket pair in tests). Counts bytes each way per protocol step, enforces an idle time-out
//! per read and write and an overall deadline (per phase), refuses oversize or malformed
//! frames before allocating, and streams large vectors in bounded chunks so neither side holds
//! a whole layer's payload at once.
//!
//! Frame: payload length (u32, little endian) | tag (u8) | payload.
//!
//! The deadline lives in the socket layer ([`Timed`]), below TLS: every read or write system
//! call waits at most until the deadline, so a peer that trickles a byte at a time cannot hold
//! a session past it.

mod channel;
mod error;
mod metered;
mod timed;

pub use channel::{Channel, Pipe, StepStats, DEFAULT_MAX_FRAME, STREAM_CHUNK};
pub use error::{sanitize, AbortCode, Result, TransportError};
pub use metered::{Meter, Metered};
pub use timed::{Socket, Stream, Timed};
