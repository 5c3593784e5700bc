//! Makes sure the ONNX Runtime library Lumen loads at run time is on this machine: installed into
//! the user cache dir and copied next to the built binaries. It runs the project's own provisioning
//! script (pinned wheel, sha256-checked). Failure is a warning, not a build error: the app then tells
//! the user exactly what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = manifest_dir.join("../packaging/ort/provision.py");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=LUMEN_SKIP_ORT_PROVISION");
    if std::env::var_os("LUMEN_SKIP_ORT_PROVISION").is_some() {
        return;
    }
    let Some(profile_dir) = profile_dir() else {
        println!(
            "cargo:warning=could not tell the target folder; ONNX Runtime not copied next to the binary"
        );
        return;
    };
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .arg(&script)
        .arg("--copy-to")
        .arg(&profile_dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!(
            "cargo:warning=ONNX Runtime provisioning failed ({s}); run `python3 packaging/ort/provision.py` by hand"
        ),
        Err(e) => {
            println!("cargo:warning=could not run {python} for ONNX Runtime provisioning: {e}")
        }
    }
}

/// target/<profile>, where the `lumen` binary lands: OUT_DIR is target/<profile>/build/<pkg>/out.
fn profile_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    out.ancestors().nth(3).map(Path::to_path_buf)
}
