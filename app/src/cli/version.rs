//! `lumen --version`: what this installation is, without loading ONNX Runtime or a model, so it
//! answers even when those are broken (`lumen doctor` checks them).

use lumen_engine::model::read_manifest;
use lumen_engine::runtime::{LIBRARY_FILE, ORT_VERSION, locate_library};

/// The version and the commit it was built from (`unknown` outside a git checkout).
pub const VERSION_LINE: &str = concat!(
    "lumen ",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LUMEN_COMMIT"),
    ")"
);

pub fn run() -> anyhow::Result<()> {
    outln!("{VERSION_LINE}")?;
    let library = match locate_library() {
        Ok(path) => path.display().to_string(),
        Err(_) => format!("{LIBRARY_FILE} not found; `lumen doctor` says where it looked"),
    };
    outln!("ONNX Runtime {ORT_VERSION}: {library}")?;
    let model_dir = crate::paths::default_model_dir();
    match read_manifest(&model_dir) {
        Ok(manifest) => outln!(
            "default model {} ({}): {}",
            manifest.name,
            manifest.precision.label(),
            model_dir.display()
        )?,
        Err(error) => outln!("default model: cannot be read: {error}")?,
    }
    Ok(())
}
