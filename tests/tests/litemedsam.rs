//! The bundled LiteMedSAM on real slices: its preprocessing against the official Python one, and
//! box and click prompts on CT and MR livers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::eval::next_click;
use lumen_engine::model::{InputRecipe, Prompt, SamModel, encoder_input};
use lumen_engine::runtime::SessionConfig;
use lumen_tests::{
    box_prompt, chaos_liver_slice, chaos_mr_liver_slice, dice, litemedsam_model_dir,
    litemedsam_w8a8_model_dir, reference_python, repo_root, shared_data,
};
use ndarray::Array2;
use std::sync::OnceLock;

fn model() -> &'static SamModel {
    static MODEL: OnceLock<SamModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        SamModel::load(&litemedsam_model_dir(), &SessionConfig::default())
            .expect("the LiteMedSAM bundle loads")
    })
}

/// Real 8-bit slices of every size the shared data has: 512² CT (an exact 2× reduction), BTCV
/// 257² (a fractional one), 256² MR (none), and a 122×101 TotalSegmentator CT (an enlargement),
/// also turned on its side (101×122).
fn slices() -> Vec<(String, Array2<u8>)> {
    let manifest = &model().bundle().manifest;
    let mut out = Vec::new();
    for index in [20, 40] {
        let (hu, _) = chaos_liver_slice(index).unwrap();
        out.push((
            format!("CHAOS CT {index}"),
            manifest.intensity.ct.to_u8(hu.view()),
        ));
    }
    let btcv =
        lumen_datasets::btcv::load_npz(&shared_data().join("btcv_abdomen_ct/sabs_case02.npz"))
            .unwrap();
    let z = btcv.images.dim().0 / 2;
    let slice = btcv.images.index_axis(ndarray::Axis(0), z).to_owned();
    out.push((format!("BTCV case 02 z{z}"), slice));
    let (mr, _) = chaos_mr_liver_slice(2, &manifest.intensity.mr).unwrap();
    out.push(("CHAOS MR 2".into(), mr));
    let ts =
        lumen_study::load_nifti(shared_data().join("totalsegmentator/example_ct.nii.gz")).unwrap();
    let [nx, ny, nz] = ts.dims;
    let plane = nx * ny;
    let hu = Array2::from_shape_vec(
        (ny, nx),
        ts.voxels[nz / 2 * plane..(nz / 2 + 1) * plane].to_vec(),
    )
    .unwrap();
    let grey = manifest.intensity.ct.to_u8(hu.view());
    // taller than wide too: OpenCV's enlargement rounds the last pixels of a 212-wide row apart
    out.push(("TotalSegmentator CT, turned".into(), grey.t().to_owned()));
    out.push(("TotalSegmentator CT".into(), grey));
    out
}

/// The official preprocessing's output for `grey` (packaging/model/litemedsam/reference.py).
fn reference_input(grey: &Array2<u8>) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.u8"), dir.path().join("out.f32"));
    std::fs::write(&input, grey.iter().copied().collect::<Vec<u8>>()).unwrap();
    let (h, w) = grey.dim();
    let status = std::process::Command::new(reference_python().unwrap())
        .arg(repo_root().join("packaging/model/litemedsam/reference.py"))
        .args(["preprocess", &h.to_string(), &w.to_string()])
        .args([&input, &output])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn preprocessing_matches_the_official_python_on_real_slices() {
    let recipe = InputRecipe::of(&model().bundle().manifest);
    for (name, grey) in slices() {
        let (ours, _) = encoder_input(grey.view(), &recipe).unwrap();
        let reference = reference_input(&grey);
        assert_eq!(ours.len(), reference.len(), "{name}");
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (h, w) = grey.dim();
        assert!(worst <= 1e-4, "{name} ({w}×{h}): max |Δ| {worst}");
    }
}

/// Livers on real slices: CHAOS CT (3 levels) and CHAOS T2 MR (2 patients the click fine-tune
/// held out, neither the W8A8 test's calibration slice), 8-bit by the model's own intensity rules,
/// with their reference masks.
fn liver_cases() -> Vec<(String, Array2<u8>, Array2<bool>)> {
    let manifest = &model().bundle().manifest;
    let mut cases = Vec::new();
    for index in [25, 40, 55] {
        let (hu, label) = chaos_liver_slice(index).unwrap();
        cases.push((
            format!("CHAOS CT {index}"),
            manifest.intensity.ct.to_u8(hu.view()),
            label,
        ));
    }
    for patient in [5, 10] {
        let (mr, labels) = chaos_mr_liver_slice(patient, &manifest.intensity.mr).unwrap();
        cases.push((format!("CHAOS MR {patient}"), mr, labels.mapv(|l| l == 1)));
    }
    cases
}

