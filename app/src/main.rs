//! `lumen`: the GUI by default, CLI subcommands for headless work.

use clap::Parser;
use lumen_app::cli::{Cli, StdoutClosed, note_stderr, run};

fn main() -> std::process::ExitCode {
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
