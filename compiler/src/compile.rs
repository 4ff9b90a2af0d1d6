//! The compile pipeline, in this fixed order: import, fold (BatchNorm, Dropout, constants),
//! rewrite (egg: ReLU/max-pool fusion, pad folding), calibrate and quantize, packing (cost
//! model), and with `--prune`: projection aligned with the packing, then calibrate, quantize
//! and packing again (the aligned packings are kept).

use crate::diagnostics::ImportError;
use crate::onnx_import::{import_file, ImportOptions};
use c3d_ir::{Model, PassRecord, Plan, Preprocess, Weights};
use c3d_passes::packing::{choose_packings, shape_and_packing};
use c3d_passes::prune::project;
use c3d_passes::rewrite::rewrite;
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
    /// Fraction of each secret layer's weights to prune (0 <= S < 1).
    pub prune: f64,
    /// Skip the e-graph rewrites.
    pub no_rewrite: bool,
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
    /// Bad options.
    #[error("{0}")]
    #[diagnostic(code(c3dc::options))]
    Options(String),
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
    progress(&format!("import: {}", path.display()));
    let t0 = std::time::Instant::now();
    let (mut model, folds) = import_file(path, &opts.import)?;
    let t_import = t0.elapsed().as_secs_f64();
    if let Some(p) = &opts.preprocess {
        model.meta.preprocess = p.clone();
    }
    if let Some(c) = &opts.class_names {
        model.meta.class_names = c.clone();
    }
    let (inp, out) = model.graph.io().map_err(ImportError::Ir)?;
    model
        .meta
        .preprocess
        .validate(&model.graph.node(inp).shape)
        .map_err(|e| CompileError::Options(format!("preprocessing: {e}")))?;
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
    let t_rw = std::time::Instant::now();
    if !opts.no_rewrite {
        let (m, rep) = rewrite(&model, &opts.quant.approx).map_err(CompileError::Options)?;
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
    }
    let t_rw = t_rw.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let mut q = quantize(&model, &opts.quant, &mut progress)?;
    let pack = choose_packings(&mut q.plan).map_err(CompileError::Options)?;
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
        let pack = choose_packings(&mut q.plan).map_err(CompileError::Options)?;
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
