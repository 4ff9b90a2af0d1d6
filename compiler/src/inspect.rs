//! `c3dc inspect`: the per-layer table of a plan.

use c3d_ir::op::OpClass;
use c3d_ir::{NetworkModel, Plan, Protocol, Weights};
use c3d_passes::cost::{nonlinear_cost, plan_cost, LayerCost};
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
    /// Fractional bits of the weights (the plan's `weight_frac_bits`; the JSON keeps this name).
    pub weight_bits: u32,
    /// Truncated bits.
    pub truncate_bits: u32,
    /// Headroom to wrapping, whole bits (rounded down, as the plan records it).
    pub headroom_bits: u32,
    /// Fraction of zero weights (pruned layers).
    pub sparsity: Option<f64>,
    /// What the protocol spends on the layer (cost model).
    pub cost: LayerCost,
    /// For a comparison layer, what each exact protocol would spend on it, and the estimated
    /// seconds on the plan's network (empty for other layers).
    pub choices: Vec<Choice>,
    /// For an HE linear layer, the packing the plan records and the slot packings estimated
    /// beside it (empty for other layers).
    pub packings: Vec<HeChoice>,
}

/// One HE packing's estimated cost for a linear layer.
#[derive(Debug, Serialize)]
pub struct HeChoice {
    /// `coefficient`, `diagonal` or `gazelle`.
    pub encoding: String,
    /// The cut: tile, input channels per polynomial and output channels per product (the
    /// coefficient packing), empty for the slot packings.
    pub detail: String,
    /// Plaintext products.
    pub products: u64,
    /// Rotations (key switches).
    pub rotations: u64,
    /// Galois keys the client would send, and their bytes.
    pub galois_keys: u64,
    /// Bytes of those keys.
    pub galois_key_bytes: u64,
    /// Ciphertexts the client sends.
    pub cts_in: u64,
    /// Ciphertexts the server returns.
    pub cts_out: u64,
    /// Estimated seconds on the cost model's reference machine (2 cores), both parties.
    pub seconds: f64,
    /// Ciphertext modulus bits the session's flooding needs, and what the parameters have.
    pub modulus_needed: u32,
    /// Ciphertext modulus bits of the parameters.
    pub modulus_have: u32,
    /// Whether the plan uses it.
    pub chosen: bool,
}

/// The plan's packing of an HE layer and the slot packings beside it.
fn he_choices(plan: &Plan, l: &c3d_ir::NodePlan, replies: u64) -> Vec<HeChoice> {
    use c3d_ir::he_model::{FloodBudget, HeModel};
    use c3d_ir::he_slots as slots;
    use c3d_ir::packing::ConvShape;
    let (Some(pk), Ok(s)) = (&l.packing, ConvShape::of_node(&plan.graph, l.node)) else {
        return Vec::new();
    };
    let he = HeModel::for_prime(plan.fixed.p);
    let budget = FloodBudget::new(replies.max(1));
    let t_bits = 64 - plan.fixed.p.leading_zeros();
    let need = pk
        .check(&s, &he, l.quant.weight_mag_bits, &budget)
        .map_or(u32::MAX, |f| f + t_bits + 3);
    let mut v = vec![HeChoice {
        encoding: "coefficient".into(),
        detail: format!("{:?} x {} x {}", pk.tile, pk.c_t, pk.m_o),
        products: pk.products(&s) as u64,
        rotations: 0,
        galois_keys: 0,
        galois_key_bytes: 0,
        cts_in: pk.cts_in(&s) as u64,
        cts_out: pk.cts_out(&s) as u64,
        seconds: pk.cost(&s),
        modulus_needed: need,
        modulus_have: he.modulus_bits,
        chosen: true,
    }];
    for e in slots::slot_estimates(&s, plan.fixed.p, &budget) {
        v.push(HeChoice {
            encoding: match e.kind {
                slots::SlotKind::Diagonal => "diagonal",
                slots::SlotKind::Gazelle => "gazelle",
            }
            .into(),
            detail: String::new(),
            products: e.products as u64,
            rotations: e.rotations as u64,
            galois_keys: e.galois_keys as u64,
            galois_key_bytes: e.key_bytes,
            cts_in: e.cts_in as u64,
            cts_out: e.cts_out as u64,
            seconds: e.seconds,
            modulus_needed: e.modulus_needed,
            modulus_have: e.modulus_have,
            chosen: false,
        });
    }
    v
}

