//! `lumen`: the GUI by default, CLI subcommands for headless work.

use clap::Parser;
use lumen_app::cli::{Cli, StdoutClosed, note_stderr, run};

/// Mesa (the software and most open GPU drivers) keeps a shader cache in the account's real home,
/// whatever `HOME` or `LUMEN_HOME` say; it goes in Lumen's cache folder instead, so a portable
/// install writes nowhere else. A cache folder the user chose for Mesa is kept.
fn keep_driver_cache_in_lumens_folders() {
    const MESA_CACHE: &str = "MESA_SHADER_CACHE_DIR";
    if std::env::var_os(MESA_CACHE).is_some() {
        return;
    }
    if let Some(dirs) = lumen_app::paths::user_dirs() {
        // SAFETY: called from `main` before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(MESA_CACHE, dirs.cache_dir().join("gpu-shaders"));
        }
    }
}

fn main() -> std::process::ExitCode {
    // Before any thread starts: ONNX Runtime must never phone home (see the function).
    lumen_engine::runtime::opt_out_of_telemetry();
    keep_driver_cache_in_lumens_folders();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.chain().any(|e| e.is::<StdoutClosed>()) => {
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            note_stderr(format_args!("lumen: {error:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
