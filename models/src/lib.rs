//! Generators of architecture-faithful ONNX models: C3D, I3D and their scaled variants, plus
//! micro models in PyTorch's export idioms for the frontend's tests. Weights are seeded
//! He-initialised; nothing is downloaded.

#![forbid(unsafe_code)]

pub mod c3d;
pub mod fixtures;
pub mod i3d;
pub mod motion;
pub mod onnx_builder;
pub mod slr;
pub mod train;
pub mod weights;

use tract_onnx::pb::ModelProto;

/// Architecture family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// C3D.
    C3d,
    /// I3D.
    I3d,
}

/// A named model variant.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Name used on the command line.
    pub name: &'static str,
    /// Family.
    pub family: Family,
    /// Channel divisor relative to the paper.
    pub width_div: usize,
    /// Input frames.
    pub frames: usize,
    /// Input height and width.
    pub size: usize,
    /// Default number of classes.
    pub classes: usize,
    /// Pools round up (keeps the tiny variant's last pool defined at 8 frames).
    pub ceil_pools: bool,
}

/// All variants `c3d-models export` knows.
pub fn variants() -> Vec<Variant> {
    let v = |name, family, width_div, frames, size, classes, ceil_pools| Variant {
        name,
        family,
        width_div,
        frames,
        size,
        classes,
        ceil_pools,
    };
    vec![
        v("c3d", Family::C3d, 1, 16, 112, 487, false),
        v("c3d-small", Family::C3d, 4, 16, 56, 487, false),
        v("c3d-tiny", Family::C3d, 16, 8, 32, 487, true),
        v("i3d", Family::I3d, 1, 64, 224, 400, false),
        v("i3d-tiny", Family::I3d, 8, 8, 64, 400, false),
    ]
}

/// Looks a variant up by name.
pub fn variant(name: &str) -> Option<Variant> {
    variants().into_iter().find(|v| v.name == name)
}

/// Builds a variant, optionally with another class count or frame count.
pub fn build(v: &Variant, classes: Option<usize>, frames: Option<usize>, seed: u64) -> ModelProto {
    let mut v = v.clone();
    if let Some(f) = frames {
        v.frames = f;
    }
    let classes = classes.unwrap_or(v.classes);
    match v.family {
        Family::C3d => c3d::build(&v, classes, seed),
        Family::I3d => i3d::build(&v, classes, seed),
    }
}

/// Output length of a pooling window (PyTorch's rule).
pub fn pool_len(len: usize, k: usize, s: usize, pad: usize, ceil: bool) -> usize {
    let num = (len + 2 * pad) as i64 - k as i64;
    let s = s as i64;
    let mut out = if ceil {
        (num + s - 1).div_euclid(s) + 1
    } else {
        num.div_euclid(s) + 1
    };
    if ceil && out > 0 && (out - 1) * s >= (len + pad) as i64 {
        out -= 1;
    }
    out.max(0) as usize
}
