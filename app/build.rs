//! Makes sure the ONNX Runtime library Lumen loads at run time is on this machine: installed into
//! the user cache dir and copied next to the built binaries. It runs the project's own provisioning
//! script (pinned wheel, sha256-checked). Failure is a warning, not a build error: the app then tells
//! the user exactly what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    record_commit(&manifest_dir);
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

/// Puts the source's commit into `LUMEN_COMMIT` for `lumen --version`: the short hash, with
/// `-modified` when tracked files differ from it, or `unknown` outside a git checkout (a source
/// tarball). Rebuilt when HEAD or the branch it names moves, or the index changes, so an edit
/// not yet staged shows only at the next build that reruns this.
fn record_commit(manifest_dir: &Path) {
    let repo = manifest_dir.join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            // a status must not rewrite the index, which this script watches
            .arg("--no-optional-locks")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let modified = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|changes| !changes.is_empty());
            if modified {
                format!("{hash}-modified")
            } else {
                hash
            }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=LUMEN_COMMIT={commit}");
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        let branch = git(&["symbolic-ref", "-q", "HEAD"]).map(|name| git_dir.join(name));
        // a watched path that does not exist would rerun this script on every build
        for watched in [
            git_dir.join("HEAD"),
            git_dir.join("index"),
            git_dir.join("packed-refs"),
        ]
        .into_iter()
        .chain(branch)
        .filter(|path| path.exists())
        {
            println!("cargo:rerun-if-changed={}", watched.display());
        }
    }
}

/// target/<profile>, where the `lumen` binary lands: OUT_DIR is target/<profile>/build/<pkg>/out.
fn profile_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    out.ancestors().nth(3).map(Path::to_path_buf)
}
