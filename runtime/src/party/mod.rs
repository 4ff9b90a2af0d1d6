//! The embedding API: both roles of a secure inference as library calls, without the CLI.
//! `c3d-run` is built on it.
//!
//! ```
//! use c3d_runtime::party::{Client, Server, ServerConfig};
//! use std::net::TcpListener;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
//! # let onnx = format!("{dir}/motion/c3d-motion.onnx");
//! # let mp4 = format!("{dir}/clips/motion/grow.mp4");
//! // Model owner: the ONNX model compiled into a plan (public) and weights (private) ...
//! let compiled = c3d_compiler::compile(onnx.as_ref(), &Default::default(), |_| {})?;
//! let (plan, weights) = (compiled.plan, compiled.weights);
//! // ... served, here for one session.
//! let server = Server::new(plan.clone(), &weights)?.with_config(ServerConfig {
//!     sessions: Some(1),
//!     ..ServerConfig::default()
//! })?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?.to_string();
//! let serving = std::thread::spawn(move || server.serve(listener));
//!
//! // Video owner: the public plan and a clip; learns the label, nothing else.
//! let input = plan.graph.node(plan.graph.io()?.0).shape.clone();
//! let clip = c3d_runtime::video::load_clip(mp4.as_ref(), &plan.meta.preprocess, &input)?;
//! let prediction = Client::connect(&addr, plan.clone())?.infer(&clip)?;
//! println!("{} ({:.1} %)", prediction.top[0].label, prediction.top[0].probability * 100.0);
//! assert_eq!(prediction.top[0].label, "grow");
//!
//! // The secure output is the plaintext fixed-point simulation's, bit for bit.
//! let plain = c3d_ir::simulate(&plan, &weights, &clip)?;
//! assert_eq!(prediction.output.data, plain.output.data);
//! serving.join().expect("the server thread")?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/classify.rs` and `examples/serve.rs` are the two roles as programs.
//!
//! A [`Client`] runs one session per connection: [`Client::infer`] consumes it. A [`Server`]
//! serves any number of sessions, several at once, each isolated from the others' failures.

mod client;
pub mod progress;
mod server;

pub use client::{Client, ClientConfig, ClientTls};
pub use progress::{Progress, ProgressFn};
pub use server::{Server, ServerConfig, ServerTls, SessionOutcome, SessionProgressFn};

use crate::session::{Report, SessionError};
use crate::tls::TlsError;
use c3d_ir::{IrError, Op, Plan, Tensor};
use std::path::Path;

/// Why an embedded run failed; the messages are the CLI's.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// The plan or weights file is unreadable or invalid.
    #[error("{0}")]
    Plan(#[from] IrError),
    /// A weights file was given where a plan belongs (a client must never hold weights).
    #[error("{0} is a weights file, not a plan; a client must not hold weights")]
    WeightsAsPlan(String),
    /// Plain TCP offered on a non-loopback address without the caller allowing it.
    #[error("refusing to serve plain TCP on {0}, which is not a loopback address")]
    PlaintextServe(String),
    /// Plain TCP to a non-loopback address without the caller allowing it.
    #[error("refusing plain TCP to {0}, which is not a loopback address")]
    PlaintextConnect(String),
    /// An option is out of range or inconsistent.
    #[error("{0}")]
    Config(String),
    /// A TLS file or setting is unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The server could not be reached.
    #[error("cannot connect to the server at {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The last failure.
        source: std::io::Error,
    },
    /// The clip could not be decoded.
    #[cfg(feature = "video")]
    #[error("{0}")]
    Video(#[from] crate::video::VideoError),
    /// The offline phase failed.
    #[error("offline phase: {0}")]
    Offline(Box<SessionError>),
    /// The online phase failed.
    #[error("online phase: {0}")]
    Online(Box<SessionError>),
    /// Setting up a party failed (keys, connection set-up).
    #[error("{0}")]
    Session(Box<SessionError>),
}

impl From<SessionError> for PartyError {
    fn from(e: SessionError) -> Self {
        PartyError::Session(Box::new(e))
    }
}

/// One class of a prediction.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassScore {
    /// Index in the model's output.
    pub index: usize,
    /// The class name from the plan, or `class N` when the model brings none.
    pub label: String,
    /// The output value: a probability when the model ends in softmax, else the logit.
    pub probability: f32,
}

/// What the client learns from one secure run.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// The model output (after the client-side ops), in the output's shape.
    pub output: Tensor<f32>,
    /// Every class, best first.
    pub top: Vec<ClassScore>,
    /// Whether the values are probabilities (the model ends in softmax).
    pub softmax: bool,
    /// Time, bytes each way and memory, per phase and per layer.
    pub report: Report,
}

/// Reads a plan file for a client: a weights file given by mistake is refused by name.
pub fn load_plan(path: &Path) -> Result<Plan, PartyError> {
    let bytes = std::fs::read(path).map_err(|source| IrError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if bytes.starts_with(&c3d_ir::format::WEIGHTS_MAGIC[..]) {
        return Err(PartyError::WeightsAsPlan(path.display().to_string()));
    }
    Ok(Plan::from_bytes(&bytes)?.0)
}

/// The classes of `out` best first, named from the plan.
pub fn ranked(plan: &Plan, out: &[f32]) -> (Vec<ClassScore>, bool) {
    let softmax = plan
        .graph
        .io()
        .is_ok_and(|(_, o)| matches!(plan.graph.node(o).op, Op::Softmax { .. }));
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by(|&a, &b| out[b].total_cmp(&out[a]).then(a.cmp(&b)));
    let top = idx
        .into_iter()
        .map(|i| ClassScore {
            index: i,
            label: plan
                .meta
                .class_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            probability: out[i],
        })
        .collect();
    (top, softmax)
}
