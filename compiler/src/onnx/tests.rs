//! The registry is the supported list, and an op outside it is refused as before.

use super::op_registry;
use super::*;
use c3d_models::onnx_builder::OnnxBuilder;

/// The list as it was kept by hand before the registry: each entry must still be offered.
const HAND_KEPT_LIST: &[&str] = &[
    "Conv (3-D, group 1)",
    "BatchNormalization",
    "Relu",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Gemm",
    "MatMul (+ Add)",
    "Add",
    "Concat",
    "Pad (constant 0)",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "ReduceMean",
    "Softmax",
    "ArgMax",
    "Dropout",
    "Identity",
    "If (constant condition)",
    "Constant",
    "Shape",
    "Gather",
    "Slice",
    "Cast",
    "ConstantOfShape",
    "Transpose",
    "Sub",
    "Mul",
    "Div",
    "Mod",
    "Max",
    "Min",
    "Equal",
    "Less",
    "Greater",
    "Where",
    "Not",
    "Neg",
    "Range",
];

#[test]
fn every_registered_op_is_in_the_supported_list() {
    let list = supported_ops();
    let names: Vec<&str> = op_registry().ops().collect();
    assert_eq!(list.len(), names.len(), "one entry per op");
    for op in names {
        assert!(
            list.iter()
                .any(|s| s == op || s.starts_with(&format!("{op} ("))),
            "`{op}` missing from {list:?}"
        );
    }
}

#[test]
fn the_supported_list_keeps_every_op_of_the_hand_kept_one() {
    let list = supported_ops();
    for want in HAND_KEPT_LIST {
        assert!(
            list.iter().any(|s| s == want),
            "`{want}` missing from {list:?}"
        );
    }
}

#[test]
fn each_registered_op_has_a_handler() {
    for op in op_registry().ops() {
        let e = op_registry().get(op).expect("registered");
        assert!(
            e.fold.is_some() || e.data.is_some() || e.any.is_some(),
            "{op}"
        );
    }
}

/// A model whose second node is `op` on the Conv's output (or on a constant).
fn model_with(op: &str, on_constant: bool) -> pb::ModelProto {
    let mut b = OnnxBuilder::new();
    let w = b.param("conv.weight", &[2, 3, 1, 1, 1], &[0.1; 6]);
    let y = b.node("Conv", "/conv/Conv", &["input", &w], vec![]);
    let x = if on_constant {
        b.const_i64(&[1], &[1])
    } else {
        y.clone()
    };
    let z = b.node(op, &format!("/act/{op}"), &[&x], vec![]);
    let out = if on_constant { y } else { z };
    b.finish("bad", ("input", &[1, 3, 2, 4, 4]), (&out, &[1, 2, 2, 4, 4]))
}

fn import(m: &pb::ModelProto) -> Result<(Model, FoldCounts), ImportError> {
    import_proto(m, None, "bad", &ImportOptions::default())
}

#[test]
fn an_unsupported_op_on_video_data_is_refused_naming_node_inputs_and_the_list() {
    let Err(ImportError::Unsupported {
        node,
        op_type,
        inputs,
        msg,
        supported,
    }) = import(&model_with("Sigmoid", false))
    else {
        panic!("Sigmoid is not supported");
    };
    assert_eq!(
        (node.as_str(), op_type.as_str(), msg.as_str()),
        (
            "/act/Sigmoid",
            "Sigmoid",
            "this op is not supported on video data"
        )
    );
    assert!(
        inputs.starts_with("/conv/Conv_output_0 (tensor "),
        "{inputs}"
    );
    assert_eq!(supported, supported_ops().join(", "));
    assert!(supported.starts_with("Conv (3-D, group 1), BatchNormalization, "));
}

#[test]
fn an_unsupported_op_on_constants_and_a_fold_only_op_on_video_data_are_refused() {
    let e = import(&model_with("Sigmoid", true)).unwrap_err();
    assert!(
        matches!(&e, ImportError::Unsupported { msg, .. } if msg == "this op is not supported"),
        "{e}"
    );
    let e = import(&model_with("Gather", false)).unwrap_err();
    assert!(
        matches!(&e, ImportError::Unsupported { msg, .. } if msg == "this op is not supported on video data"),
        "{e}"
    );
    // An op that maps video data only is not evaluated on constants.
    let e = import(&model_with("Relu", true)).unwrap_err();
    assert!(
        matches!(&e, ImportError::Unsupported { msg, .. } if msg == "this op is not supported"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "node `/act/Relu` (Relu) is not supported: this op is not supported"
    );
}
