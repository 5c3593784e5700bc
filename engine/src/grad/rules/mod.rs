//! One vector-Jacobian-product rule per op, each written in ONNX ops so that ONNX Runtime runs
//! the backward pass in the same session as the forward pass.
//!
//! A rule gets the gradients of the node's outputs (None where no gradient flows) and which
//! inputs need a gradient, and returns one entry per input. Inputs that do not need one get None,
//! so rules for weights (Conv W, Gemm B) can be added later without changing the driver.

mod conv;
mod elementwise;
mod linalg;
mod norm;
mod reduce;
mod resize;
mod shape;

use super::GradError;
use super::ctx::Ctx;

pub(crate) type Grads = Vec<Option<String>>;
type Rule = fn(&mut Ctx, &[Option<String>], &[bool]) -> Result<Grads, GradError>;

/// Ops with a gradient rule.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Add",
    "Cast",
    "Clip",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Div",
    "Dropout",
    "Einsum",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Sin",
    "Slice",
    "Softmax",
    "Softplus",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
];

/// Ops whose outputs carry no gradient (piecewise constant, or not real-valued).
pub const NON_DIFFERENTIABLE_OPS: &[&str] = &[
    "Shape",
    "Size",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "ArgMax",
    "ArgMin",
    "NonZero",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "IsNaN",
    "IsInf",
    "ConstantOfShape",
    "Range",
    "EyeLike",
    "RandomNormalLike",
    "RandomUniformLike",
    "Bernoulli",
    "Constant",
    "Mod",
];

fn rule(op: &str) -> Option<Rule> {
    use elementwise as e;
    Some(match op {
        "Add" => e::add,
        "Sub" => e::sub,
        "Mul" => e::mul,
        "Div" => e::div,
        "Pow" => e::pow,
        "Sqrt" => e::sqrt,
        "Exp" => e::exp,
        "Log" => e::log,
        "Neg" => e::neg,
        "Abs" => e::abs,
        "Reciprocal" => e::reciprocal,
        "Erf" => e::erf,
        "Gelu" => e::gelu,
        "Relu" => e::relu,
        "LeakyRelu" => e::leaky_relu,
        "Sigmoid" => e::sigmoid,
        "Tanh" => e::tanh,
        "Sin" => e::sin,
        "Cos" => e::cos,
        "Softplus" => e::softplus,
        "Identity" | "Dropout" => e::identity,
        "Cast" => e::cast,
        "Where" => e::where_,
        "Max" | "Min" => e::max_min,
        "Sum" => e::sum,
        "Mean" => e::mean,
        "Clip" => e::clip,
        "MatMul" => linalg::matmul,
        "Gemm" => linalg::gemm,
        "Einsum" => linalg::einsum,
        "Conv" => conv::conv,
        "ConvTranspose" => conv::conv_transpose,
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSumSquare" | "ReduceL1"
        | "ReduceL2" | "ReduceLogSumExp" => reduce::reduce,
        "Softmax" => norm::softmax,
        "LogSoftmax" => norm::log_softmax,
        "LayerNormalization" => norm::layer_norm,
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => shape::reshape_like,
        "Transpose" => shape::transpose,
        "Concat" => shape::concat,
        "Split" => shape::split,
        "Slice" => shape::slice,
        "Gather" => shape::gather,
        "Pad" => shape::pad,
        "Expand" => shape::expand,
        "Tile" => shape::tile,
        "Resize" => resize::resize,
        _ => return None,
    })
}

/// Whether `op` (in the default domain) has a rule.
pub fn is_supported(op: &str) -> bool {
    rule(op).is_some()
}

/// Applies the rule of the context's node.
pub(crate) fn vjp(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> Result<Grads, GradError> {
    let domain = c.node.domain.as_str();
    let found = if domain.is_empty() || domain == "ai.onnx" {
        rule(&c.node.op_type)
    } else {
        None
    };
    let f = found.ok_or_else(|| GradError::UnsupportedOp {
        op: if domain.is_empty() {
            c.node.op_type.clone()
        } else {
            format!("{domain}.{}", c.node.op_type)
        },
        node: c.label.clone(),
    })?;
    let mut grads = f(c, gy, need)?;
    grads.resize(c.node.input.len(), None);
    for (g, n) in grads.iter_mut().zip(need) {
        if !n {
            *g = None;
        }
    }
    Ok(grads)
}

/// The gradient of output 0, which single-output rules require.
pub(crate) fn g0(c: &Ctx, gy: &[Option<String>]) -> Result<String, GradError> {
    gy.first()
        .cloned()
        .flatten()
        .ok_or_else(|| c.err("no gradient reaches its first output"))
}

/// Fails when a weight-like input asks for a gradient the rule does not provide yet.
pub(crate) fn only_inputs(c: &Ctx, need: &[bool], supported: &[usize]) -> Result<(), GradError> {
    for (i, n) in need.iter().enumerate() {
        if *n && !supported.contains(&i) {
            return Err(c.err(format!(
                "the gradient with respect to its input {i} ('{}') is not supported yet",
                c.x(i)
            )));
        }
    }
    Ok(())
}
