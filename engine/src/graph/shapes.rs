//! Every tensor's shape and element type, learned by running ONNX Runtime once with all
//! intermediates exposed as outputs. Exact for the given inputs (no symbolic inference), which
//! is what gradient building and folding need: DFQ runs the model at one fixed input size.

use super::exec::{Runner, onnx_dtype};
use super::{GraphError, Model, TensorData};
use crate::runtime::SessionConfig;
use std::collections::HashMap;

/// Shape and ONNX element type of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub shape: Vec<i64>,
    pub dtype: i32,
}

/// Tensor name → shape and type, for inputs, initializers and every node output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shapes {
    pub tensors: HashMap<String, TensorInfo>,
}

impl Shapes {
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Runs `model` once on `feeds` (one entry per graph input) and records every tensor.
    /// Memory: all intermediates are alive at once during this run.
    pub fn probe(model: &Model, feeds: &[(&str, &TensorData)]) -> Result<Self, GraphError> {
        let mut probe = model.clone();
        let mut names: Vec<String> = Vec::new();
        for n in &model.graph().node {
            names.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        probe.expose_outputs(&names)?;
        let config = SessionConfig {
            optimize: false,
            ..SessionConfig::default()
        };
        let mut runner = Runner::new(&probe, "shape probe", &config)?;
        let mut tensors = HashMap::new();
        runner.run_with(feeds, |name, value| {
            let ty = value.dtype();
            let shape = ty.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
            tensors.insert(
                name.to_string(),
                TensorInfo {
                    shape,
                    dtype: onnx_dtype(ty.tensor_type()),
                },
            );
            Ok(())
        })?;
        for (name, data) in feeds {
            tensors.insert(
                name.to_string(),
                TensorInfo {
                    shape: data.shape(),
                    dtype: data.dtype(),
                },
            );
        }
        for t in &model.graph().initializer {
            tensors.entry(t.name.clone()).or_insert(TensorInfo {
                shape: t.dims.clone(),
                dtype: t.data_type,
            });
        }
        Ok(Self { tensors })
    }
}
