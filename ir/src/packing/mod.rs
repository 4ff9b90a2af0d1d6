//! HE packing of linear layers: the geometry of a 3-D convolution ([`ConvShape`]) and how it
//! is cut into coefficient-encoded plaintexts ([`Packing`]: which input values go to which
//! coefficients, where the kernels sit, where each output lands). Pure arithmetic on public
//! shapes. The noise each cut leaves, and so the choice of cut, is HE knowledge and lives in
//! [`crate::he_model`]; [`crate::he_slots`] estimates the slot (SIMD) packings beside them.

mod encoding;
mod geometry;

pub use encoding::Packing;
pub use geometry::{ConvShape, GeometryError};
