//! Where the ONNX Runtime shared library is looked for, in order:
//! `ORT_DYLIB_PATH`, next to the executable, the user cache dir.

use super::RuntimeError;
use std::path::{Path, PathBuf};

/// The ONNX Runtime release Lumen is built and tested against.
pub const ORT_VERSION: &str = "1.32.0";
/// The library's file name as shipped in the official wheel.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.32.0";

/// The places searched, in order of preference.
pub fn candidate_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(explicit) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        paths.push(PathBuf::from(explicit));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        paths.push(exe_dir.join(LIBRARY_FILE));
    }
    if let Some(dirs) = directories::ProjectDirs::from("org", "Lumen", "lumen") {
        paths.push(
            dirs.cache_dir()
                .join("onnxruntime")
                .join(ORT_VERSION)
                .join(LIBRARY_FILE),
        );
    }
    paths
}

/// The first existing candidate. An explicit `ORT_DYLIB_PATH` that does not exist is an error
/// of its own: the user asked for that file, so silently using another would mislead.
pub fn locate_library() -> Result<PathBuf, RuntimeError> {
    if let Some(explicit) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(RuntimeError::LibraryNotFound {
                searched: format!("ORT_DYLIB_PATH={} (no such file)", path.display()),
            })
        };
    }
    let candidates = candidate_paths();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| RuntimeError::LibraryNotFound {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
