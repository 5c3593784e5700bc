//! Why a graph operation failed; every message names the file, tensor or node concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("could not read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a valid ONNX model: {reason}")]
    Decode { what: String, reason: String },
    #[error("external data of tensor '{tensor}' ({path}) is unusable: {reason}")]
    ExternalData {
        tensor: String,
        path: PathBuf,
        reason: String,
    },
    #[error("tensor '{tensor}' has element type {dtype}, which is not supported here")]
    UnsupportedType { tensor: String, dtype: String },
    #[error("tensor '{tensor}' is malformed: {reason}")]
    BadTensor { tensor: String, reason: String },
    #[error("the graph has no tensor named '{0}'")]
    UnknownTensor(String),
    #[error("the graph has no node #{0}")]
    UnknownNode(usize),
    #[error(
        "the graph has a cycle or an input nobody produces, at node '{node}' ({op}) input '{input}'"
    )]
    NotADag {
        node: String,
        op: String,
        input: String,
    },
    #[error("the model has no graph")]
    NoGraph,
    #[error("ONNX Runtime failed while {during}: {reason}")]
    Runtime { during: String, reason: String },
}

impl GraphError {
    pub(crate) fn runtime(during: &str, reason: impl std::fmt::Display) -> Self {
        Self::Runtime {
            during: during.to_string(),
            reason: reason.to_string(),
        }
    }
}
