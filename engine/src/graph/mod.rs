//! ONNX IR toolkit: load/save models (external data too), initializers as ndarray, editing,
//! topological order, shapes by probing ONNX Runtime, constant folding, dead-node removal.
//! See `proto` for why the protobuf code is generated with prost and checked in.

pub mod build;
mod compose;
mod edit;
mod error;
pub mod exec;
mod fold;
mod model;
pub mod proto;
mod shapes;
mod tensor;

pub use build::{Builder, NodeAttrs, attr, value_info};
pub use compose::compose;
pub use edit::node_label;
pub use error::GraphError;
pub use exec::Runner;
pub use fold::{fold_constants, fold_shapes};
pub use model::Model;
pub(crate) use model::write_atomic;
pub use shapes::{Shapes, TensorInfo};
pub use tensor::TensorData;

#[cfg(test)]
mod tests;
