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
    /// Memory: all intermediates are alive at once during this run; see `probe_in_chunks`.
    pub fn probe(model: &Model, feeds: &[(&str, &TensorData)]) -> Result<Self, GraphError> {
        Self::probe_in_chunks(model, feeds, usize::MAX)
    }

    /// Like `probe`, exposing at most `chunk` intermediates per run (one session per run), which
    /// bounds memory for large models (e.g. ViT-H at 1024² with its global attention maps).
    pub fn probe_in_chunks(
        model: &Model,
        feeds: &[(&str, &TensorData)],
        chunk: usize,
    ) -> Result<Self, GraphError> {
        let mut names: Vec<String> = Vec::new();
        for n in &model.graph().node {
            names.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        let mut tensors = HashMap::new();
        for part in names.chunks(chunk.max(1)) {
            probe_part(model, feeds, part, &mut tensors)?;
        }
        if names.is_empty() {
            probe_part(model, feeds, &[], &mut tensors)?;
        }
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

/// One probing run with `names` (and the graph outputs) exposed.
fn probe_part(
    model: &Model,
    feeds: &[(&str, &TensorData)],
    names: &[String],
    tensors: &mut HashMap<String, TensorInfo>,
) -> Result<(), GraphError> {
    let mut probe = model.clone();
    probe.expose_outputs(names)?;
    let config = SessionConfig {
        optimize: false,
        ..SessionConfig::default()
    };
    let mut runner = Runner::new(&probe, "shape probe", &config)?;
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
    })
}
