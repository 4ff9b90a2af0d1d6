//! Intermediate representation of secure 3D-CNN inference: shapes, ops, the graph, the
//! fixed-point format, the plan and its file format, and two reference evaluators (float, and
//! the fixed-point simulator every secure run is compared with). No crypto, no ONNX: the HE
//! parameters and noise arithmetic the passes and the runtime share are public numbers, kept
//! in one module ([`he_model`]).

#![forbid(unsafe_code)]

pub mod error;
pub mod eval_float;
pub mod exec;
pub mod fixed;
pub mod format;
pub mod graph;
pub mod he_model;
pub mod he_slots;
pub mod kernels;
pub mod op;
pub mod ot_rule;
pub mod packing;
pub mod plan;
pub mod shape;
pub mod simulate;

pub use error::{IrError, Result};
pub use eval_float::{eval_float, FloatWeights, Model};
pub use fixed::FixedPoint;
pub use graph::{Graph, Node, NodeId};
pub use he_model::{FloodBudget, HeModel, HeModelError, NoiseBudget};
pub use kernels::Tensor;
pub use op::{Conv3dParams, Op, OpClass, ShapeError, Window3d, WindowError};
pub use ot_rule::{ot_comparable, NotComparable};
pub use packing::{ConvShape, GeometryError, Packing};
pub use plan::{
    Calibration, ChannelOrder, LayerQuant, LayerWeights, ModelMeta, NetworkModel, NodePlan,
    NonlinearChoice, PassRecord, Plan, Preprocess, Protocol, Weights,
};
pub use shape::Shape;
pub use simulate::{simulate, simulate_timed, SimOutput};
