//! The compile pipeline: import, fold, calibrate and quantize, in that fixed order.

use crate::diagnostics::ImportError;
use crate::onnx_import::{import_file, ImportOptions};
use c3d_ir::{Model, PassRecord, Plan, Preprocess, Weights};
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
    for r in &records {
        progress(&format!("{}: {}", r.name, r.detail));
    }
    let t1 = std::time::Instant::now();
    let q = quantize(&model, &opts.quant, &mut progress)?;
    let timings = vec![
        ("import+fold".to_string(), t_import),
        ("calibrate+quantize".to_string(), t1.elapsed().as_secs_f64()),
    ];
    let mut plan = q.plan;
    let mut all = records;
    all.append(&mut plan.passes);
    plan.passes = all;
    Ok(Compiled {
        plan,
        weights: q.weights,
        model,
        timings,
    })
}
