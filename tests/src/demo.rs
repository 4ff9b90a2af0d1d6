//! The main job's demo: the bundled trained model on the bundled clips of its test split. Each
//! clip is decoded, run through a secure session as the client (the library API), and run
//! through the plaintext fixed-point simulation with the weights (possible here because both
//! parties are on one machine: the simulation is the model owner's check). The rows show the
//! true label, both top-k lists and whether the outputs are equal bit for bit.

use c3d_ir::{Plan, Tensor, Weights};
use c3d_runtime::party::{self, ClassScore, Client, PartyError, Prediction};
use c3d_runtime::session::Phase;
use serde::Deserialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One clip of the manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct ManifestClip {
    /// File name, relative to the manifest.
    pub file: String,
    /// The true class name.
    pub label: String,
    /// Data set split it comes from.
    pub split: String,
    /// Index in that split.
    pub index: u64,
}

/// `models/clips/motion/manifest.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    /// The model the clips are for.
    pub model: String,
    /// How the clips were chosen and encoded.
    pub about: String,
    /// The clips.
    pub clips: Vec<ManifestClip>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The manifest is unreadable or malformed.
    #[error("{path}: {what}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// The secure run or the decoding failed.
    #[error("{clip}: {source}")]
    Party {
        /// The clip.
        clip: String,
        /// Why.
        source: Box<PartyError>,
    },
    /// The plaintext simulation failed.
    #[error("{clip}: simulation: {source}")]
    Simulate {
        /// The clip.
        clip: String,
        /// Why.
        source: Box<c3d_ir::IrError>,
    },
}

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest, DemoError> {
    let err = |what: String| DemoError::Manifest {
        path: path.display().to_string(),
        what,
    };
    let s = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&s).map_err(|e| err(format!("not a clip manifest: {e}")))
}

/// One clip's result.
pub struct ClipResult {
    /// The manifest entry.
    pub clip: ManifestClip,
    /// What the secure run gave the client.
    pub secure: Prediction,
    /// The plaintext fixed-point simulation's output on the same decoded clip.
    pub plain: Vec<f32>,
    /// The simulation's classes, best first.
    pub plain_top: Vec<ClassScore>,
}

impl ClipResult {
    /// Whether the secure output equals the simulation's bit for bit.
    pub fn equal(&self) -> bool {
        self.secure.output.data.len() == self.plain.len()
            && self
                .secure
                .output
                .data
                .iter()
                .zip(&self.plain)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Whether the secure top class is the true label.
    pub fn correct(&self) -> bool {
        self.secure
            .top
            .first()
            .is_some_and(|c| c.label == self.clip.label)
    }
}

/// The path of a manifest clip.
pub fn clip_path(manifest: &Path, clip: &ManifestClip) -> PathBuf {
    manifest.parent().unwrap_or(Path::new(".")).join(&clip.file)
}

/// Decodes `clip`, runs it securely against the server at `addr` and in the simulation.
pub fn run_clip(
    plan: &Plan,
    weights: &Weights,
    manifest: &Path,
    clip: &ManifestClip,
    addr: &str,
) -> Result<ClipResult, DemoError> {
    let path = clip_path(manifest, clip);
    let name = clip.file.clone();
    let party_err = |source| DemoError::Party {
        clip: name.clone(),
        source: Box::new(source),
    };
    let shape = &plan
        .graph
        .node(
            plan.graph
                .io()
                .map_err(|e| party_err(PartyError::Plan(e)))?
                .0,
        )
        .shape;
    let x: Tensor<f32> = c3d_runtime::video::load_clip(&path, &plan.meta.preprocess, shape)
        .map_err(|e| party_err(e.into()))?;
    let secure = Client::connect(addr, plan.clone())
        .and_then(|c| c.infer(&x))
        .map_err(party_err)?;
    let sim = c3d_ir::simulate(plan, weights, &x).map_err(|source| DemoError::Simulate {
        clip: name.clone(),
        source: Box::new(source),
    })?;
    let (plain_top, _) = party::ranked(plan, &sim.output.data);
    Ok(ClipResult {
        clip: clip.clone(),
        secure,
        plain: sim.output.data,
        plain_top,
    })
}

fn top_line(top: &[ClassScore], k: usize, softmax: bool) -> String {
    top.iter()
        .take(k)
        .map(|c| {
            if softmax {
                format!("{:>7.2}% {:<8}", c.probability * 100.0, c.label)
            } else {
                format!("{:>9.4} {:<8}", c.probability, c.label)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// The rows of one clip: true label, secure and plaintext top-k, equality, cost.
pub fn render_clip(r: &ClipResult, k: usize) -> String {
    let mut s = String::new();
    let ph = |p: Phase| r.secure.report.phases.iter().find(|x| x.phase == p);
    let secs = |p| ph(p).map_or(0.0, |x| x.seconds);
    let bytes = |p| ph(p).map_or(0, |x| x.bytes_sent + x.bytes_received);
    let _ = writeln!(
        s,
        "{} (test clip {}): true label `{}`",
        r.clip.file, r.clip.index, r.clip.label
    );
    let _ = writeln!(
        s,
        "  secure    top-{k}: {}",
        top_line(&r.secure.top, k, r.secure.softmax)
    );
    let _ = writeln!(
        s,
        "  plaintext top-{k}: {}",
        top_line(&r.plain_top, k, r.secure.softmax)
    );
    let _ = writeln!(
        s,
        "  secure == plaintext (bit for bit): {}; correct: {}; offline {:.2} s / {:.1} MB, online {:.2} s / {:.1} MB",
        if r.equal() { "yes" } else { "NO" },
        if r.correct() { "yes" } else { "no" },
        secs(Phase::Offline),
        mb(bytes(Phase::Offline)),
        secs(Phase::Online),
        mb(bytes(Phase::Online)),
    );
    s
}

/// The closing summary over all clips: counts, and time and bytes per phase in total.
pub fn render_summary(rs: &[ClipResult]) -> String {
    let n = rs.len();
    let sum = |f: &dyn Fn(&ClipResult) -> f64| rs.iter().map(f).sum::<f64>();
    let phase = |r: &ClipResult, p: Phase| {
        r.secure
            .report
            .phases
            .iter()
            .find(|x| x.phase == p)
            .cloned()
    };
    let secs = |p| sum(&|r| phase(r, p).map_or(0.0, |x| x.seconds));
    let sent = |p| sum(&|r| phase(r, p).map_or(0.0, |x| x.bytes_sent as f64)) / 1e6;
    let recv = |p| sum(&|r| phase(r, p).map_or(0.0, |x| x.bytes_received as f64)) / 1e6;
    format!(
        "{} of {n} clips classified correctly by the secure run; secure == plaintext on {} of {n}\n\
         client, all clips: offline {:.2} s, {:.1} MB sent / {:.1} MB received; online {:.2} s, {:.1} MB sent / {:.1} MB received\n",
        rs.iter().filter(|r| r.correct()).count(),
        rs.iter().filter(|r| r.equal()).count(),
        secs(Phase::Offline),
        sent(Phase::Offline),
        recv(Phase::Offline),
        secs(Phase::Online),
        sent(Phase::Online),
        recv(Phase::Online),
    )
}
