//! Shared helpers for Lumen's end-to-end tests: where the real data lives.

use std::path::PathBuf;

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `../shared/data` beside the repository, where the real medical test data lives.
pub fn shared_data() -> PathBuf {
    repo_root().join("..").join("shared").join("data")
}
