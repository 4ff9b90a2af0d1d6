//! What `c3dc compile --json` and `c3dc simulate --json` print: one JSON object each
//! (docs/compiler.md lists the fields), and the ranked classes the text output shows too.

use crate::report::{LayerTime, Phase};
use c3d_ir::{Op, Plan, Protocol};
use serde::Serialize;
use std::collections::BTreeMap;

/// One layer's protocol.
#[derive(Debug, Serialize)]
pub struct LayerProtocol {
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// How it runs.
    pub protocol: Protocol,
}

/// `c3dc compile --json`.
#[derive(Debug, Serialize)]
pub struct CompileSummary {
    /// The model's name, as the plan records it.
    pub model: String,
    /// The ONNX file compiled.
    pub input: String,
    /// The plan written.
    pub plan: String,
    /// Its hash (hex), as `Plan::load` computes it.
    pub plan_hash: String,
    /// Its size.
    pub plan_bytes: u64,
    /// The weights file written.
    pub weights: String,
    /// Its size.
    pub weights_bytes: u64,
    /// Field prime.
    pub p: u64,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Wall time of the whole command, seconds.
    pub seconds: f64,
    /// Wall time per compile phase, in order (their sum is within `seconds`, which also
    /// counts reading options and writing the files).
    pub phases: Vec<Phase>,
    /// Class names (empty when the model and `--labels` give none).
    pub classes: Vec<String>,
    /// Layers per protocol (the protocol names of `layers`).
    pub protocols: BTreeMap<String, usize>,
    /// Every layer in execution order.
    pub layers: Vec<LayerProtocol>,
}

/// The protocol of every layer of a plan, and how many layers each protocol runs.
pub fn protocols(plan: &Plan) -> (BTreeMap<String, usize>, Vec<LayerProtocol>) {
    let mut count = BTreeMap::new();
    let layers: Vec<LayerProtocol> = plan
        .layers
        .iter()
        .map(|l| {
            let n = plan.graph.node(l.node);
            // Protocol's serde names are its variant names (no renames): Debug gives them.
            *count.entry(format!("{:?}", l.protocol)).or_insert(0) += 1;
            LayerProtocol {
                name: n.name.clone(),
                op: n.op.name().into(),
                protocol: l.protocol,
            }
        })
        .collect();
    (count, layers)
}

/// What an output value is: a probability when the model ends in Softmax, a score otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Softmax output.
    Probability,
    /// Anything else (logits, an average of scores).
    Score,
}

impl OutputKind {
    /// The kind of a plan's output.
    pub fn of(plan: &Plan) -> Self {
        let softmax = plan
            .graph
            .io()
            .is_ok_and(|(_, out)| matches!(plan.graph.node(out).op, Op::Softmax { .. }));
        if softmax {
            OutputKind::Probability
        } else {
            OutputKind::Score
        }
    }
}

/// One ranked class. The value's key is `probability` or `score` ([`OutputKind`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// Output index.
    pub index: usize,
    /// Class name, when the plan has names.
    pub label: Option<String>,
    /// The output value.
    pub value: f32,
    /// What the value is.
    pub kind: OutputKind,
}

impl Serialize for Ranked {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("index", &self.index)?;
        m.serialize_entry("label", &self.label)?;
        let key = match self.kind {
            OutputKind::Probability => "probability",
            OutputKind::Score => "score",
        };
        m.serialize_entry(key, &self.value)?;
        m.end()
    }
}

/// The `k` largest outputs, largest first (ties by index).
pub fn top(plan: &Plan, output: &[f32], k: usize) -> Vec<Ranked> {
    let kind = OutputKind::of(plan);
    let mut idx: Vec<usize> = (0..output.len()).collect();
    idx.sort_by(|&a, &b| output[b].total_cmp(&output[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| Ranked {
            index: i,
            label: plan.meta.class_names.get(i).cloned(),
            value: output[i],
            kind,
        })
        .collect()
}

/// The float reference's agreement with the fixed-point simulation.
#[derive(Debug, Serialize)]
pub struct ReferenceComparison {
    /// The ONNX file run in float.
    pub model: String,
    /// Seconds of tract's run (load and optimisation excluded).
    pub seconds: f64,
    /// Seconds to load and optimise the model.
    pub load_seconds: f64,
    /// Largest |float - fixed| over the outputs.
    pub max_abs_diff: f32,
    /// Whether both rank the same class first.
    pub top1_agrees: bool,
    /// The float reference's ranked classes.
    pub top: Vec<Ranked>,
    /// The float reference's output.
    pub output: Vec<f32>,
}

/// `c3dc simulate --json`.
#[derive(Debug, Serialize)]
pub struct SimulateSummary {
    /// Model name.
    pub model: String,
    /// The plan simulated.
    pub plan: String,
    /// Its hash (hex).
    pub plan_hash: String,
    /// What the output values are.
    pub output_kind: OutputKind,
    /// The largest outputs (`--top`), largest first.
    pub top: Vec<Ranked>,
    /// The whole output, in order.
    pub output: Vec<f32>,
    /// Seconds of the simulation.
    pub seconds: f64,
    /// Seconds per layer, in execution order.
    pub layers: Vec<LayerTime>,
    /// With `--reference`: the comparison.
    pub reference: Option<ReferenceComparison>,
}

/// Index of the largest value (the first of equals).
pub fn argmax(v: &[f32]) -> usize {
    let mut b = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[b] {
            b = i;
        }
    }
    b
}
