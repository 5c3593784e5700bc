//! Where Lumen finds its bundled assets and keeps its per-user files.

use std::path::PathBuf;

/// The bundled assets folder: `LUMEN_ASSETS`, else `assets/` next to the executable (a portable
/// bundle), else the source tree's `assets/` (a `cargo run` from a clone).
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LUMEN_ASSETS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("assets")));
    match beside_exe {
        Some(dir) if dir.is_dir() => dir,
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("assets"),
    }
}

/// Lumen's per-user folders (config, cache, local data), if the platform has a home.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "Lumen", "lumen")
}

/// The per-user cache of synthetic calibration sets (requantization).
pub fn synth_cache_dir() -> PathBuf {
    project_dirs()
        .map(|d| d.cache_dir().join("synthetic"))
        .unwrap_or_else(|| std::env::temp_dir().join("lumen-synthetic"))
}

/// The default model bundle: the project's own starter model.
pub fn default_model_dir() -> PathBuf {
    assets_dir().join("models").join("ct-starter")
}

/// The bundled sample study (a 20-slice abdominal CT).
pub fn sample_study_dir() -> PathBuf {
    assets_dir().join("sample").join("totalsegmentator-ct")
}

/// `name` with everything but ASCII letters, digits, '-' and '_' replaced by '_', for file names.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
