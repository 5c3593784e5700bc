//! Why a gradient graph could not be built; messages name the op and the node.

use crate::graph::GraphError;

#[derive(Debug, thiserror::Error)]
pub enum GradError {
    #[error(
        "cannot differentiate node '{node}': op {op} has no gradient rule \
         (supported: see lumen_engine::grad::SUPPORTED_OPS)"
    )]
    UnsupportedOp { op: String, node: String },
    #[error("cannot differentiate node '{node}' ({op}): {reason}")]
    Rule {
        op: String,
        node: String,
        reason: String,
    },
    #[error("the model has no tensor named '{0}'")]
    UnknownTensor(String),
    #[error("output '{name}' is not a scalar (shape {shape:?}); reduce it to one value first")]
    NotScalar { name: String, shape: Vec<i64> },
    #[error(
        "tensor '{0}' has no probed shape; probe the model with Shapes::probe on example inputs"
    )]
    NoShape(String),
    #[error("gradients need opset 13 or newer; the model imports opset {0}")]
    OldOpset(i64),
    #[error(transparent)]
    Graph(#[from] GraphError),
}