#[test]
fn a_box_on_the_liver_segments_it_on_ct_and_on_mr() {
    for (name, image, label) in liver_cases() {
        let embedding = model().embed(image.view()).unwrap();
        let prompt = Prompt::from_box(box_prompt(label.view()).unwrap());
        let prediction = model().predict(&embedding, &prompt).unwrap();
        assert_eq!(
            prediction.chosen, 0,
            "a lone box takes the single-mask output"
        );
        let d = dice(prediction.mask.view(), label.view());
        assert!(d >= 0.9, "{name}: liver Dice {d:.3} < 0.9");
    }
}

/// LiteMedSAM was trained on boxes only (its own decoder gives an empty mask for one click on a
/// liver); the bundle's click decoder (packaging/model/litemedsam/finetune.py) answers every
/// prompt with a click. The click goes where `lumen eval` puts the first one: the liver's most
/// interior pixel. On held-out BTCV patients, the fine-tune's own kind of data, one click finds
/// most of the liver and covers the clicked point.
#[test]
fn clicks_go_to_the_click_decoder_and_segment_a_held_out_liver() {
    assert!(model().bundle().click_decoder_path.is_some());
    for patient in ["sabs_case00", "sabs_case06"] {
        let path = shared_data().join(format!("btcv_abdomen_ct/{patient}.npz"));
        let case = lumen_datasets::btcv::load_npz(&path).unwrap();
        let z = (0..case.labels.dim().0)
            .max_by_key(|&z| case.label(z).iter().filter(|l| **l == 6).count())
            .unwrap();
        let liver = case.label(z).mapv(|l| l == 6);
        let embedding = model().embed(case.image(z)).unwrap();
        let click = next_click(None, liver.view()).unwrap();
        let mut prompt = Prompt::default();
        prompt.points.push(click);
        let one = model().predict(&embedding, &prompt).unwrap();
        assert_eq!(
            one.chosen, 0,
            "{patient}: a lone click takes the single-mask output"
        );
        assert!(
            one.mask[[click.y as usize, click.x as usize]],
            "{patient}: the mask covers the click at ({}, {})",
            click.x,
            click.y
        );
        // the goal for one click is 0.88, not reached yet on every patient
        let d = dice(one.mask.view(), liver.view());
        assert!(d >= 0.7, "{patient}: one click, liver Dice {d:.3}");
    }
}

/// The click decoder was fine-tuned on BTCV slices in LiteMedSAM's CT window (WL 40 / WW 400, the
/// one the app and CHAOS use) and augmented, and on 8 CHAOS MR patients; the first, in BTCV's
/// window only, gave a small blob for one click on the CHAOS CT liver. One click on the liver's
/// most interior pixel, on CHAOS CT (never seen) and on CHAOS MR patients it held out.
#[test]
fn one_click_finds_the_liver_on_ct_and_mr_slices_the_fine_tune_never_saw() {
    let mut dices = Vec::new();
    for (name, image, label) in liver_cases() {
        let embedding = model().embed(image.view()).unwrap();
        let click = next_click(None, label.view()).unwrap();
        let mut prompt = Prompt::default();
        prompt.points.push(click);
        let one = model().predict(&embedding, &prompt).unwrap();
        let d = dice(one.mask.view(), label.view());
        eprintln!("{name}: one click, liver Dice {d:.3}");
        dices.push((name, d));
    }
    let mean = dices.iter().map(|(_, d)| d).sum::<f64>() / dices.len() as f64;
    // measured: mean 0.802 (CT 0.726, 0.700, 0.961; MR 0.741, 0.883); the two-window decoder
    // shipped before gave CT 0.279, 0.172, 0.767 and MR 5 0.640. The goal for one click
    // on the liver, 0.85, is not met on every slice.
    assert!(
        mean >= 0.75,
        "one click, mean liver Dice {mean:.3}: {dices:?}"
    );
}

/// DFQ-SAM's patch-similarity entropy finds TinyViT's windowed attention, whose attn·V outputs
/// are [windows, heads, tokens, dim] rather than SAM ViT's [batch·heads, tokens, dim]: one term
/// for each of its 10 attention blocks (stages 2–4, depths 2 + 6 + 2; stage 1 is convolutional).
#[test]
fn the_synthesis_objective_covers_every_tinyvit_attention_block() {
    use lumen_engine::graph::Model;
    use lumen_engine::quant::Preset;
    let bundle = model().bundle();
    let encoder = Model::load(&bundle.encoder_path).unwrap();
    let decoder = Model::load(&bundle.decoder_path).unwrap();
    assert_eq!(lumen_engine::synth::attention_outputs(&encoder).len(), 10);
    let weights = Preset::Quick.synth_config().weights;
    let objective =
        lumen_engine::synth::objective::build(&encoder, &decoder, 256, (256, 256), weights, 1)
            .unwrap();
    assert_eq!(objective.blocks, 10);
}