/// One exact comparison protocol's cost for a layer.
#[derive(Debug, Serialize)]
pub struct Choice {
    /// The protocol.
    pub protocol: Protocol,
    /// Bytes both ways, offline and online.
    pub bytes: u64,
    /// Messages online that wait for the peer.
    pub flights: u64,
    /// Estimated seconds on the plan's network (bytes, round trips, compute).
    pub seconds: f64,
    /// Whether OT comparisons can run the layer exactly (always true for garbled circuits).
    pub runs: bool,
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
    /// Number of outputs (classes).
    pub outputs: usize,
    /// Class names, one per output (empty when the plan has none).
    pub classes: Vec<String>,
    /// Passes that ran.
    pub passes: Vec<String>,
    /// The network the comparison protocols were chosen for.
    pub network: NetworkModel,
    /// Rows in execution order.
    pub layers: Vec<Row>,
    /// Total multiply-adds.
    pub total_macs: u64,
    /// Total comparisons.
    pub total_comparisons: u64,
    /// Number of weights.
    pub total_weights: u64,
    /// Whether zero weights were counted (the weights file was read).
    pub sparse_counted: bool,
    /// The cost model's total.
    pub total_cost: LayerCost,
    /// HE replies the server floods in one session (R).
    pub he_replies: u64,
    /// log2 of the bound on the statistical distance of a session's flooded replies from
    /// noise independent of the weights (None without HE layers).
    pub he_distance_log2: Option<f64>,
}

