//! `lumen eval`: a model's Dice and IoU per organ on a labelled set (DESIGN.md §4).

use anyhow::Context;
use lumen_datasets::{EvalOptions, Source, evaluate};
use lumen_engine::eval::{DEFAULT_MIN_AREA, ProtocolOptions};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model bundle folder; default: the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A BTCV folder of sabs_caseNN.npz, one .npz case, or the CHAOS CT Data_3D folder.
    #[arg(long)]
    pub data: PathBuf,
    /// BTCV cases, e.g. `00,06,12,18` (default: the model's held-out patients from model.toml), or
    /// CHAOS MR patients, e.g. `2,5,10` (default: all).
    #[arg(long, value_delimiter = ',')]
    pub cases: Option<Vec<String>>,
    /// Evaluate every K-th labelled slice (1 = all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub every: u32,
    /// Also prompt with a jittered box (seeded) and report its Dice.
    #[arg(long)]
    pub jitter: bool,
    /// Seed of the jittered boxes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also run a session of N simulated clicks per organ and report Dice after each click.
    #[arg(long, default_value_t = 0)]
    pub clicks: usize,
    /// Skip organs whose largest component has fewer pixels than this.
    #[arg(long, default_value_t = DEFAULT_MIN_AREA)]
    pub min_area: usize,
    /// ONNX Runtime threads (0 = one per core).
    #[arg(long, default_value_t = 0, value_parser = super::parse::parse_threads)]
    pub threads: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(crate::paths::default_model_dir);
    let source = Source::detect(&args.data, args.cases.as_deref())?;
    let options = EvalOptions {
        protocol: ProtocolOptions {
            min_area: args.min_area,
            jitter: args.jitter,
            seed: args.seed,
            clicks: args.clicks,
        },
        every: args.every as usize,
        threads: args.threads,
    };
    let report = evaluate(&model_dir, &source, &options, &mut |line| {
        super::note_stderr(format_args!("{line}"))
    })?;
    outln!("model {}: {}", report.model, report.data)?;
    out!("{report}")?;
    outln!("{} slices, {:.1} s", report.slices, report.seconds)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot serialize the report")?;
        lumen_annotation::export::write_atomic(path, |w| {
            std::io::Write::write_all(w, json.as_bytes())
        })?;
        outln!("report written to {}", path.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn eval_arguments_parse_and_a_zero_stride_is_refused() {
        let cli = Cli::try_parse_from([
            "lumen", "eval", "--data", "d", "--cases", "00,06", "--every", "4", "--jitter",
        ])
        .unwrap();
        let Some(Command::Eval(args)) = cli.command else {
            panic!("not the eval command");
        };
        assert_eq!(args.cases, Some(vec!["00".to_string(), "06".to_string()]));
        assert_eq!((args.every, args.jitter, args.min_area), (4, true, 20));
        assert!(Cli::try_parse_from(["lumen", "eval", "--data", "d", "--every", "0"]).is_err());
    }
}