/// W8A8 on TinyViT through the whole requantize path, calibrated on real BTCV and MR slices (the
/// development upper bound; the app calibrates on synthetic images), keeps the FP model's livers
/// on CHAOS CT and MR slices it never saw. The MBConv expansions stay float, by the channel-share
/// rule; without it, a copy calibrated this way lost 2.5 points of box Dice against FP on BTCV
/// training slices (1.5 more than with it; packaging/quant/probe.py).
#[test]
fn w8a8_litemedsam_keeps_the_fp_livers_on_slices_it_was_not_calibrated_on() {
    use lumen_engine::quant::{Bits, Calibration, Preset, RequantizeOptions, requantize};
    let all = slices();
    let pick = |name: &str| {
        all.iter()
            .find(|(n, _)| n.starts_with(name))
            .unwrap()
            .1
            .clone()
    };
    let work = tempfile::tempdir().unwrap();
    let options = RequantizeOptions {
        bits: Bits {
            weights: 8,
            activations: Some(8),
        },
        preset: Preset::Quick,
        calibration: Calibration::Images(vec![
            pick("BTCV case 02"),
            pick("TotalSegmentator CT,"),
            pick("CHAOS MR 2"),
        ]),
        reparameterize: false,
        eight_bit_budget: 0.0,
        quantize_decoder: false,
        cache_dir: work.path().join("cache"),
        use_shipped_synthetic: true,
        session: SessionConfig::default(),
        min_self_check_iou: lumen_engine::quant::DEFAULT_MIN_SELF_CHECK_IOU,
    };
    let out = work.path().join("w8a8");
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let report = requantize(
        &litemedsam_model_dir(),
        &out,
        &options,
        &mut |_| {},
        &cancel,
    )
    .unwrap();
    assert!(
        report
            .summary
            .kept_float
            .iter()
            .any(|t| t.contains("layers.0/blocks.0/conv1"))
    );
    let q = SamModel::load(&out, &SessionConfig::default()).unwrap();
    for (name, image, label) in liver_cases() {
        let prompt = Prompt::from_box(box_prompt(label.view()).unwrap());
        let fp = model()
            .predict(&model().embed(image.view()).unwrap(), &prompt)
            .unwrap();
        let w8 = q.predict(&q.embed(image.view()).unwrap(), &prompt).unwrap();
        let (agree, fp_dice, q_dice) = (
            dice(fp.mask.view(), w8.mask.view()),
            dice(fp.mask.view(), label.view()),
            dice(w8.mask.view(), label.view()),
        );
        eprintln!("{name}: FP {fp_dice:.4}, W8A8 {q_dice:.4}, agreement {agree:.4}");
        assert!(
            agree >= 0.95,
            "{name}: W8A8 mask agrees with FP at Dice {agree:.3}"
        );
        assert!(
            q_dice >= fp_dice - 0.02,
            "{name}: liver Dice {q_dice:.3} against FP {fp_dice:.3}"
        );
    }
}

/// The default W8A8 bundle on this CPU's integer kernels computes what its QDQ graph means (the
/// graph run in float, no fusions). Without VNNI, ONNX Runtime's int8-weight kernels saturate;
/// the engine then runs the weights as uint8 (`lumen_engine::model::to_unsigned_weights`). On a
/// 2-core AVX2 EPYC the saturating kernels were 0.35 away from the float graph (relative
/// embedding difference) and cost 4 Dice points of CHAOS CT liver; the uint8 ones are 0.07–0.09
/// away (integer kernels round each layer's output where the float graph does not). The float
/// graph itself is 0.18 from FP32.
#[test]
fn the_default_w8a8_encoder_on_integer_kernels_matches_its_graph_in_float() {
    let dir = litemedsam_w8a8_model_dir();
    let kernels = SamModel::load(&dir, &SessionConfig::default()).unwrap();
    let in_float = SessionConfig {
        optimize: false,
        ..SessionConfig::default()
    };
    let reference = SamModel::load(&dir, &in_float).unwrap();
    for index in [20, 40] {
        let (hu, _) = chaos_liver_slice(index).unwrap();
        let grey = kernels.bundle().manifest.intensity.ct.to_u8(hu.view());
        let a = kernels.embed(grey.view()).unwrap().tensor;
        let b = reference.embed(grey.view()).unwrap().tensor;
        let norm = |x: &ndarray::Array4<f32>| x.iter().map(|v| v * v).sum::<f32>().sqrt();
        let relative = norm(&(&a - &b)) / norm(&b);
        eprintln!(
            "CHAOS CT {index}: integer kernels vs float graph, relative difference {relative:.4} \
             (int8 kernels saturate here: {})",
            lumen_engine::model::int8_kernels_saturate()
        );
        assert!(relative < 0.15, "CHAOS CT {index}: {relative:.4}");
    }
}
