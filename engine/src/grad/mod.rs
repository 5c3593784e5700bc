//! Reverse-mode automatic differentiation of ONNX graphs, run by ONNX Runtime.
//!
//! `build_gradient` takes a model, a scalar output and the tensors to differentiate with respect
//! to, and returns one model whose outputs are the scalar and its gradients: the forward nodes
//! followed by backward nodes written in plain ONNX ops (one VJP rule per op, see `rules`), so
//! one session computes both. Shapes are static: the backward graph is built for the shapes
//! probed with `Shapes::probe` (DFQ runs the model at one input size), which keeps every rule a
//! handful of fixed-shape ops.
//!
//! Only nodes on a path from the inputs to the output get backward nodes; gradients of tensors
//! used several times are summed; broadcast gradients are summed back to each input's shape.
//! Gradients with respect to initializers use the same machinery (name them in `wrt`); rules
//! say when they do not provide a gradient for a weight input yet.

mod backward;
pub mod bench;
mod ctx;
mod error;
pub mod fd;
mod rules;

pub use backward::{GradRequest, Gradient, build_gradient, unsupported_nodes};
pub use error::GradError;
pub use rules::{NON_DIFFERENTIABLE_OPS, SUPPORTED_OPS, is_supported};

#[cfg(test)]
mod tests;
