//! Errors of loading and running a model. Each names the file (or prompt) and the reason.

use crate::runtime::RuntimeError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("model file {path} is missing")]
    MissingFile { path: PathBuf },
    #[error("model file {path} is not a regular file: {what}")]
    NotAFile { path: PathBuf, what: String },
    #[error("model file {path} could not be read: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "model file {path} is corrupt or not the file the manifest names: sha256 {actual}, manifest says {expected}"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("model file {path} does not follow the SAM contract: {reason}")]
    Contract { path: PathBuf, reason: String },
    #[error("invalid prompt: {0}")]
    Prompt(String),
    #[error("invalid image: {0}")]
    Image(String),
    #[error("running {path} failed: {reason}")]
    Inference { path: PathBuf, reason: String },
}
