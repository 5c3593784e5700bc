//! `requantize`: a model bundle in, a quantized model bundle out, without patient data.
//! Synthesize (or load the cached) calibration set → calibrate and reparameterize → emit →
//! self-check against the FP model → write the bundle atomically.

use super::record::{CLICK_DECODER_FILE, quantized_manifest, write_manifest};
use super::{
    Calibration, GraphBits, GraphSummary, Progress, QuantError, RequantizeOptions,
    RequantizeReport, io_error, quantize_graph,
};
use crate::graph::{Model, TensorData};
use crate::model::{InputRecipe, ModelBundle, Prompt, SamModel, encoder_input};
use crate::runtime::SessionConfig;
use crate::synth::{self, Rng, SyntheticSet};
use ndarray::Array2;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Reports progress with an ETA per phase and turns the cancel flag into an error.
struct Reporter<'a> {
    sink: &'a mut dyn FnMut(&Progress),
    cancel: &'a AtomicBool,
    phase: &'static str,
    started: Instant,
}

impl Reporter<'_> {
    fn phase(&mut self, phase: &'static str) {
        self.phase = phase;
        self.started = Instant::now();
    }
    fn report(&mut self, done: usize, total: usize, detail: String) -> bool {
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta_s =
            (done > 0 && total >= done).then(|| elapsed / done as f64 * (total - done) as f64);
        (self.sink)(&Progress {
            phase: self.phase,
            done,
            total,
            eta_s,
            detail,
        });
        !self.cancel.load(Ordering::Relaxed)
    }
    fn check(&self) -> Result<(), QuantError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(QuantError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Makes a quantized copy of the bundle in `model_dir` at `out_dir` (which must not exist).
/// Nothing is left at `out_dir` unless it succeeds, and it fails when the self-check is below
/// `options.min_self_check_iou`. The arguments are checked before any synthesis.
pub fn requantize(
    model_dir: &Path,
    out_dir: &Path,
    options: &RequantizeOptions,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<RequantizeReport, QuantError> {
    let started = Instant::now();
    let bundle = check_arguments(model_dir, out_dir, options)?;
    // The bundle is written into a temporary folder made first, so an unwritable destination
    // fails before minutes of synthesis, and renamed into place only once it passed its check.
    let mut made = None;
    let result = crate::fsio::write_folder(out_dir, |tmp| {
        let mut reporter = Reporter {
            sink: progress,
            cancel,
            phase: "synthesize",
            started: Instant::now(),
        };
        made = Some(make_bundle(&bundle, tmp, options, &mut reporter)?);
        Ok::<(), QuantError>(())
    });
    let made = result
        .and_then(|()| made.ok_or_else(|| QuantError::Bundle("no bundle was made".into())))?;
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    Ok(RequantizeReport {
        bundle_dir: out_dir.to_path_buf(),
        summary: made.summary,
        synthetic_images: made.images,
        synthetic_set: made.synthetic_set,
        self_check_iou: made.iou,
        self_check_prompts: made.prompts,
        encoder_bytes: size(&out_dir.join("encoder.onnx")),
        fp_encoder_bytes: size(&bundle.encoder_path),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Everything `requantize` can check before it starts working: the bit widths, the floor, the
/// destination, the model bundle (manifest and checksums) and the calibration images.
fn check_arguments(
    model_dir: &Path,
    out_dir: &Path,
    options: &RequantizeOptions,
) -> Result<ModelBundle, QuantError> {
    options.bits.check()?;
    if !options.min_self_check_iou.is_finite() {
        return Err(QuantError::Argument(format!(
            "the self-check floor must be a finite mask IoU, found {}",
            options.min_self_check_iou
        )));
    }
    // symlink_metadata: a dangling link is taken too
    if let Ok(meta) = std::fs::symlink_metadata(out_dir) {
        let what = if meta.is_dir() { "folder" } else { "file" };
        return Err(QuantError::Argument(format!(
            "{} already exists (a {what}); choose a new folder for the quantized model",
            out_dir.display()
        )));
    }
    if out_dir.file_name().is_none() {
        return Err(QuantError::Argument(format!(
            "{} does not name a folder for the quantized model",
            out_dir.display()
        )));
    }
    let bundle = ModelBundle::open(model_dir)?;
    let precision = &bundle.manifest.precision;
    if precision.is_quantized() {
        return Err(QuantError::Argument(format!(
            "{} is already quantized ({}, made from '{}'); requantize its full-precision bundle",
            model_dir.display(),
            precision.label(),
            precision.detail("base_model").unwrap_or("another model")
        )));
    }
    if let Calibration::Images(images) = &options.calibration {
        if images.len() < 2 {
            return Err(QuantError::Argument(format!(
                "{} calibration images given; at least 2 are needed (one is held back for the \
                 self-check)",
                images.len()
            )));
        }
        if let Some(empty) = images.iter().position(|i| i.is_empty()) {
            return Err(QuantError::Argument(format!(
                "calibration image {} is empty",
                empty + 1
            )));
        }
    }
    Ok(bundle)
}

/// What `make_bundle` made, for the report.
struct Made {
    summary: GraphSummary,
    images: usize,
    synthetic_set: Option<String>,
    iou: f64,
    prompts: usize,
}

/// Synthesizes, calibrates, emits into `tmp` and self-checks.
fn make_bundle(
    bundle: &ModelBundle,
    tmp: &Path,
    options: &RequantizeOptions,
    reporter: &mut Reporter,
) -> Result<Made, QuantError> {
    let (images, synthetic) = calibration_images(bundle, options, reporter)?;
    reporter.check()?;
    // The last images are held back for the self-check.
    let held = (images.len() / 5)
        .max(1)
        .min(images.len().saturating_sub(1));
    let (calib, check) = images.split_at(images.len() - held);
    let recipe = InputRecipe::of(&bundle.manifest);
    let feeds = calib
        .iter()
        .map(|img| {
            let (x, _) = encoder_input(img.view(), &recipe)?;
            Ok(vec![("image".to_string(), TensorData::F32(x.into_dyn()))])
        })
        .collect::<Result<Vec<_>, QuantError>>()?;

    reporter.phase("calibrate");
    let encoder = Model::load(&bundle.encoder_path)?;
    let (q_encoder, summary) = quantize_graph(
        &encoder,
        &feeds,
        options.bits,
        options.reparameterize,
        options.eight_bit_budget,
        &options.session,
        &mut |stage, d, t| {
            if reporter.phase != stage {
                reporter.phase(stage);
            }
            let what = if stage == "calibrate" {
                "calibration image"
            } else {
                "layer"
            };
            reporter.report(d, t, format!("{what} {d} of {t}"))
        },
    )?;
    reporter.check()?;

    reporter.phase("emit");
    q_encoder.save(&tmp.join("encoder.onnx"))?;
    if options.quantize_decoder {
        let decoder = Model::load(&bundle.decoder_path)?;
        let feeds = decoder_feeds(bundle, &options.session, calib)?;
        let bits = GraphBits {
            weights: options.bits.weights,
            activations: None,
        };
        let (q, _) = quantize_graph(
            &decoder,
            &feeds,
            bits,
            false,
            0.0,
            &options.session,
            &mut |_, _, _| true,
        )?;
        q.save(&tmp.join("decoder.onnx"))?;
    } else {
        std::fs::copy(&bundle.decoder_path, tmp.join("decoder.onnx"))
            .map_err(|e| io_error(&bundle.decoder_path, e))?;
    }
    // the click decoder travels as it is: without it the copy would lose its clicks
    if let Some(click) = &bundle.click_decoder_path {
        std::fs::copy(click, tmp.join(CLICK_DECODER_FILE)).map_err(|e| io_error(click, e))?;
    }
    let manifest = quantized_manifest(bundle, options, &summary, synthetic.as_ref(), tmp)?;
    write_manifest(tmp, &manifest)?;
    reporter.check()?;

    reporter.phase("self-check");
    let (iou, prompts) = self_check(&bundle.dir, tmp, check, &options.session, reporter)?;
    // a NaN IoU (no ordering) fails too
    let passed = matches!(
        iou.partial_cmp(&options.min_self_check_iou),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    );
    if prompts == 0 || !passed {
        return Err(QuantError::SelfCheck {
            iou,
            floor: options.min_self_check_iou,
            prompts,
        });
    }
    let mut manifest = manifest;
    manifest.precision.details.insert(
        "self_check_mask_iou".into(),
        toml::Value::Float(round4(iou)),
    );
    manifest.precision.details.insert(
        "self_check_prompts".into(),
        toml::Value::Integer(prompts as i64),
    );
    write_manifest(tmp, &manifest)?;
    reporter.check()?;
    Ok(Made {
        summary,
        images: images.len(),
        synthetic_set: synthetic.map(|s| s.hash),
        iou,
        prompts,
    })
}

/// The calibration images for the chosen source, and the synthetic set when there is one.
fn calibration_images(
    bundle: &ModelBundle,
    options: &RequantizeOptions,
    reporter: &mut Reporter,
) -> Result<(Vec<Array2<u8>>, Option<SyntheticSet>), QuantError> {
    let mut config = options.preset.synth_config();
    let s = bundle.manifest.input_size as usize;
    match &options.calibration {
        Calibration::Images(images) => Ok((images.clone(), None)),
        Calibration::Noise => {
            let mut rng = Rng::new(config.seed);
            let frame_mean = bundle.manifest.normalize.mean.iter().sum::<f32>() / 3.0;
            let frame_std = bundle.manifest.normalize.std.iter().sum::<f32>() / 3.0;
            let images = (0..config.images)
                .map(|_| {
                    Array2::from_shape_fn((s, s), |_| {
                        (frame_mean + frame_std * rng.normal() as f32).clamp(0.0, 255.0) as u8
                    })
                })
                .collect();
            Ok((images, None))
        }
        Calibration::Dfq
            if options.use_shipped_synthetic
                && let Some(set) = synth::load_shipped(bundle)? =>
        {
            Ok((set.images.clone(), Some(set)))
        }
        Calibration::Dfq | Calibration::PseOnly => {
            if options.calibration == Calibration::PseOnly {
                config.weights.label = 0.0;
            }
            let total = config.images * config.steps;
            let set = synth::synthesize(
                bundle,
                &config,
                &options.cache_dir,
                &options.session,
                &mut |p| {
                    let done = p.image * p.steps + p.step;
                    reporter.report(
                        done,
                        total,
                        format!(
                            "image {} of {}, step {} of {}: entropy {:.3}, label loss {:.3}, TV {:.3}",
                            p.image + 1,
                            p.images,
                            p.step,
                            p.steps,
                            p.entropy,
                            p.label_loss,
                            p.tv
                        ),
                    )
                },
            )?;
            Ok((set.images.clone(), Some(set)))
        }
    }
}

/// Decoder inputs for shape probing and calibration: FP embeddings of the calibration images
/// with a centred box prompt.
fn decoder_feeds(
    bundle: &ModelBundle,
    session: &SessionConfig,
    images: &[Array2<u8>],
) -> Result<Vec<Vec<(String, TensorData)>>, QuantError> {
    let model = SamModel::load(&bundle.dir, session)?;
    let s = bundle.manifest.input_size as f32;
    let (lh, lw) = model.low_res_size();
    images
        .iter()
        .take(2)
        .map(|img| {
            let e = model.embed(img.view())?;
            Ok(vec![
                (
                    "image_embeddings".to_string(),
                    TensorData::F32(e.tensor.into_dyn()),
                ),
                (
                    "point_coords".to_string(),
                    TensorData::F32(
                        ndarray::arr3(&[[[0.3 * s, 0.3 * s], [0.7 * s, 0.7 * s]]]).into_dyn(),
                    ),
                ),
                (
                    "point_labels".to_string(),
                    TensorData::F32(ndarray::arr2(&[[2.0f32, 3.0]]).into_dyn()),
                ),
                (
                    "mask_input".to_string(),
                    TensorData::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 1, lh, lw]))),
                ),
                (
                    "has_mask_input".to_string(),
                    TensorData::F32(ndarray::arr1(&[0.0f32]).into_dyn()),
                ),
                (
                    "orig_im_size".to_string(),
                    TensorData::F32(ndarray::arr1(&[s, s]).into_dyn()),
                ),
            ])
        })
        .collect()
}

/// Mean mask IoU between the FP and the quantized model on held-back images, each prompted
/// with boxes around random regions (a centred one and jittered ones).
fn self_check(
    fp_dir: &Path,
    q_dir: &Path,
    images: &[Array2<u8>],
    session: &SessionConfig,
    reporter: &mut Reporter,
) -> Result<(f64, usize), QuantError> {
    let fp = SamModel::load(fp_dir, session)?;
    let q = SamModel::load(q_dir, session)?;
    let mut rng = Rng::new(7);
    let mut ious = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let (h, w) = img.dim();
        let (ef, eq) = (fp.embed(img.view())?, q.embed(img.view())?);
        for _ in 0..4 {
            let (cx, cy) = (
                rng.range(0.3, 0.7) * w as f64,
                rng.range(0.3, 0.7) * h as f64,
            );
            let (bw, bh) = (
                rng.range(0.1, 0.4) * w as f64,
                rng.range(0.1, 0.4) * h as f64,
            );
            let prompt = Prompt::from_box(crate::model::BoxPrompt {
                x0: (cx - bw / 2.0) as f32,
                y0: (cy - bh / 2.0) as f32,
                x1: (cx + bw / 2.0) as f32,
                y1: (cy + bh / 2.0) as f32,
            });
            let a = fp.predict(&ef, &prompt)?;
            let b = q.predict(&eq, &prompt)?;
            ious.push(crate::eval::iou(a.mask.view(), b.mask.view()));
        }
        if !reporter.report(i + 1, images.len(), format!("held-back image {}", i + 1)) {
            return Err(QuantError::Cancelled);
        }
    }
    let n = ious.len();
    Ok((ious.iter().sum::<f64>() / n.max(1) as f64, n))
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
