//! Data-free requantization end to end on the starter model: the quick preset makes a bundle
//! the engine loads, which segments real CHAOS liver slices like the FP model; the synthetic set
//! is cached; cancelling leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::{ModelBundle, Prompt, SamModel};
use lumen_engine::quant::{Bits, Calibration, Preset, QuantError, RequantizeOptions, requantize};
use lumen_engine::runtime::SessionConfig;
use lumen_engine::synth;
use lumen_tests::{box_prompt, chaos_liver_slice, dice, starter_model_dir};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

fn options(cache: &std::path::Path, weights: u32, activations: Option<u32>) -> RequantizeOptions {
    RequantizeOptions {
        bits: Bits {
            weights,
            activations,
        },
        preset: Preset::Quick,
        calibration: Calibration::Dfq,
        reparameterize: true,
        eight_bit_budget: 0.0,
        quantize_decoder: false,
        cache_dir: cache.to_path_buf(),
        use_shipped_synthetic: true,
        session: SessionConfig::default(),
        min_self_check_iou: lumen_engine::quant::DEFAULT_MIN_SELF_CHECK_IOU,
    }
}

/// Mean IoU-free agreement: Dice of the quantized model's liver masks against the FP model's
/// and against the hand-drawn labels, on three CHAOS slices prompted with the liver's box.
fn liver_agreement(fp: &SamModel, q: &SamModel) -> (f64, f64, f64) {
    let (mut agree, mut fp_dice, mut q_dice) = (0.0, 0.0, 0.0);
    let slices = [25, 40, 55];
    for index in slices {
        let (hu, label) = chaos_liver_slice(index).unwrap();
        let image = fp.bundle().manifest.intensity.ct.to_u8(hu.view());
        let prompt = Prompt::from_box(box_prompt(label.view()).unwrap());
        let a = fp
            .predict(&fp.embed(image.view()).unwrap(), &prompt)
            .unwrap();
        let b = q.predict(&q.embed(image.view()).unwrap(), &prompt).unwrap();
        agree += dice(a.mask.view(), b.mask.view());
        fp_dice += dice(a.mask.view(), label.view());
        q_dice += dice(b.mask.view(), label.view());
    }
    let n = slices.len() as f64;
    (agree / n, fp_dice / n, q_dice / n)
}

#[test]
fn quick_w8a8_requantization_makes_a_loadable_bundle_that_agrees_with_fp() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let out = work.path().join("w8a8");
    let cancel = AtomicBool::new(false);
    let mut phases = Vec::new();
    let report = requantize(
        &starter_model_dir(),
        &out,
        &options(&cache, 8, Some(8)),
        &mut |p| {
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        },
        &cancel,
    )
    .unwrap();
    assert_eq!(phases, ["synthesize", "calibrate", "self-check"]);
    assert_eq!(report.synthetic_images, 4);
    assert_eq!(report.summary.reparameterized_norms, 16);
    let ratio = report.encoder_bytes as f64 / report.fp_encoder_bytes as f64;
    assert!(ratio <= 0.35, "int8 encoder is {ratio:.3} of FP32");
    assert!(
        report.self_check_iou >= 0.85,
        "self-check mask IoU {:.3}",
        report.self_check_iou
    );

    let fp = SamModel::load(&starter_model_dir(), &SessionConfig::default()).unwrap();
    let q = SamModel::load(&out, &SessionConfig::default()).expect("quantized bundle loads");
    let precision = &q.bundle().manifest.precision;
    assert_eq!(precision.kind, "quantized");
    assert_eq!(precision.details["weight_bits"].as_integer(), Some(8));
    assert_eq!(
        precision.details["synthetic_set_sha256"].as_str(),
        report.synthetic_set.as_deref()
    );
    assert!(precision.details.contains_key("self_check_mask_iou"));
    let (agree, fp_dice, q_dice) = liver_agreement(&fp, &q);
    eprintln!("W8A8 quick: FP↔Q Dice {agree:.4}, FP liver {fp_dice:.4}, Q liver {q_dice:.4}");
    assert!(agree >= 0.95, "W8A8 masks agree with FP at Dice {agree:.3}");
    assert!(
        q_dice >= fp_dice - 0.02,
        "liver Dice {q_dice:.3} vs FP {fp_dice:.3}"
    );

    // The synthetic set is cached: a second run (W4A8) reuses it without synthesizing.
    let mut synthesized = false;
    let report4 = requantize(
        &starter_model_dir(),
        &work.path().join("w4a8"),
        &options(&cache, 4, Some(8)),
        &mut |p| synthesized |= p.phase == "synthesize",
        &cancel,
    )
    .unwrap();
    assert!(!synthesized, "the cached synthetic set was used");
    assert_eq!(report4.synthetic_set, report.synthetic_set);
    let ratio = report4.encoder_bytes as f64 / report4.fp_encoder_bytes as f64;
    assert!(ratio <= 0.2, "int4 encoder is {ratio:.3} of FP32");
    let q4 = SamModel::load(&work.path().join("w4a8"), &SessionConfig::default()).unwrap();
    let (agree4, _, q4_dice) = liver_agreement(&fp, &q4);
    eprintln!("W4A8 quick: FP↔Q Dice {agree4:.4}, liver {q4_dice:.4}");
    assert!(
        agree4 >= 0.85,
        "W4A8 masks agree with FP at Dice {agree4:.3}"
    );

    shipped_set_calibrates_without_synthesis(work.path(), &cache, report.synthetic_set.unwrap());
}

