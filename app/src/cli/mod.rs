//! Command-line interface: `lumen` alone opens the GUI; subcommands work headless.

/// `print!` that returns an error instead of panicking when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that returns an error instead of panicking when stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod bench;
mod doctor;
mod eval;
mod info;
mod inspect;
mod parse;
pub mod quantize;
mod segment;
mod version;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "lumen",
    about = "Segment organs in DICOM studies with SAM, offline, on a CPU",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print the version, the commit, the ONNX Runtime library and the default model.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// GUI: the model bundle to use (default: the bundled starter model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// GUI: a folder of DICOM files to open (default: the bundled sample study).
    #[arg(long)]
    pub study: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model bundle's manifest, files and tensor interface.
    Info {
        /// Model bundle folder (model.toml + encoder.onnx + decoder.onnx); default: the bundled model.
        model: Option<PathBuf>,
    },
    /// Open a study folder, DICOM file or NIfTI file as the viewer would, and print the volume
    /// found and every warning, or why it cannot be opened.
    Inspect {
        /// A folder of DICOM files, one DICOM file, or a `.nii` / `.nii.gz` volume.
        path: PathBuf,
    },
    /// Segment one 2D image with a box and/or points and write the mask as PNG.
    Segment(segment::SegmentArgs),
    /// Measure embed and predict latency and peak memory.
    Bench(bench::BenchArgs),
    /// Score a model with box prompts on a labelled set: Dice and IoU per organ (DESIGN.md §4).
    Eval(eval::EvalArgs),
    /// Requantize a model to chosen bit widths without patient data (DFQ-SAM).
    Quantize(quantize::QuantizeArgs),
    /// Check this installation: the ONNX Runtime library, every model's checksums, the CPU,
    /// the user folders and the window libraries, each with its fix.
    Doctor,
}

/// Runs what the command line asked for.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.version {
        return version::run();
    }
    match cli.command {
        None => crate::ui::run_gui(
            cli.model.unwrap_or_else(crate::paths::default_model_dir),
            Some(cli.study.unwrap_or_else(crate::paths::sample_study_dir)),
        ),
        Some(Command::Info { model }) => {
            info::run(&model.unwrap_or_else(crate::paths::default_model_dir))
        }
        Some(Command::Inspect { path }) => inspect::run(&path),
        Some(Command::Segment(args)) => segment::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Quantize(args)) => quantize::run(&args),
        Some(Command::Doctor) => doctor::run(),
    }
}

/// The reader of stdout went away (`lumen info | head`): the rest of the output is not wanted,
/// so `main` ends quietly and successfully, as other command-line tools do.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

/// Writes one line of progress or diagnostics to stderr. Best effort: a closed stderr (`2>&-`,
/// or a reader gone) must not stop the work or turn into `eprintln!`'s panic.
pub fn note_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Writes to stdout, turning a closed pipe into [`StdoutClosed`].
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(e).context("cannot write to stdout"),
        })
}
