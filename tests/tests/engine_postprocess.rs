//! `predict` upsamples the decoder's low-res logits in Rust instead of fetching the graph's
//! full-size `masks`; on real CT slices, square and not, both must give the same mask.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::{Point, Prompt, SamModel, upscale_mask_logits};
use lumen_engine::runtime::SessionConfig;
use lumen_tests::{box_prompt, chaos_liver_slice, starter_model_dir};
use ndarray::{Array2, s};

/// A lone box (multimask, best IoU), a box with a negative click and the previous mask (single
/// output), and a lone click (multimask) on the liver.
fn prompts(model: &SamModel, image: &Array2<u8>, label: &Array2<bool>) -> Vec<Prompt> {
    let embedding = model.embed(image.view()).unwrap();
    let bbox = box_prompt(label.view()).expect("the liver is in the image");
    let first = model.predict(&embedding, &Prompt::from_box(bbox)).unwrap();
    let mut refined = Prompt::from_box(bbox);
    refined.points.push(Point {
        x: bbox.x0 + 2.0,
        y: bbox.y1 - 2.0,
        positive: false,
    });
    refined.previous_logits = Some(first.low_res_logits);
    let (cx, cy) = ((bbox.x0 + bbox.x1) / 2.0, (bbox.y0 + bbox.y1) / 2.0);
    vec![
        Prompt::from_box(bbox),
        refined,
        Prompt::from_point(cx, cy, true),
    ]
}

#[test]
fn rust_upsampling_gives_the_graphs_masks_on_real_slices() {
    let model = SamModel::load(&starter_model_dir(), &SessionConfig::default()).unwrap();
    let input_size = model.bundle().manifest.input_size as usize;
    // (CHAOS slice, crop rows, crop columns): whole 512×512 slices, then crops that make the
    // frame non-square, with a pre-padded side that is not a whole number of pixels (437×300:
    // 300·256/437 = 175.7), a wide one, and one smaller than the model's input (upsampled twice).
    let cases = [
        (25, 0..512, 0..512),
        (40, 0..512, 0..512),
        (55, 0..512, 0..512),
        (40, 40..477, 20..320),
        (55, 150..450, 0..512),
        (40, 200..400, 60..210),
    ];
    let mut worst_diff = 0.0f32;
    let mut worst_agreement = 1.0f64;
    for (index, rows, cols) in cases {
        let (hu, label) = chaos_liver_slice(index).unwrap();
        let image = model
            .bundle()
            .manifest
            .intensity
            .ct
            .to_u8(hu.slice(s![rows.clone(), cols.clone()]));
        let label = label.slice(s![rows.clone(), cols.clone()]).to_owned();
        let embedding = model.embed(image.view()).unwrap();
        for (k, prompt) in prompts(&model, &image, &label).iter().enumerate() {
            let prediction = model.predict(&embedding, prompt).unwrap();
            let graph = model
                .graph_mask_logits(&embedding, prompt, prediction.chosen)
                .unwrap();
            assert_eq!(graph.dim(), image.dim());
            assert_eq!(prediction.mask.dim(), image.dim());
            let ours = upscale_mask_logits(
                prediction.low_res_logits.view(),
                input_size,
                embedding.frame.original,
            );
            let diff = ours
                .iter()
                .zip(&graph)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            let same = prediction
                .mask
                .iter()
                .zip(&graph)
                .filter(|(m, g)| **m == (**g > 0.0))
                .count();
            let agreement = same as f64 / graph.len() as f64;
            println!(
                "slice {index} {}×{} prompt {k} (output {}): max |logit diff| {diff:.2e}, \
                 mask agreement {:.5}% ({} of {} pixels differ), area {}",
                image.dim().0,
                image.dim().1,
                prediction.chosen,
                agreement * 100.0,
                graph.len() - same,
                graph.len(),
                prediction.area(),
            );
            assert!(
                prediction.area() > 0,
                "slice {index} prompt {k}: empty mask"
            );
            assert!(
                diff <= 1e-3,
                "slice {index} {:?} prompt {k}: logits differ by {diff}",
                image.dim()
            );
            assert!(
                agreement >= 0.999,
                "slice {index} {:?} prompt {k}: masks agree on {:.4}% of pixels",
                image.dim(),
                agreement * 100.0
            );
            worst_diff = worst_diff.max(diff);
            worst_agreement = worst_agreement.min(agreement);
        }
    }
    println!(
        "worst: max |logit diff| {worst_diff:.2e}, mask agreement {:.5}%",
        worst_agreement * 100.0
    );
}
