//! Data-free requantization end to end on the starter model: the quick preset makes a bundle
//! the engine loads, which segments real CHAOS liver slices like the FP model; the synthetic set
//! is cached; cancelling leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::{Prompt, SamModel};
use lumen_engine::quant::{Bits, Calibration, Preset, QuantError, RequantizeOptions, requantize};
use lumen_engine::runtime::SessionConfig;
use lumen_tests::{box_prompt, chaos_liver_slice, dice, starter_model_dir};
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
        quantize_decoder: false,
        cache_dir: cache.to_path_buf(),
        session: SessionConfig::default(),
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
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
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