/// Builds the inspection of a plan.
pub fn inspect(plan: &Plan, hash: &[u8; 32], weights: Option<&Weights>) -> Inspection {
    let g = &plan.graph;
    let costs = plan_cost(plan, weights);
    let mut rows = Vec::new();
    let (mut macs, mut cmps, mut nweights) = (0, 0, 0);
    for (l, (_, cost)) in plan.layers.iter().zip(costs.layers) {
        let n = g.node(l.node);
        let ins = g.inputs_of(l.node);
        let shapes: Vec<&c3d_ir::Shape> = ins.iter().map(|&i| &g.node(i).shape).collect();
        let m = n.op.macs(&shapes, &n.shape);
        let c = n.op.comparisons(&shapes, &n.shape);
        macs += m;
        cmps += c;
        if let Some((w, b)) = n.op.weight_shapes() {
            nweights += (w.numel() + b.numel()) as u64;
        }
        let choices = if n.op.class() == OpClass::NonLinear && l.protocol != Protocol::BeaverSquare
        {
            [Protocol::GarbledCircuit, Protocol::OtComparison]
                .into_iter()
                .map(|p| {
                    let c = nonlinear_cost(
                        &n.op,
                        &shapes,
                        &n.shape,
                        p,
                        plan.fixed.p,
                        l.quant.truncate_bits,
                    );
                    Choice {
                        protocol: p,
                        bytes: c.bytes_offline() + c.bytes_online(),
                        flights: c.flights,
                        seconds: c.seconds(&plan.network),
                        runs: p == Protocol::GarbledCircuit
                            || c3d_ir::ot_comparable(plan, l.node).is_ok(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let packings = if l.protocol == Protocol::HeLinear {
            he_choices(plan, l, costs.he_replies)
        } else {
            Vec::new()
        };
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
            weight_bits: l.quant.weight_frac_bits,
            truncate_bits: l.quant.truncate_bits,
            headroom_bits: l.quant.headroom_bits,
            sparsity: l.sparsity,
            cost,
            choices,
            packings,
        });
    }
    Inspection {
        model: plan.meta.name.clone(),
        p: plan.fixed.p,
        frac_bits: plan.fixed.frac_bits,
        plan_hash: c3d_ir::format::hex(hash),
        outputs: g.io().map_or(0, |(_, out)| g.node(out).shape.numel()),
        classes: plan.meta.class_names.clone(),
        passes: plan
            .passes
            .iter()
            .map(|p| format!("{}: {}", p.name, p.detail))
            .collect(),
        network: plan.network,
        layers: rows,
        total_macs: macs,
        total_comparisons: cmps,
        total_weights: nweights,
        sparse_counted: weights.is_some(),
        total_cost: costs.total,
        he_replies: costs.he_replies,
        he_distance_log2: costs.he_distance_log2,
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
    s += &classes_line(ins);
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
        "{:>3}  {:name_w$}  {:13}  {:>16}  {:>16}  {:>8}  {:>8}  {:14}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}  {:>6}\n",
        "#", "name", "op", "input", "output", "MACs", "cmps", "protocol", "scale", "headroom",
        "HE prod", "ANDs", "off MB", "on MB", "zeros"
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
            r.headroom_bits.to_string()
        };
        let c = &r.cost;
        let mb = |b: u64| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", b as f64 / 1e6)
            }
        };
        let zeros = r
            .sparsity
            .map_or("-".to_string(), |z| format!("{:.0}%", z * 100.0));
        s += &format!(
            "{:>3}  {:name_w$}  {:13}  {:>16}  {:>16}  {:>8}  {:>8}  {:14}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}  {:>6}\n",
            i,
            name,
            r.op,
            r.inputs.first().cloned().unwrap_or_default(),
            r.output,
            human(r.macs),
            human(r.comparisons),
            format!("{:?}", r.protocol),
            scale,
            head,
            human(c.he_products),
            human(c.and_gates),
            mb(c.bytes_offline()),
            mb(c.bytes_online()),
            zeros
        );
    }
    s += &format!(
        "total: {} layers, {} multiply-adds, {} comparisons, {} weights\n",
        ins.layers.len(),
        human(ins.total_macs),
        human(ins.total_comparisons),
        human(ins.total_weights)
    );
    let t = &ins.total_cost;
    s += &format!(
        "cost model: offline {} HE products ({} dense) and {} ciphertexts, {} AND gates, {:.1} MB; \
         online {} multiply-adds, {:.1} MB{}\n",
        human(t.he_products),
        human(t.he_products_dense),
        human(t.he_cts_in + t.he_cts_out),
        human(t.and_gates),
        t.bytes_offline() as f64 / 1e6,
        human(t.online_macs),
        t.bytes_online() as f64 / 1e6,
        if ins.sparse_counted {
            ""
        } else {
            " (no weights file: layers counted dense)"
        }
    );
    let rows: Vec<&Row> = ins
        .layers
        .iter()
        .filter(|r| !r.choices.is_empty())
        .collect();
    if !rows.is_empty() {
        let n = &ins.network;
        s += &format!(
            "comparison protocols (--nonlinear {:?}, estimated for {} Mbit/s and {} ms RTT):\n",
            n.nonlinear, n.bandwidth_mbit, n.rtt_ms
        );
        s += &format!(
            "  {:name_w$}  {:>10}  {:>9}  {:>10}  {:>9}  {:>7}  chosen\n",
            "name", "GC MB", "GC s", "OT MB", "OT s", "OT/GC"
        );
        for r in rows {
            let (g, o) = (&r.choices[0], &r.choices[1]);
            let ot_s = if o.runs {
                format!("{:.2}", o.seconds)
            } else {
                "cannot".to_string()
            };
            s += &format!(
                "  {:name_w$}  {:>10.2}  {:>9.2}  {:>10.2}  {:>9}  {:>7.3}  {:?}\n",
                r.name,
                g.bytes as f64 / 1e6,
                g.seconds,
                o.bytes as f64 / 1e6,
                ot_s,
                o.bytes as f64 / g.bytes.max(1) as f64,
                r.protocol
            );
        }
    }
    let he_rows: Vec<&Row> = ins
        .layers
        .iter()
        .filter(|r| !r.packings.is_empty())
        .collect();
    if !he_rows.is_empty() {
        s += "HE packings (estimated seconds on the cost model's 2-core machine, both parties; \
              modulus bits the session's flooding needs / has):\n";
        s += &format!(
            "  {:name_w$}  {:11}  {:>9}  {:>9}  {:>6}  {:>8}  {:>6}  {:>6}  {:>8}  {:>9}  {}\n",
            "name",
            "encoding",
            "products",
            "rotations",
            "keys",
            "keys MB",
            "in",
            "out",
            "s",
            "modulus",
            "cut"
        );
        for r in he_rows {
            for c in &r.packings {
                let fits = c.modulus_needed <= c.modulus_have;
                s += &format!(
                    "  {:name_w$}  {:11}  {:>9}  {:>9}  {:>6}  {:>8.1}  {:>6}  {:>6}  {:>8.2}  {:>9}  {}\n",
                    r.name,
                    c.encoding,
                    human(c.products),
                    human(c.rotations),
                    c.galois_keys,
                    c.galois_key_bytes as f64 / 1e6,
                    c.cts_in,
                    c.cts_out,
                    c.seconds,
                    format!("{}/{}", c.modulus_needed, c.modulus_have),
                    if c.chosen {
                        format!("{} (chosen)", c.detail)
                    } else if fits {
                        "fits, costs more".to_string()
                    } else {
                        "flooding does not fit".to_string()
                    }
                );
            }
        }
    }
    if let Some(d) = ins.he_distance_log2 {
        s += &format!(
            "circuit privacy: {} flooded HE replies per session, statistical distance <= 2^{:.1} \
             over the whole session\n",
            ins.he_replies, d
        );
    }
    s
}

