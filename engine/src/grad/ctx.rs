//! What a gradient rule works with: the forward node, probed shapes, constants, and a builder
//! for backward nodes, plus the helpers every rule needs (broadcast reduction, reshapes).

use super::GradError;
use crate::graph::proto::NodeProto;
use crate::graph::{Builder, NodeAttrs, Shapes, TensorData, attr};

pub(crate) struct Ctx<'a> {
    pub b: &'a mut Builder,
    pub shapes: &'a Shapes,
    pub node: &'a NodeProto,
    pub label: String,
    pub opset: i64,
}

impl Ctx<'_> {
    pub fn err(&self, reason: impl Into<String>) -> GradError {
        GradError::Rule {
            op: self.node.op_type.clone(),
            node: self.label.clone(),
            reason: reason.into(),
        }
    }

    /// Name of forward input `i` ("" when absent).
    pub fn x(&self, i: usize) -> String {
        self.node.input.get(i).cloned().unwrap_or_default()
    }

    /// Name of forward output `i`.
    pub fn y(&self, i: usize) -> String {
        self.node.output.get(i).cloned().unwrap_or_default()
    }

    pub fn shape(&self, name: &str) -> Result<Vec<i64>, GradError> {
        self.shapes
            .get(name)
            .map(|i| i.shape.clone())
            .ok_or_else(|| GradError::NoShape(name.to_string()))
    }

    pub fn dtype(&self, name: &str) -> Result<i32, GradError> {
        self.shapes
            .get(name)
            .map(|i| i.dtype)
            .ok_or_else(|| GradError::NoShape(name.to_string()))
    }

    /// The values of a constant input (an initializer after shape folding).
    pub fn const_ints(&self, name: &str) -> Result<Vec<i64>, GradError> {
        self.b
            .model
            .initializer(name)
            .ok()
            .and_then(|t| t.to_i64_vec())
            .ok_or_else(|| self.err(format!("input '{name}' must be a constant integer tensor")))
    }

    pub fn const_floats(&self, name: &str) -> Result<Vec<f64>, GradError> {
        self.b
            .model
            .initializer(name)
            .ok()
            .and_then(|t| t.to_f64_vec())
            .ok_or_else(|| self.err(format!("input '{name}' must be a constant float tensor")))
    }

    pub fn op<S: AsRef<str>>(&mut self, op: &str, inputs: &[S]) -> String {
        self.b.op(op, inputs, vec![])
    }

    pub fn op_a<S: AsRef<str>>(
        &mut self,
        op: &str,
        inputs: &[S],
        attrs: Vec<crate::graph::proto::AttributeProto>,
    ) -> String {
        self.b.op(op, inputs, attrs)
    }

    /// A scalar constant with the element type of tensor `like`.
    pub fn scalar(&mut self, value: f64, like: &str) -> Result<String, GradError> {
        let dt = self.dtype(like)?;
        Ok(self.b.scalar(value, dt))
    }

    pub fn ints(&mut self, values: &[i64]) -> String {
        self.b.const_i64(values)
    }

    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.ints(shape);
        self.op("Reshape", &[x, s.as_str()])
    }

    pub fn expand(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.ints(shape);
        self.op("Expand", &[x, s.as_str()])
    }

    pub fn reduce_sum(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        let a = self.ints(axes);
        self.op_a(
            "ReduceSum",
            &[x, a.as_str()],
            vec![attr::int("keepdims", i64::from(keepdims))],
        )
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op_a("Transpose", &[x], vec![attr::ints("perm", perm)])
    }

    /// Sums `g` (of shape `from`) over the axes numpy broadcasting expanded, giving shape `to`.
    pub fn unbroadcast(&mut self, g: &str, from: &[i64], to: &[i64]) -> Result<String, GradError> {
        if from == to {
            return Ok(g.to_string());
        }
        if to.len() > from.len() {
            return Err(self.err(format!(
                "gradient of shape {from:?} cannot reduce to {to:?}"
            )));
        }
        let lead = from.len() - to.len();
        let axes: Vec<i64> = (0..from.len())
            .filter(|&i| i < lead || (to[i - lead] == 1 && from[i] != 1))
            .map(|i| i as i64)
            .collect();
        let summed = if axes.is_empty() {
            g.to_string()
        } else {
            self.reduce_sum(g, &axes, true)
        };
        Ok(self.reshape(&summed, to))
    }

    /// Unbroadcasts the gradient `g` of output 0 to the shape of input `i`.
    pub fn unbroadcast_to_input(&mut self, g: &str, i: usize) -> Result<String, GradError> {
        let from = self.shape(&self.y(0))?;
        let to = self.shape(&self.x(i))?;
        self.unbroadcast(g, &from, &to)
    }

    /// Zeros of the shape and type of tensor `like`.
    pub fn zeros_like(&mut self, like: &str) -> Result<String, GradError> {
        let z = self.scalar(0.0, like)?;
        let shape = self.shape(like)?;
        Ok(self.expand(&z, &shape))
    }

    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.node.attr_int(name, default)
    }

    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.node.attr_ints(name)
    }

    /// Normalizes a possibly negative axis for a tensor of rank `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize, GradError> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if (0..r.max(1)).contains(&a) {
            Ok(a as usize)
        } else {
            Err(self.err(format!("axis {axis} is out of range for rank {rank}")))
        }
    }

    /// A constant tensor added as an initializer.
    pub fn constant(&mut self, value: &TensorData) -> String {
        self.b.constant("k", value)
    }
}
