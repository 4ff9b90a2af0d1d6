//! Reading a node's attributes by name; an absent attribute is `None`, so each op states
//! its own ONNX default.

use tract_onnx::pb::{AttributeProto, NodeProto};

/// The attribute `name` of `n`.
pub(super) fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// An integer attribute.
pub(super) fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

/// An integer-list attribute.
pub(super) fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// A float attribute.
pub(super) fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}

/// A string attribute (lossy UTF-8).
pub(super) fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).to_string())
}
