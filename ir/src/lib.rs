//! Intermediate representation of secure 3D-CNN inference: shapes, ops, the graph, the
//! fixed-point format, the plan and its file format, and two reference evaluators (float, and
//! the fixed-point simulator every secure run is compared with). No crypto, no ONNX.

pub mod error;
pub mod eval_float;
pub mod exec;
pub mod fixed;
pub mod format;
pub mod graph;
pub mod kernels;
pub mod op;
pub mod packing;
pub mod plan;
pub mod shape;
pub mod simulate;

pub use error::{IrError, Result};
pub use eval_float::{eval_float, FloatWeights, Model};
pub use fixed::FixedPoint;
pub use graph::{Graph, Node, NodeId};
pub use kernels::Tensor;
pub use op::{Conv3dParams, Op, OpClass, Window3d};
pub use packing::{ConvShape, FloodBudget, HeModel, NoiseBudget, Packing};
pub use plan::{
    Calibration, ChannelOrder, LayerQuant, LayerWeights, ModelMeta, NodePlan, PassRecord, Plan,
    Preprocess, Protocol, Weights,
};
pub use shape::Shape;
pub use simulate::{simulate, simulate_timed, SimOutput};
