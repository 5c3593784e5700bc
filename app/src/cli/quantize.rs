//! `lumen quantize`: data-free requantization of a model bundle to chosen bit widths.

use anyhow::Context;
use lumen_engine::quant::{
    Bits, Calibration, DEFAULT_MIN_SELF_CHECK_IOU, Preset, Progress, RequantizeOptions,
    reparameterize_by_default, requantize,
};
use lumen_engine::runtime::SessionConfig;
use lumen_engine::synth;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Model bundle to requantize (a quantized one stands for the full-precision bundle it was
    /// made from); default: the default model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder for the new bundle (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Weight bits, 2–8.
    #[arg(long, short = 'w', default_value_t = 8)]
    pub weights: u32,
    /// Activation bits, 2–8, or "float".
    #[arg(long, short = 'a', default_value = "8")]
    pub activations: String,
    /// Synthesis effort: quick, standard or paper.
    #[arg(long, default_value = "standard")]
    pub preset: Preset,
    /// Calibration source for ablations: dfq (default), pse-only, noise, or
    /// real:A.npz,B.npz (a development upper bound on labelled BTCV training cases; the app
    /// never calibrates on scans).
    #[arg(long, default_value = "dfq")]
    pub calibration: String,
    /// Skip the RepQ reparameterization of post-LayerNorm activations (by default it runs
    /// only below 8-bit activations).
    #[arg(long, conflicts_with = "reparam")]
    pub no_reparam: bool,
    /// Reparameterize post-LayerNorm activations at 8 bits too (ablation).
    #[arg(long)]
    pub reparam: bool,
    /// Below 8-bit weights, the fraction of the weights (0–1) that may keep 8 bits: each
    /// layer's low-bit weights are tried alone on the calibration images, and the costliest
    /// per weight stay at 8 bits.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    pub eight_bit_budget: f64,
    /// Synthesize a new calibration set even where the bundle ships one (as the preset
    /// measurements do).
    #[arg(long, conflicts_with = "ship_synthetic")]
    pub synthesize: bool,
    /// First make the preset's synthetic set (or take it from the cache) and ship it inside the
    /// model bundle, recorded in its model.toml, so later requantizations only calibrate.
    #[arg(long)]
    pub ship_synthetic: bool,
    /// Also store the decoder's weights as integers.
    #[arg(long)]
    pub decoder: bool,
    /// Intra-op threads; 0 = one per core.
    #[arg(long, default_value_t = 0, value_parser = super::parse::parse_threads)]
    pub threads: usize,
    /// Write no bundle (and exit non-zero) when the self-check mask IoU against the FP model
    /// is below this, 0–1.
    #[arg(long, value_name = "IOU", default_value_t = DEFAULT_MIN_SELF_CHECK_IOU)]
    pub min_self_check: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses "float" or a bit width.
pub fn parse_activation_bits(text: &str) -> anyhow::Result<Option<u32>> {
    if text.eq_ignore_ascii_case("float") || text.eq_ignore_ascii_case("f") {
        return Ok(None);
    }
    text.parse::<u32>()
        .map(Some)
        .with_context(|| format!("activation bits '{text}' must be 2–8 or 'float'"))
}

/// As many labelled slices as the preset synthesizes images, spread evenly over the cases.
fn real_slices(list: &str, preset: Preset) -> anyhow::Result<Vec<ndarray::Array2<u8>>> {
    let paths: Vec<&str> = list.split(',').filter(|p| !p.is_empty()).collect();
    anyhow::ensure!(!paths.is_empty(), "real: needs at least one .npz file");
    let wanted = preset.synth_config().images;
    let per_case = wanted.div_ceil(paths.len());
    let mut slices = Vec::new();
    for path in paths {
        let volume = lumen_datasets::btcv::load_npz(std::path::Path::new(path))?;
        let labelled = volume.labelled_slices(1);
        let step = (labelled.len() / per_case.max(1)).max(1);
        for &z in labelled.iter().step_by(step).take(per_case) {
            slices.push(volume.image(z).to_owned());
        }
    }
    slices.truncate(wanted);
    Ok(slices)
}

/// Makes the preset's synthetic set for the bundle in `model` (resuming from the cache) and
/// ships it inside the bundle.
fn ship_synthetic(model: &std::path::Path, options: &RequantizeOptions) -> anyhow::Result<()> {
    let bundle = lumen_engine::model::ModelBundle::open(model)?;
    let config = options.preset.synth_config();
    let mut last_line = std::time::Instant::now();
    let set = synth::synthesize(
        &bundle,
        &config,
        &options.cache_dir,
        &options.session,
        &mut |p| {
            if last_line.elapsed().as_secs_f64() >= 1.0 {
                last_line = std::time::Instant::now();
                super::note_stderr(format_args!(
                    "[synthesize] image {} of {}, step {} of {}",
                    p.image + 1,
                    p.images,
                    p.step,
                    p.steps
                ));
            }
            true
        },
    )?;
    let entry = synth::ship(model, &set, &config.key())?;
    super::note_stderr(format_args!(
        "shipped {} synthetic images in {} (sha256 {})",
        entry.images,
        model.join(&entry.path).display(),
        entry.sha256
    ));
    Ok(())
}

pub fn run(args: &QuantizeArgs) -> anyhow::Result<()> {
    let chosen = args
        .model
        .clone()
        .unwrap_or_else(crate::paths::default_model_dir);
    let catalogue = crate::models::list_models(
        &crate::paths::bundled_models_dir(),
        &crate::models::user_models_dir(),
    );
    let model = crate::models::requantization_source(&chosen, &catalogue)?;
    if model != chosen {
        super::note_stderr(format_args!(
            "{} is quantized; requantizing the full-precision {} it was made from",
            chosen.display(),
            model.display()
        ));
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.min_self_check),
        "--min-self-check {} must be a mask IoU from 0 to 1",
        args.min_self_check
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.eight_bit_budget),
        "--eight-bit-budget {} must be a fraction of the weights from 0 to 1",
        args.eight_bit_budget
    );
    let bits = Bits {
        weights: args.weights,
        activations: parse_activation_bits(&args.activations)?,
    };
    // Before the calibration set is read (real:) and long before any synthesis.
    bits.check()?;
    let calibration = match args.calibration.as_str() {
        "dfq" => Calibration::Dfq,
        "pse-only" => Calibration::PseOnly,
        "noise" => Calibration::Noise,
        other => match other.strip_prefix("real:") {
            Some(list) => Calibration::Images(real_slices(list, args.preset)?),
            None => anyhow::bail!(
                "unknown calibration '{other}' (dfq, pse-only, noise, real:A.npz,B.npz)"
            ),
        },
    };
    let options = RequantizeOptions {
        bits,
        preset: args.preset,
        calibration,
        reparameterize: match (args.reparam, args.no_reparam) {
            (true, _) => true,
            (_, true) => false,
            _ => reparameterize_by_default(bits),
        },
        eight_bit_budget: args.eight_bit_budget,
        quantize_decoder: args.decoder,
        cache_dir: crate::paths::synth_cache_dir(),
        use_shipped_synthetic: !args.synthesize,
        session: SessionConfig {
            intra_threads: args.threads,
            ..SessionConfig::default()
        },
        min_self_check_iou: args.min_self_check,
    };
    if args.ship_synthetic {
        anyhow::ensure!(
            options.calibration == Calibration::Dfq,
            "--ship-synthetic ships a DFQ-SAM set; it needs --calibration dfq"
        );
        ship_synthetic(&model, &options)?;
    }
    let cancel = AtomicBool::new(false);
    let mut last_line = std::time::Instant::now();
    let mut show = |p: &Progress| {
        // One line a second at most; the final step of a phase always shows.
        if p.done < p.total && last_line.elapsed().as_secs_f64() < 1.0 {
            return;
        }
        last_line = std::time::Instant::now();
        let eta = p
            .eta_s
            .map_or(String::new(), |s| format!(", about {s:.0} s left"));
        super::note_stderr(format_args!(
            "[{}] {}/{}{eta}: {}",
            p.phase, p.done, p.total, p.detail
        ));
    };
    let report = requantize(&model, &args.out, &options, &mut show, &cancel)
        .with_context(|| format!("requantizing {}", model.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "bundle": report.bundle_dir,
            "weights": args.weights,
            "activations": options.bits.activations,
            "calibration": options.calibration.name(),
            "reparameterized_norms": report.summary.reparameterized_norms,
            "eight_bit_layers": report.summary.eight_bit_layers,
            "quantized_layers": report.summary.emit.quantized_weights,
            "synthetic_set_sha256": report.synthetic_set,
            "synthetic_images": report.synthetic_images,
            "self_check_mask_iou": report.self_check_iou,
            "self_check_prompts": report.self_check_prompts,
            "encoder_bytes": report.encoder_bytes,
            "fp_encoder_bytes": report.fp_encoder_bytes,
            "seconds": report.seconds,
        });
        writeln!(out, "{json:#}")?;
    } else {
        let ratio = report.encoder_bytes as f64 / report.fp_encoder_bytes.max(1) as f64;
        writeln!(out, "wrote {}", report.bundle_dir.display())?;
        writeln!(
            out,
            "encoder {:.2} MB ({:.1}% of FP32), {} layers with integer weights, {} LayerNorms reparameterized",
            report.encoder_bytes as f64 / 1e6,
            100.0 * ratio,
            report.summary.emit.quantized_weights,
            report.summary.reparameterized_norms
        )?;
        writeln!(
            out,
            "self-check: mask IoU {:.4} against the FP model over {} prompts on held-back synthetic images",
            report.self_check_iou, report.self_check_prompts
        )?;
        writeln!(out, "took {:.0} s", report.seconds)?;
    }
    Ok(())
}
