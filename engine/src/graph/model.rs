//! A loaded ONNX model: reading and writing files, external data, initializers, opsets.

use super::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use super::{GraphError, TensorData};
use prost::Message;
use std::path::Path;

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// An ONNX model held in memory with all tensor data inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub proto: ModelProto,
}

impl Model {
    /// An empty model with one graph, importing the default domain at `opset`.
    pub fn new(graph_name: &str, opset: i64) -> Self {
        Self {
            proto: ModelProto {
                ir_version: 8,
                producer_name: "lumen".into(),
                opset_import: vec![OperatorSetIdProto {
                    domain: String::new(),
                    version: opset,
                }],
                graph: Some(GraphProto {
                    name: graph_name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    /// Reads a model file; tensors stored in external data files (beside the model) are read in.
    pub fn load(path: &Path) -> Result<Self, GraphError> {
        let bytes = std::fs::read(path).map_err(|source| GraphError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut model = Self::from_bytes(&bytes, &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        model.inline_external_data(dir)?;
        Ok(model)
    }

    /// Decodes a serialized model; `what` names it in errors. External data is not resolved.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, GraphError> {
        let proto = ModelProto::decode(bytes).map_err(|e| GraphError::Decode {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        if proto.graph.is_none() {
            return Err(GraphError::Decode {
                what: what.to_string(),
                reason: "it has no graph".into(),
            });
        }
        Ok(Self { proto })
    }

    /// The serialized model (what `load_session_from_memory` takes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Writes the model with all data inline, atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), GraphError> {
        write_atomic(path, &self.to_bytes())
    }

    /// Writes the model with every initializer of at least `threshold` bytes moved to one
    /// external data file `data_file` in the same folder (needed for models over 2 GB).
    pub fn save_with_external_data(
        &self,
        path: &Path,
        data_file: &str,
        threshold: usize,
    ) -> Result<(), GraphError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut proto = self.proto.clone();
        let mut data = Vec::new();
        if let Some(graph) = proto.graph.as_mut() {
            for t in &mut graph.initializer {
                if t.raw_data.len() < threshold || t.raw_data.is_empty() {
                    continue;
                }
                // 64-byte alignment lets readers map the file.
                while data.len() % 64 != 0 {
                    data.push(0);
                }
                let offset = data.len();
                data.extend_from_slice(&t.raw_data);
                let entry = |k: &str, v: String| StringStringEntryProto {
                    key: k.into(),
                    value: v,
                };
                t.external_data = vec![
                    entry("location", data_file.to_string()),
                    entry("offset", offset.to_string()),
                    entry("length", t.raw_data.len().to_string()),
                ];
                t.data_location = EXTERNAL;
                t.raw_data = Vec::new();
            }
        }
        write_atomic(&dir.join(data_file), &data)?;
        write_atomic(path, &proto.encode_to_vec())
    }

    fn inline_external_data(&mut self, dir: &Path) -> Result<(), GraphError> {
        let Some(graph) = self.proto.graph.as_mut() else {
            return Ok(());
        };
        for t in &mut graph.initializer {
            if t.data_location == EXTERNAL {
                read_external(t, dir)?;
            }
        }
        Ok(())
    }

    pub fn graph(&self) -> &GraphProto {
        // `from_bytes` and `new` guarantee a graph; an empty one stands in otherwise.
        static EMPTY: std::sync::OnceLock<GraphProto> = std::sync::OnceLock::new();
        self.proto
            .graph
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(GraphProto::default))
    }

    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto.graph.get_or_insert_with(GraphProto::default)
    }

    /// The opset version of the default ONNX domain (0 when not imported).
    pub fn opset(&self) -> i64 {
        self.proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version)
    }

    /// An initializer's values. Graph inputs that shadow an initializer are still initializers here.
    pub fn initializer(&self, name: &str) -> Result<TensorData, GraphError> {
        let t = self
            .graph()
            .initializer
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GraphError::UnknownTensor(name.to_string()))?;
        TensorData::from_proto(t)
    }

    pub fn has_initializer(&self, name: &str) -> bool {
        self.graph().initializer.iter().any(|t| t.name == name)
    }

    /// Adds an initializer or replaces the one of the same name.
    pub fn set_initializer(&mut self, name: &str, value: &TensorData) {
        let proto = value.to_proto(name);
        let g = self.graph_mut();
        match g.initializer.iter_mut().find(|t| t.name == name) {
            Some(t) => *t = proto,
            None => g.initializer.push(proto),
        }
    }

    /// Removes an initializer; returns whether there was one.
    pub fn remove_initializer(&mut self, name: &str) -> bool {
        let g = self.graph_mut();
        let before = g.initializer.len();
        g.initializer.retain(|t| t.name != name);
        g.initializer.len() != before
    }
}

fn read_external(t: &mut TensorProto, dir: &Path) -> Result<(), GraphError> {
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.clone())
    };
    let location = get("location").unwrap_or_default();
    let path = dir.join(&location);
    let fail = |reason: String| GraphError::ExternalData {
        tensor: t.name.clone(),
        path: path.clone(),
        reason,
    };
    if location.is_empty() || Path::new(&location).is_absolute() || location.contains("..") {
        return Err(fail(format!(
            "location '{location}' must be a file name relative to the model's folder"
        )));
    }
    let parse = |k: &str| -> Result<Option<usize>, GraphError> {
        get(k)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| fail(format!("{k} '{v}' is not a number")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
    let end = match length {
        Some(l) => offset.saturating_add(l),
        None => bytes.len(),
    };
    let slice = bytes.get(offset..end).ok_or_else(|| {
        fail(format!(
            "bytes {offset}..{end} are past the end of the file ({} bytes)",
            bytes.len()
        ))
    })?;
    t.raw_data = slice.to_vec();
    t.data_location = 0;
    t.external_data.clear();
    Ok(())
}

/// Writes `bytes` over `path` all or nothing (`crate::fsio`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), GraphError> {
    crate::fsio::write_bytes(path, bytes).map_err(|e| GraphError::Io {
        path: e.path,
        source: e.source,
    })
}
