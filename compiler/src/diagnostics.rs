//! Errors of the compiler, as miette diagnostics that name the node, its op and its inputs.

use miette::Diagnostic;
use thiserror::Error;
use tract_onnx::prelude::{DatumType, TractError};

/// Why an ONNX tensor could not be read as a constant.
#[derive(Debug, Error)]
pub enum TensorError {
    /// tract could not load or cast the tensor (external data, a corrupt buffer).
    #[error("{0:#}")]
    Tract(#[from] TractError),
    /// An element type with no constant counterpart (strings, complex numbers).
    #[error("tensor of type {0:?} is not supported")]
    ElementType(DatumType),
}

/// Why an ONNX model could not be imported.
#[derive(Debug, Error, Diagnostic)]
pub enum ImportError {
    /// The file is not a readable ONNX model.
    #[error("cannot read ONNX model {path}: {msg}")]
    #[diagnostic(code(c3dc::onnx_read))]
    Read {
        /// The file.
        path: String,
        /// Why.
        msg: String,
    },
    /// An initializer that cannot be read as a constant.
    #[error("initializer `{name}`: {source}")]
    #[diagnostic(code(c3dc::model))]
    Initializer {
        /// The initializer's name.
        name: String,
        /// Why.
        source: TensorError,
    },
    /// The model as a whole does not fit (inputs, outputs, shapes).
    #[error("{0}")]
    #[diagnostic(code(c3dc::model))]
    Model(String),
    /// An op (or an op's form) the frontend cannot map.
    #[error("node `{node}` ({op_type}) is not supported: {msg}")]
    #[diagnostic(
        code(c3dc::unsupported_op),
        help("inputs: {inputs}\nsupported ops: {supported}")
    )]
    Unsupported {
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// Its inputs, described.
        inputs: String,
        /// What exactly is unsupported.
        msg: String,
        /// The supported op list.
        supported: String,
    },
    /// A supported op with invalid attributes or inputs.
    #[error("node `{node}` ({op_type}): {msg}")]
    #[diagnostic(code(c3dc::bad_node), help("inputs: {inputs}"))]
    BadNode {
        /// Node name.
        node: String,
        /// ONNX op type.
        op_type: String,
        /// Its inputs, described.
        inputs: String,
        /// What is wrong.
        msg: String,
    },
    /// An IR-level check failed.
    #[error(transparent)]
    #[diagnostic(code(c3dc::ir))]
    Ir(#[from] c3d_ir::IrError),
}
