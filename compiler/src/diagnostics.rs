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

/// Renders a diagnostic with the causes its message does not already quote: the compiler's
/// errors name their cause in their own message, so miette's chain would repeat it.
struct Handler(miette::MietteHandler);

impl miette::ReportHandler for Handler {
    fn debug(&self, d: &dyn Diagnostic, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.debug(d, f)?;
        let mut shown = d.to_string();
        let mut cause = d.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !shown.contains(&text) {
                writeln!(f, "  caused by: {text}")?;
                shown.push_str(&text);
            }
            cause = c.source();
        }
        Ok(())
    }
}

/// Makes miette render every later report so, each cause once (for the binaries).
pub fn install_report_handler() {
    // Fails only when a hook is already set, which then stays.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(Handler(
            miette::MietteHandlerOpts::new()
                .without_cause_chain()
                .build(),
        ))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use miette::ReportHandler;

    #[derive(Debug, Error)]
    #[error("the inner cause")]
    struct Inner;

    #[derive(Debug, Error, Diagnostic)]
    #[error("outer: {0}")]
    struct Quotes(#[source] Inner);

    #[derive(Debug, Error, Diagnostic)]
    #[error("outer")]
    struct Silent(#[source] Inner);

    fn render(d: &dyn Diagnostic) -> String {
        struct Shown<'a>(&'a dyn Diagnostic);
        impl std::fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let opts = miette::MietteHandlerOpts::new().without_cause_chain();
                Handler(opts.color(false).build()).debug(self.0, f)
            }
        }
        format!("{:?}", Shown(d))
    }

    #[test]
    fn a_cause_is_shown_once_whether_or_not_the_message_quotes_it() {
        assert_eq!(render(&Quotes(Inner)).matches("the inner cause").count(), 1);
        let silent = render(&Silent(Inner));
        assert!(silent.contains("caused by: the inner cause"), "{silent}");
    }
}
