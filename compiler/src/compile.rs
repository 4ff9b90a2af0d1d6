//! The compile pipeline, in this fixed order: import, fold (BatchNorm, Dropout, constants),
//! rewrite (egg: ReLU/max-pool fusion, pad folding), calibrate and quantize, packing (cost
//! model; the top scale is lowered until every layer packs), with `--approx-budget` the
//! squares that bring the traffic under budget, and with `--prune`: projection aligned with
//! the packing, then calibrate, quantize and packing again (the aligned packings are kept).

use crate::diagnostics::ImportError;
use crate::onnx::{import_file, ImportOptions};
use c3d_ir::{Model, Op, PassRecord, Plan, Preprocess, Protocol, Weights};
use c3d_passes::cost::plan_cost;
use c3d_passes::packing::{choose_packings, shape_and_packing};
use c3d_passes::prune::project;
use c3d_passes::rewrite::rewrite;
use c3d_passes::separable::separate_pools;
use c3d_passes::{quantize, QuantConfig, QuantError};
use miette::Diagnostic;
use std::path::Path;
use thiserror::Error;

/// Options of `c3dc compile`.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Frontend options.
    pub import: ImportOptions,
    /// Quantization options.
    pub quant: QuantConfig,
    /// Preprocessing to record instead of the model's metadata.
    pub preprocess: Option<Preprocess>,
    /// Class names to record instead of the model's metadata.
    pub class_names: Option<Vec<String>>,
    /// The model's name to record instead of the one the file gives ([`crate::name`]).
    pub name: Option<String>,
    /// Fraction of each secret layer's weights to prune (0 <= S < 1).
    pub prune: f64,
    /// Skip the e-graph rewrites.
    pub no_rewrite: bool,
    /// Traffic budget in bytes (offline + online, cost model): while the plan exceeds it,
    /// square the standalone ReLU that saves the most garbled traffic.
    pub approx_budget: Option<u64>,
}

/// A compiled model.
pub struct Compiled {
    /// The public plan.
    pub plan: Plan,
    /// The server's quantized weights.
    pub weights: Weights,
    /// The imported float model (for references and reports).
    pub model: Model,
    /// Wall time of each phase, seconds.
    pub timings: Vec<(String, f64)>,
}

/// The error of a pass, whatever its type (each pass has its own).
pub type PassError = Box<dyn std::error::Error + Send + Sync>;

