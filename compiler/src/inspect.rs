//! `c3dc inspect`: the per-layer table of a plan.

use c3d_ir::{Plan, Protocol};
use serde::Serialize;

/// One row of the inspection table.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Node name.
    pub name: String,
    /// Op name.
    pub op: String,
    /// Input shapes.
    pub inputs: Vec<String>,
    /// Output shape.
    pub output: String,
    /// Plaintext multiply-adds.
    pub macs: u64,
    /// Two-input comparisons.
    pub comparisons: u64,
    /// Protocol.
    pub protocol: Protocol,
    /// Input scales (fractional bits).
    pub in_scales: Vec<u32>,
    /// Output scale.
    pub out_scale: u32,
    /// Weight bits.
    pub weight_bits: u32,
    /// Truncated bits.
    pub truncate_bits: u32,
    /// Headroom to wrapping, bits.
    pub headroom_bits: f64,
}

/// The table and its totals.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Model name.
    pub model: String,
    /// Field prime.
    pub p: u64,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Plan hash (hex).
    pub plan_hash: String,
    /// Passes that ran.
    pub passes: Vec<String>,
    /// Rows in execution order.
    pub layers: Vec<Row>,
    /// Total multiply-adds.
    pub total_macs: u64,
    /// Total comparisons.
    pub total_comparisons: u64,
    /// Number of weights.
    pub total_weights: u64,
}

/// Builds the inspection of a plan.
pub fn inspect(plan: &Plan, hash: &[u8; 32]) -> Inspection {
    let g = &plan.graph;
    let mut rows = Vec::new();
    let (mut macs, mut cmps, mut weights) = (0, 0, 0);
    for l in &plan.layers {
        let n = g.node(l.node);
        let ins = g.inputs_of(l.node);
        let shapes: Vec<&c3d_ir::Shape> = ins.iter().map(|&i| &g.node(i).shape).collect();
        let m = n.op.macs(&shapes, &n.shape);
        let c = n.op.comparisons(&shapes, &n.shape);
        macs += m;
        cmps += c;
        if let Some((w, b)) = n.op.weight_shapes() {
            weights += (w.numel() + b.numel()) as u64;
        }
        rows.push(Row {
            name: n.name.clone(),
            op: n.op.name().into(),
            inputs: shapes.iter().map(|s| s.to_string()).collect(),
            output: n.shape.to_string(),
            macs: m,
            comparisons: c,
            protocol: l.protocol,
            in_scales: l.quant.in_scales.clone(),
            out_scale: l.quant.out_scale,
            weight_bits: l.quant.weight_bits,
            truncate_bits: l.quant.truncate_bits,
            headroom_bits: l.quant.headroom_bits,
        });
    }
    Inspection {
        model: plan.meta.name.clone(),
        p: plan.fixed.p,
        frac_bits: plan.fixed.frac_bits,
        plan_hash: c3d_ir::format::hex(hash),
        passes: plan
            .passes
            .iter()
            .map(|p| format!("{}: {}", p.name, p.detail))
            .collect(),
        layers: rows,
        total_macs: macs,
        total_comparisons: cmps,
        total_weights: weights,
    }
}

fn human(n: u64) -> String {
    match n {
        0 => "-".into(),
        n if n >= 1_000_000_000 => format!("{:.2}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Renders the inspection as a text table.
pub fn render(ins: &Inspection) -> String {
    let mut s = format!(
        "model {}  p = {} ({} bits)  f = {}  plan {}\n",
        ins.model,
        ins.p,
        64 - ins.p.leading_zeros(),
        ins.frac_bits,
        &ins.plan_hash[..16]
    );
    for p in &ins.passes {
        s += &format!("  pass {p}\n");
    }
    let name_w = ins
        .layers
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    s += &format!(
        "{:>3}  {:name_w$}  {:9}  {:>16}  {:>16}  {:>8}  {:>8}  {:14}  {:>9}  {:>8}\n",
        "#", "name", "op", "input", "output", "MACs", "cmps", "protocol", "scale", "headroom"
    );
    for (i, r) in ins.layers.iter().enumerate() {
        let name: String = if r.name.len() > name_w {
            format!("…{}", &r.name[r.name.len() - (name_w - 1)..])
        } else {
            r.name.clone()
        };
        let scale = if r.truncate_bits > 0 {
            format!("{}>>{}", r.in_scales[0], r.truncate_bits)
        } else if r.weight_bits > 0 {
            format!(
                "{}+{}",
                r.in_scales.first().copied().unwrap_or(0),
                r.weight_bits
            )
        } else {
            r.out_scale.to_string()
        };
        let head = if r.protocol == Protocol::Client {
            "-".to_string()
        } else {
            format!("{:.1}", r.headroom_bits)
        };
        s += &format!(
            "{:>3}  {:name_w$}  {:9}  {:>16}  {:>16}  {:>8}  {:>8}  {:14}  {:>9}  {:>8}\n",
            i,
            name,
            r.op,
            r.inputs.first().cloned().unwrap_or_default(),
            r.output,
            human(r.macs),
            human(r.comparisons),
            format!("{:?}", r.protocol),
            scale,
            head
        );
    }
    s += &format!(
        "total: {} layers, {} multiply-adds, {} comparisons, {} weights\n",
        ins.layers.len(),
        human(ins.total_macs),
        human(ins.total_comparisons),
        human(ins.total_weights)
    );
    s
}
