//! The model's name in the plan (`Plan.meta.name`), which every report and progress line
//! shows: `--name`, else the model's `c3d.model` metadata, else the ONNX graph name unless an
//! exporter wrote its generic default there, else the file stem.

use thiserror::Error;

/// The longest name accepted, in characters: it is printed in tables and titles.
pub const MAX_NAME_CHARS: usize = 128;

/// Graph names exporters write whatever the model is, compared case-insensitively:
/// PyTorch's `torch.onnx.export` (`main_graph` since 1.13 and in the dynamo exporter,
/// `torch_jit` and `torch-jit-export` before), tf2onnx and keras2onnx, MXNet, Paddle2ONNX,
/// and the placeholders of hand-built graphs (onnx.helper examples, onnxruntime tools).
pub const GENERIC_GRAPH_NAMES: &[&str] = &[
    "main_graph",
    "torch_jit",
    "torch-jit-export",
    "torch_jit_export",
    "tf2onnx",
    "keras2onnx",
    "mxnet_converted_model",
    "paddle-onnx",
    "graph",
    "model",
    "onnx_graph",
    "test_graph",
    "test-model",
    "untitled",
    "noname",
];

/// Why a name cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    /// Nothing but white space.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("the name has {0} characters, more than the {MAX_NAME_CHARS} allowed")]
    TooLong(usize),
    /// A control character (a newline, an escape) would break the lines that print it.
    #[error("the name contains the control character {0:?}")]
    Control(char),
}

/// Checks that `name` is printable and of reasonable length; returns it trimmed.
pub fn check(name: &str) -> Result<&str, NameError> {
    let t = name.trim();
    if t.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(NameError::Control(c));
    }
    let n = t.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(NameError::TooLong(n));
    }
    Ok(t)
}

/// Whether a graph name is an exporter's default rather than the model's name.
pub fn is_generic(graph_name: &str) -> bool {
    let t = graph_name.trim();
    t.is_empty()
        || GENERIC_GRAPH_NAMES
            .iter()
            .any(|g| g.eq_ignore_ascii_case(t))
}

/// The name from the model file alone: the `c3d.model` metadata (an error when unusable: the
/// model's author set it on purpose), else a usable non-generic graph name, else the file
/// stem, else `model`.
pub fn from_model(
    metadata: Option<&str>,
    graph_name: &str,
    stem: &str,
) -> Result<String, NameError> {
    if let Some(m) = metadata {
        return check(m).map(str::to_string);
    }
    if !is_generic(graph_name) {
        if let Ok(g) = check(graph_name) {
            return Ok(g.to_string());
        }
    }
    Ok(check(stem).unwrap_or("model").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_defaults_fall_back_to_the_stem() {
        for g in [
            "main_graph",
            "torch_jit",
            "Torch-Jit-Export",
            "tf2onnx",
            "",
            "  ",
        ] {
            assert_eq!(
                from_model(None, g, "r2plus1d").unwrap(),
                "r2plus1d",
                "{g:?}"
            );
        }
        assert_eq!(from_model(None, "x3d_m", "file").unwrap(), "x3d_m");
        // An unprintable graph name is no better than a generic one.
        assert_eq!(from_model(None, "a\nb", "file").unwrap(), "file");
        assert_eq!(from_model(None, "", "").unwrap(), "model");
    }

    #[test]
    fn metadata_wins_and_must_be_usable() {
        assert_eq!(from_model(Some("c3d"), "x3d", "f").unwrap(), "c3d");
        assert_eq!(from_model(Some(" "), "x3d", "f"), Err(NameError::Empty));
    }

    #[test]
    fn check_refuses_empty_control_and_long_names() {
        assert_eq!(check("  ok  "), Ok("ok"));
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("a\u{1b}[2J"), Err(NameError::Control('\u{1b}')));
        let long = "é".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(check(&long), Err(NameError::TooLong(MAX_NAME_CHARS + 1)));
        assert!(check(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }
}