/// How many classes and, when named, the first few names.
fn classes_line(ins: &Inspection) -> String {
    const SHOWN: usize = 8;
    if ins.classes.is_empty() {
        return format!("classes: {} outputs, unnamed\n", ins.outputs);
    }
    let mut names = ins.classes[..ins.classes.len().min(SHOWN)].join(", ");
    if ins.classes.len() > SHOWN {
        names += &format!(", ... ({} more)", ins.classes.len() - SHOWN);
    }
    format!("classes: {} ({names})\n", ins.classes.len())
}

/// The per-layer cost as an SVG chart: bytes offline, bytes online and the cost model's
/// estimated seconds on the plan's network (bytes at the bandwidth, half a round trip per
/// flight, AND gates and COTs at the reference rates; HE compute is not in the model), one
/// bar group per layer in execution order, coloured by protocol.
pub fn svg(ins: &Inspection) -> String {
    use crate::plot::{protocol_colour, svg as draw, Chart, Group, Panel, Segment};
    let colour = |p: Protocol| protocol_colour(&format!("{p:?}")).to_string();
    let groups = ins
        .layers
        .iter()
        .map(|r| {
            let bar = |v: f64| {
                vec![Segment {
                    value: v,
                    fill: colour(r.protocol),
                }]
            };
            Group {
                label: r.name.clone(),
                bars: vec![
                    bar(r.cost.bytes_offline() as f64 / 1e6),
                    bar(r.cost.bytes_online() as f64 / 1e6),
                    bar(r.cost.seconds(&ins.network)),
                ],
            }
        })
        .collect();
    let legend = Protocol::ALL
        .iter()
        .filter(|p| ins.layers.iter().any(|r| r.protocol == **p))
        .map(|p| (format!("{p:?}"), colour(*p)))
        .collect();
    let t = &ins.total_cost;
    let n = &ins.network;
    draw(&Chart {
        title: format!(
            "{}: per-layer cost model, plan {}",
            ins.model,
            &ins.plan_hash[..16.min(ins.plan_hash.len())]
        ),
        panels: vec![
            Panel {
                axis: "MB offline (both ways)".into(),
            },
            Panel {
                axis: "MB online (both ways)".into(),
            },
            Panel {
                axis: format!(
                    "estimated s ({} Mbit/s, {} ms RTT)",
                    n.bandwidth_mbit, n.rtt_ms
                ),
            },
        ],
        groups,
        legend,
        notes: vec![format!(
            "total: {:.1} MB offline, {:.1} MB online, {} HE products, {} AND gates, {} COTs{}",
            t.bytes_offline() as f64 / 1e6,
            t.bytes_online() as f64 / 1e6,
            human(t.he_products),
            human(t.and_gates),
            human(t.ot_cots),
            if ins.sparse_counted {
                ""
            } else {
                " (no weights file: layers counted dense)"
            }
        )],
    })
}
