//! The op registry: each ONNX op type maps to the small functions that import it, one op
//! family per module (tract's `reg.insert("Conv", conv)`). The supported-op list of the
//! diagnostics is read from here, so it cannot drift from what the importer does.

use super::importer::Importer;
use crate::const_fold::ConstTensor;
use crate::diagnostics::ImportError;
use std::collections::HashMap;
use tract_onnx::pb::NodeProto;

/// Evaluates a node whose inputs are all constants.
pub(super) type FoldFn = fn(&Importer, &NodeProto) -> Result<ConstTensor, ImportError>;

/// Maps a node to the IR (or resolves it), defining its outputs.
pub(super) type NodeFn = fn(&mut Importer, &NodeProto) -> Result<(), ImportError>;

/// How one ONNX op is imported.
#[derive(Clone, Copy, Default)]
pub(super) struct OpEntry {
    /// Used when every input is a constant (shape chains, pads, conditions).
    pub(super) fold: Option<FoldFn>,
    /// Used when an input depends on the video.
    pub(super) data: Option<NodeFn>,
    /// Used whatever the inputs (Shape, Constant, If, Dropout, Identity); wins over both.
    pub(super) any: Option<NodeFn>,
    /// The supported form, for the list ("3-D, group 1").
    note: Option<&'static str>,
}

/// ONNX op type -> how to import it, in registration order.
#[derive(Default)]
pub(super) struct OpRegistry {
    entries: Vec<(&'static str, OpEntry)>,
    index: HashMap<&'static str, usize>,
}

impl OpRegistry {
    fn entry(&mut self, op: &'static str) -> &mut OpEntry {
        let k = *self.index.entry(op).or_insert_with(|| {
            self.entries.push((op, OpEntry::default()));
            self.entries.len() - 1
        });
        &mut self.entries[k].1
    }

    /// Registers the evaluation of `op` on constants.
    pub(super) fn fold(&mut self, op: &'static str, f: FoldFn) {
        self.entry(op).fold = Some(f);
    }

    /// Registers the mapping of `op` on video data.
    pub(super) fn data(&mut self, op: &'static str, f: NodeFn) {
        self.entry(op).data = Some(f);
    }

    /// Registers `op` as handled whatever its inputs.
    pub(super) fn any(&mut self, op: &'static str, f: NodeFn) {
        self.entry(op).any = Some(f);
    }

    /// Notes the form of `op` that is supported, shown in the list.
    pub(super) fn note(&mut self, op: &'static str, note: &'static str) {
        self.entry(op).note = Some(note);
    }

    /// How `op` is imported, if it is.
    pub(super) fn get(&self, op: &str) -> Option<&OpEntry> {
        self.index.get(op).map(|&k| &self.entries[k].1)
    }

    /// The registered op types, in registration order.
    #[cfg(test)]
    pub(super) fn ops(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(op, _)| *op)
    }

    /// The supported-op list: each op type, with its note in parentheses.
    pub(super) fn supported(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(op, e)| match e.note {
                Some(note) => format!("{op} ({note})"),
                None => op.to_string(),
            })
            .collect()
    }
}
