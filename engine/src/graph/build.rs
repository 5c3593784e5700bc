//! Building graphs from Rust: attributes, fresh names, constants and nodes. Used by `grad`
//! (backward nodes), by the loss graphs of the quantization pipeline, and by tests.

use super::proto::attribute_proto::AttributeType;
use super::proto::{
    AttributeProto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto,
    type_proto,
};
use super::{Model, TensorData};
use std::collections::HashSet;

/// Attribute constructors.
pub mod attr {
    use super::*;

    pub fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i: v,
            ..Default::default()
        }
    }
    pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        }
    }
    pub fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Float as i32,
            f: v,
            ..Default::default()
        }
    }
    pub fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: v.to_vec(),
            ..Default::default()
        }
    }
    pub fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: v.as_bytes().to_vec(),
            ..Default::default()
        }
    }
    pub fn tensor(name: &str, v: &TensorData) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Tensor as i32,
            t: Some(v.to_proto("")),
            ..Default::default()
        }
    }
}

/// Reading attributes of a node.
pub trait NodeAttrs {
    fn attr(&self, name: &str) -> Option<&AttributeProto>;
    fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    fn attr_float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn attr_string(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).to_string()
        })
    }
}

impl NodeAttrs for NodeProto {
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }
}

/// A typed graph input or output description.
pub fn value_info(name: &str, elem: i32, shape: &[i64]) -> ValueInfoProto {
    let dims = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(if d >= 0 {
                tensor_shape_proto::dimension::Value::DimValue(d)
            } else {
                tensor_shape_proto::dimension::Value::DimParam(format!("d{}", -d))
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Adds nodes and constants to a model under fresh, collision-free names.
#[derive(Debug, Clone)]
pub struct Builder {
    pub model: Model,
    used: HashSet<String>,
    counter: usize,
    prefix: String,
}

impl Builder {
    /// A builder for a new, empty model.
    pub fn new(graph_name: &str, opset: i64) -> Self {
        Self::from_model(Model::new(graph_name, opset))
    }

    /// A builder adding to an existing model.
    pub fn from_model(model: Model) -> Self {
        let mut used = model.tensor_names();
        used.extend(model.graph().node.iter().map(|n| n.name.clone()));
        Self {
            model,
            used,
            counter: 0,
            prefix: String::new(),
        }
    }

    /// Names made from now on start with `prefix` (e.g. "grad/").
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    /// An unused name based on `hint`.
    pub fn fresh(&mut self, hint: &str) -> String {
        loop {
            self.counter += 1;
            let name = format!("{}{}_{}", self.prefix, hint, self.counter);
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }

    /// Reserves a name chosen by the caller (graph inputs and outputs); false if taken.
    pub fn claim(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string())
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: i32, shape: &[i64]) -> String {
        self.claim(name);
        self.model
            .graph_mut()
            .input
            .push(value_info(name, elem, shape));
        name.to_string()
    }

    /// Declares a graph output (type left to inference).
    pub fn output(&mut self, name: &str) {
        self.model.graph_mut().output.push(ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        });
    }

    /// Adds a constant as an initializer; returns its name.
    pub fn constant(&mut self, hint: &str, value: &TensorData) -> String {
        let name = self.fresh(hint);
        self.model.set_initializer(&name, value);
        name
    }

    /// A 1-D int64 constant (axes, shapes, pads).
    pub fn const_i64(&mut self, values: &[i64]) -> String {
        let v = TensorData::I64(ndarray::Array1::from(values.to_vec()).into_dyn());
        self.constant("c", &v)
    }

    /// A scalar float constant of element type `elem` (FLOAT or DOUBLE).
    pub fn scalar(&mut self, value: f64, elem: i32) -> String {
        let v = match TensorData::float(elem, &[], vec![value]) {
            Ok(v) => v,
            // Other float types are computed in f32 by the graph's Cast users; keep f32.
            Err(_) => TensorData::F32(ndarray::arr0(value as f32).into_dyn()),
        };
        self.constant("s", &v)
    }

    /// Adds a node with one output; returns the output's name.
    pub fn op<S: AsRef<str>>(
        &mut self,
        op: &str,
        inputs: &[S],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.op_n(op, inputs, attrs, 1).pop().unwrap_or_default()
    }

    /// Adds a node with `n` outputs; returns their names.
    pub fn op_n<S: AsRef<str>>(
        &mut self,
        op: &str,
        inputs: &[S],
        attrs: Vec<AttributeProto>,
        n: usize,
    ) -> Vec<String> {
        let outputs: Vec<String> = (0..n).map(|_| self.fresh(op)).collect();
        self.node(op, inputs, &outputs, attrs);
        outputs
    }

    /// Adds a node writing to outputs chosen by the caller.
    pub fn node<S: AsRef<str>, T: AsRef<str>>(
        &mut self,
        op: &str,
        inputs: &[S],
        outputs: &[T],
        attrs: Vec<AttributeProto>,
    ) {
        let name = self.fresh(&format!("{op}_node"));
        for o in outputs {
            self.used.insert(o.as_ref().to_string());
        }
        self.model.add_node(NodeProto {
            name,
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.as_ref().to_string()).collect(),
            output: outputs.iter().map(|s| s.as_ref().to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
    }

    pub fn finish(self) -> Model {
        self.model
    }
}