/// Why compilation failed.
#[derive(Debug, Error, Diagnostic)]
pub enum CompileError {
    /// The frontend could not map the model.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Import(#[from] ImportError),
    /// The range analysis found no field.
    #[error(transparent)]
    #[diagnostic(code(c3dc::quantize))]
    Quant(#[from] QuantError),
    /// A pass failed on the model.
    #[error("{pass}: {source}")]
    #[diagnostic(code(c3dc::pass))]
    Pass {
        /// The pass, as its record names it (`rewrite`, `separable`, `packing`).
        pass: &'static str,
        /// The pass's own error.
        #[source]
        source: PassError,
    },
    /// No HE packing fits at the lowest fractional bits allowed (or the forced ones).
    #[error("no HE packing fits {at}: {source}{hint}")]
    #[diagnostic(code(c3dc::packing))]
    NoPacking {
        /// The fractional bits tried, in words.
        at: String,
        /// What to try, when the model squares activations ("" otherwise).
        hint: &'static str,
        /// The packing pass's error at those bits.
        #[source]
        source: PassError,
    },
    /// The preprocessing (from `--preprocess` or the model's metadata) does not fit the input.
    #[error("preprocessing: {0}")]
    #[diagnostic(code(c3dc::options))]
    Preprocess(#[source] c3d_ir::IrError),
    /// Bad options.
    #[error("{0}")]
    #[diagnostic(code(c3dc::options))]
    Options(String),
}

impl CompileError {
    /// Wraps the error of the pass `pass`.
    fn pass<E: Into<PassError>>(pass: &'static str) -> impl FnOnce(E) -> CompileError {
        move |e| CompileError::Pass {
            pass,
            source: e.into(),
        }
    }
}

/// Compiles an ONNX file. `progress` receives one line per step.
pub fn compile(
    path: &Path,
    opts: &CompileOptions,
    mut progress: impl FnMut(&str),
) -> Result<Compiled, CompileError> {
    // Options first: a bad one should not wait for a large model to load.
    if !(0.0..1.0).contains(&opts.prune) {
        return Err(CompileError::Options(format!(
            "--prune {} is not in [0, 1)",
            opts.prune
        )));
    }
    let name = match &opts.name {
        Some(n) => Some(
            crate::name::check(n)
                .map_err(|e| CompileError::Options(format!("--name {n:?}: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    progress(&format!("import: {}", path.display()));
    let t0 = std::time::Instant::now();
    let (mut model, folds) = import_file(path, &opts.import)?;
    let t_import = t0.elapsed().as_secs_f64();
    if let Some(p) = &opts.preprocess {
        model.meta.preprocess = p.clone();
    }
    if let Some(n) = name {
        model.meta.name = n;
    }
    if let Some(c) = &opts.class_names {
        model.meta.class_names = c.clone();
    }
    let (inp, out) = model.graph.io().map_err(ImportError::Ir)?;
    model
        .meta
        .preprocess
        .validate(&model.graph.node(inp).shape)
        .map_err(CompileError::Preprocess)?;
    let classes = model.graph.node(out).shape.numel();
    if !model.meta.class_names.is_empty() && model.meta.class_names.len() != classes {
        return Err(CompileError::Options(format!(
            "{} class names for {classes} outputs",
            model.meta.class_names.len()
        )));
    }
    let records = vec![
        PassRecord {
            name: "import".into(),
            detail: format!("{} nodes from `{}` ({})", model.graph.len(), model.meta.name, model.meta.producer),
        },
        PassRecord {
            name: "fold".into(),
            detail: format!(
                "{} BatchNormalization folded, {} Dropout/Identity removed, {} constant nodes evaluated, {} If resolved",
                folds.batchnorms, folds.removed, folds.constants, folds.ifs
            ),
        },
    ];
    let mut records = records;
    for r in &records {
        progress(&format!("{}: {}", r.name, r.detail));
    }
    // Activations the model was trained to square are squared, with or without --approx.
    let mut quant = opts.quant.clone();
    for a in &model.meta.approx {
        if !quant.approx.contains(a) {
            quant.approx.push(a.clone());
        }
    }
    if !model.meta.approx.is_empty() {
        let r = PassRecord {
            name: "approx".into(),
            detail: format!(
                "the model was trained with x^2 at {}: squared by Beaver triples",
                model.meta.approx.join(", ")
            ),
        };
        progress(&format!("{}: {}", r.name, r.detail));
        records.push(r);
    }
    let mut opts = CompileOptions {
        quant,
        ..opts.clone()
    };
    let t_rw = std::time::Instant::now();
    if !opts.no_rewrite {
        let (m, rep) =
            rewrite(&model, &opts.quant.approx).map_err(CompileError::pass("rewrite"))?;
        model = m;
        let r = PassRecord {
            name: "rewrite".into(),
            detail: format!(
                "{} max-pools fused with their ReLU, {} pads folded into windows ({} -> {} nodes)",
                rep.fused, rep.pads_folded, rep.nodes.0, rep.nodes.1
            ),
        };
        progress(&format!("{}: {}", r.name, r.detail));
        records.push(r);
        let (m, rep) = separate_pools(&model).map_err(CompileError::pass("separable"))?;
        model = m;
        let r = PassRecord {
            name: "separable".into(),
            detail: format!(
                "{} max-pools split into per-axis passes (garbled AND gates of the pools at a 41-bit prime: {:.1} M -> {:.1} M)",
                rep.split,
                rep.ands.0 as f64 / 1e6,
                rep.ands.1 as f64 / 1e6
            ),
        };
        progress(&format!("{}: {}", r.name, r.detail));
        records.push(r);
    }
    let t_rw = t_rw.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let (mut q, mut pack) = quantize_and_pack(&model, &mut opts.quant, &mut progress)?;
    if let Some(budget) = opts.approx_budget {
        if let Some(r) = approx_for_budget(&model, &mut opts, &mut q, budget, &mut progress)? {
            progress(&format!("{}: {}", r.name, r.detail));
            records.push(r);
            pack = choose_packings(&mut q.plan, Some(&q.weights))
                .map_err(CompileError::pass("packing"))?;
        }
    }
    let opts = &opts;
    progress(&format!("{}: {}", pack.name, pack.detail));
    let mut timings = vec![
        ("import+fold".to_string(), t_import),
        ("rewrite".to_string(), t_rw),
        (
            "calibrate+quantize+packing".to_string(),
            t1.elapsed().as_secs_f64(),
        ),
    ];
    let mut post = vec![pack];
    if opts.prune > 0.0 {
        let t2 = std::time::Instant::now();
        let dense = q.plan;
        let (mut zeros, mut total) = (0usize, 0usize);
        for l in &dense.layers {
            let Some((s, pk)) = shape_and_packing(&dense, l) else {
                continue;
            };
            if let Some((w, _)) = model.weights.get_mut(&l.node) {
                zeros += project(w, &s, &pk, opts.prune);
                total += w.len();
            }
        }
        q = quantize(&model, &opts.quant, &mut progress)?;
        for l in q.plan.layers.iter_mut() {
            l.packing = dense.layer(l.node).and_then(|d| d.packing.clone());
            if let Some(lw) = q.weights.layers.get(&l.node) {
                let z = lw.weight.iter().filter(|&&v| v == 0).count();
                l.sparsity = Some(z as f64 / lw.weight.len().max(1) as f64);
            }
        }
        let pack = choose_packings(&mut q.plan, Some(&q.weights))
            .map_err(CompileError::pass("packing"))?;
        let r = PassRecord {
            name: "prune".into(),
            detail: format!(
                "projection to sparsity {}: {zeros} of {total} weights zero, block-aligned with the packing; {}",
                opts.prune, pack.detail
            ),
        };
        progress(&format!("{}: {}", r.name, r.detail));
        post = vec![r];
        timings.push(("prune+requantize".to_string(), t2.elapsed().as_secs_f64()));
    }
    let mut plan = q.plan;
    let mut all = records;
    all.append(&mut plan.passes);
    all.append(&mut post);
    plan.passes = all;
    Ok(Compiled {
        plan,
        weights: q.weights,
        model,
        timings,
    })
}

/// Quantizes and chooses the packings. The range analysis picks the highest scale that keeps
/// every value inside the field; when the weights that scale gives are too wide for some
/// layer's HE packing (its noise, flooded for every coefficient of every reply of the session,
/// must fit the ciphertext modulus; a large prime leaves fewer bits), the top scale is lowered
/// until every layer packs (unless the scale was forced), and `quant` keeps that limit for
/// later passes. Refused, naming the layer and the bits its flooding needs, when even the
/// lowest scale allowed does not pack.
fn quantize_and_pack(
    model: &Model,
    quant: &mut QuantConfig,
    progress: &mut impl FnMut(&str),
) -> Result<(c3d_passes::Quantized, PassRecord), CompileError> {
    loop {
        let mut q = quantize(model, quant, &mut *progress)?;
        match choose_packings(&mut q.plan, Some(&q.weights)) {
            Ok(r) => return Ok((q, r)),
            Err(e) => {
                let f = q.plan.fixed.frac_bits;
                if quant.frac_bits.is_some() || f <= quant.min_frac_bits {
                    let hint = if quant.approx.is_empty() {
                        ""
                    } else {
                        " (each x^2 after a linear layer doubles that layer's untruncated scale, \
                         which needs a larger field: try a lower --frac-bits or fewer --approx \
                         layers)"
                    };
                    let at = if quant.frac_bits.is_some() {
                        format!("at the forced {f} fractional bits")
                    } else {
                        format!("even at {f} fractional bits, the lowest the scales may go")
                    };
                    return Err(CompileError::NoPacking {
                        at,
                        hint,
                        source: e.into(),
                    });
                }
                progress(&format!(
                    "packing: {e}; retrying with fractional bits at most {}",
                    f - 1
                ));
                quant.max_frac_bits = f - 1;
            }
        }
    }
}

/// Traffic of a plan by the cost model (dense weights), offline and online together.
fn plan_bytes(plan: &Plan) -> u64 {
    let t = plan_cost(plan, None).total;
    t.bytes_offline() + t.bytes_online()
}

/// The budget policy for protocol choice: while the plan's traffic exceeds `budget`, the
/// standalone garbled ReLU with the most garbled traffic is squared by Beaver instead
/// (ReLUs fused into a max-pool save next to nothing, the pool's comparisons stay). The
/// squares change the model's function: `c3dc simulate` shows what that costs in accuracy,
/// unless the model was trained with them. Fails when squaring every candidate is not
/// enough. Returns the pass record, or None when the plan is already within budget.
fn approx_for_budget(
    model: &Model,
    opts: &mut CompileOptions,
    q: &mut c3d_passes::Quantized,
    budget: u64,
    progress: &mut impl FnMut(&str),
) -> Result<Option<PassRecord>, CompileError> {
    let before = plan_bytes(&q.plan);
    if before <= budget {
        return Ok(None);
    }
    let cost = plan_cost(&q.plan, None);
    let mut cands: Vec<(u64, String)> = cost
        .layers
        .iter()
        .filter(|(id, _)| {
            matches!(q.plan.graph.node(*id).op, Op::Relu)
                && matches!(
                    q.plan.layer(*id).map(|l| l.protocol),
                    Some(Protocol::GarbledCircuit | Protocol::OtComparison)
                )
        })
        .map(|(id, c)| {
            let saved =
                (c.gc_bytes_offline + c.gc_bytes_online + c.ot_bytes_offline + c.ot_bytes_online)
                    .saturating_sub(c.beaver_bytes_offline + c.beaver_bytes_online);
            (saved, q.plan.graph.node(*id).name.clone())
        })
        .collect();
    cands.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let (mut chosen, mut skipped) = (Vec::new(), Vec::new());
    let mut now = before;
    for (_, name) in cands {
        if now <= budget {
            break;
        }
        // A square doubles the untruncated scale of the linear layer before it: the field
        // may have to grow, which can make every garbled layer dearer or leave a layer
        // without an HE packing. Such a candidate is skipped.
        let mut trial = opts.quant.clone();
        trial.approx.push(name.clone());
        let mut quiet = |_: &str| {};
        match quantize_and_pack(model, &mut trial, &mut quiet) {
            Ok((tq, _)) => {
                let bytes = plan_bytes(&tq.plan);
                if bytes < now {
                    now = bytes;
                    *q = tq;
                    opts.quant = trial;
                    progress(&format!(
                        "approx-budget: {name} squared, {:.1} MB",
                        now as f64 / 1e6
                    ));
                    chosen.push(name);
                } else {
                    skipped.push(format!(
                        "{name} (its field makes the plan {:.1} MB)",
                        bytes as f64 / 1e6
                    ));
                }
            }
            Err(e) => skipped.push(format!("{name} ({e})")),
        }
    }
    let mb = |b: u64| b as f64 / 1e6;
    if now > budget {
        return Err(CompileError::Options(format!(
            "--approx-budget {:.1} MB cannot be met: {:.1} MB with {} squared; skipped: {}; \
             max-pools and fused pool+ReLU blocks stay garbled",
            mb(budget),
            mb(now),
            if chosen.is_empty() {
                "nothing".to_string()
            } else {
                chosen.join(", ")
            },
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join("; ")
            },
        )));
    }
    Ok(Some(PassRecord {
        name: "approx-budget".into(),
        detail: format!(
            "{} squared by Beaver to meet {:.1} MB: {:.1} MB -> {:.1} MB",
            chosen.join(", "),
            mb(budget),
            mb(before),
            mb(now)
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_error_names_the_pass_and_keeps_its_cause() {
        let e = CompileError::pass("rewrite")("no term extracted".to_string());
        assert_eq!(e.to_string(), "rewrite: no term extracted");
        let source = std::error::Error::source(&e).expect("the pass's error is the source");
        assert_eq!(source.to_string(), "no term extracted");
        assert!(matches!(
            e,
            CompileError::Pass {
                pass: "rewrite",
                ..
            }
        ));
    }
}