/// The cached set shipped in a copy of the bundle: requantizing it with an empty cache takes
/// the shipped set and synthesizes nothing; a changed image is refused, naming the folder.
fn shipped_set_calibrates_without_synthesis(work: &Path, cache: &Path, hash: String) {
    let bundle = work.join("starter-with-set");
    std::fs::create_dir(&bundle).unwrap();
    for file in std::fs::read_dir(starter_model_dir()).unwrap().flatten() {
        std::fs::copy(file.path(), bundle.join(file.file_name())).unwrap();
    }
    let config = Preset::Quick.synth_config();
    let from_cache = synth::synthesize(
        &ModelBundle::open(&bundle).unwrap(),
        &config,
        cache,
        &SessionConfig::default(),
        &mut |_| panic!("the set is in the cache: no synthesis"),
    )
    .unwrap();
    let entry = synth::ship(&bundle, &from_cache, &config.key()).unwrap();
    assert_eq!(entry.sha256, hash);
    let manifest = ModelBundle::open(&bundle).unwrap().manifest;
    assert_eq!(
        manifest.synthetic.as_ref(),
        Some(&entry),
        "model.toml records it"
    );

    let empty_cache = work.join("empty-cache");
    let cancel = AtomicBool::new(false);
    let mut synthesized = false;
    let report = requantize(
        &bundle,
        &work.join("w8a8-from-shipped"),
        &options(&empty_cache, 8, Some(8)),
        &mut |p| synthesized |= p.phase == "synthesize",
        &cancel,
    )
    .unwrap();
    assert!(!synthesized, "the shipped set was used");
    assert_eq!(report.synthetic_set.as_deref(), Some(hash.as_str()));
    assert!(
        !empty_cache.join(manifest.embedding_id()).exists(),
        "nothing cached"
    );
    let made = ModelBundle::open(&work.join("w8a8-from-shipped")).unwrap();
    assert_eq!(
        made.manifest.synthetic, None,
        "the set stays with the FP bundle"
    );

    let images = bundle.join(&entry.path);
    std::fs::copy(images.join("image_000.png"), images.join("image_001.png")).unwrap();
    let err = requantize(
        &bundle,
        &work.join("w8a8-damaged"),
        &options(&empty_cache, 8, Some(8)),
        &mut |_| {},
        &cancel,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("do not match the sha256"), "{err}");
    assert!(err.contains(&images.display().to_string()), "{err}");
}

#[test]
fn cancelling_leaves_no_bundle_behind() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("cancelled");
    let cancel = AtomicBool::new(false);
    let mut reports = 0;
    let result = requantize(
        &starter_model_dir(),
        &out,
        &options(&work.path().join("cache"), 8, Some(8)),
        &mut |_| {
            reports += 1;
            if reports == 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    );
    assert!(matches!(result, Err(QuantError::Cancelled)), "{result:?}");
    assert!(!out.exists());
    let leftovers = partial_folders(work.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_existing_output_folder_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let err = requantize(
        &starter_model_dir(),
        work.path(),
        &options(&work.path().join("cache"), 8, Some(8)),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

/// Hidden entries: every temporary file or folder of Lumen's writes (`fsio`) starts with a dot.
fn partial_folders(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect()
}

#[test]
fn a_self_check_below_the_floor_writes_no_bundle() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("never");
    let mut options = options(&work.path().join("cache"), 8, Some(8));
    // Noise calibration: no synthesis, the quickest run that reaches the self-check. No
    // quantized model reaches IoU 1.01, so the floor must stop it.
    options.calibration = Calibration::Noise;
    options.min_self_check_iou = 1.01;
    let mut phases = Vec::new();
    let result = requantize(
        &starter_model_dir(),
        &out,
        &options,
        &mut |p| {
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        },
        &AtomicBool::new(false),
    );
    let Err(QuantError::SelfCheck {
        iou,
        floor,
        prompts,
    }) = &result
    else {
        panic!("{result:?}");
    };
    eprintln!("W8A8 noise quick: self-check IoU {iou:.4} over {prompts} prompts");
    assert_eq!(*floor, 1.01);
    assert!(*prompts > 0 && *iou > 0.5, "a sound W8A8 model: {iou}");
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("below the floor of 1.01") && message.contains("no bundle was written"),
        "{message}"
    );
    assert_eq!(phases.last(), Some(&"self-check"), "{phases:?}");
    assert!(!out.exists(), "no bundle at {}", out.display());
    assert!(partial_folders(work.path()).is_empty());
}

#[test]
fn bad_arguments_fail_before_any_synthesis() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("q");
    let cache = work.path().join("cache");
    let bad_bits = options(&cache, 9, Some(8));
    let bad_activations = options(&cache, 8, Some(1));
    let mut nan_floor = options(&cache, 8, Some(8));
    nan_floor.min_self_check_iou = f64::NAN;
    let mut one_image = options(&cache, 8, Some(8));
    one_image.calibration = Calibration::Images(vec![ndarray::Array2::zeros((64, 64))]);
    for (options, expected) in [
        (&bad_bits, "weights take 2–8 bits"),
        (&bad_activations, "weights take 2–8 bits"),
        (&nan_floor, "self-check floor must be a finite mask IoU"),
        (&one_image, "at least 2 are needed"),
    ] {
        let mut reports = 0;
        let err = requantize(
            &starter_model_dir(),
            &out,
            options,
            &mut |_| reports += 1,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(matches!(err, QuantError::Argument(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(reports, 0, "{expected}: no work was started");
        assert!(!out.exists() && !cache.exists());
        assert!(partial_folders(work.path()).is_empty());
    }
}
