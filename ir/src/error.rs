//! Errors of the IR crate.

use thiserror::Error;

/// Everything that can go wrong while building, checking or reading IR objects.
#[derive(Debug, Error)]
pub enum IrError {
    /// An op was given inputs whose shapes it cannot take.
    #[error("node `{node}` ({op}): {source}")]
    Shape {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What is wrong.
        source: crate::op::ShapeError,
    },
    /// The graph's structure is invalid (cycle, dangling edge, bad arity).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A plan or weights file could not be read.
    #[error("{what}: {msg}")]
    Format {
        /// Which file kind (plan, weights).
        what: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// Weights do not match the graph.
    #[error("weights: {0}")]
    Weights(String),
    /// An input tensor does not fit the plan.
    #[error("input: {0}")]
    Input(String),
    /// I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Result alias for the IR crate.
pub type Result<T> = std::result::Result<T, IrError>;
