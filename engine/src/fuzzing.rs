//! Entry point of the fuzz target (`engine/fuzz/`) and of its regression replay
//! (`tests/tests/fuzz_regressions.rs`). Built only with the `fuzzing` feature.

use crate::model::{MANIFEST_FILE, read_manifest};

/// The bytes as a bundle's `model.toml`: parsed and checked, or refused naming the file.
pub fn manifest_file(data: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join(MANIFEST_FILE), data).map_err(|e| e.to_string())?;
    match read_manifest(dir.path()) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains(MANIFEST_FILE) => Ok(()),
        Err(e) => Err(format!("the error does not name {MANIFEST_FILE}: {e}")),
    }
}
