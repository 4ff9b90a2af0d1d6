//! The packing geometry lives in the IR (the compiler chooses it, the plan records it); the
//! runtime uses it as is.

pub use c3d_ir::packing::{ConvShape, Packing};
