//! The c3dc compiler: ONNX frontend, compile pipeline, plan inspection and its plots, the
//! CLI's JSON summaries, and helpers for .npy tensors and tract's float reference.

#![forbid(unsafe_code)]

pub mod compile;
pub mod const_fold;
pub mod diagnostics;
pub mod inspect;
pub mod name;
pub mod npy;
pub mod onnx;
pub mod plot;
pub mod report;
pub mod summary;
pub mod tract_ref;

pub use compile::{compile, CompileError, CompileOptions, Compiled};
pub use onnx::{import_file, supported_ops, ImportOptions};
