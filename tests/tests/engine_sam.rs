//! The SAM engine on the bundled starter model and real CT slices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::{BoxPrompt, ModelError, Point, Prompt, SamModel};
use lumen_engine::runtime::SessionConfig;
use lumen_tests::{box_prompt, chaos_liver_slice, dice, starter_model_dir};
use ndarray::Array2;
use std::sync::OnceLock;

fn model() -> &'static SamModel {
    static MODEL: OnceLock<SamModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        SamModel::load(&starter_model_dir(), &SessionConfig::default())
            .expect("bundled model loads")
    })
}

/// A CHAOS slice windowed by the model's own CT rule, and its liver label.
fn liver_slice(index: usize) -> (Array2<u8>, Array2<bool>) {
    let (hu, label) = chaos_liver_slice(index).unwrap();
    (
        model().bundle().manifest.intensity.ct.to_u8(hu.view()),
        label,
    )
}

fn box_of(label: &Array2<bool>) -> BoxPrompt {
    box_prompt(label.view()).expect("label is not empty")
}

#[test]
fn a_box_around_the_liver_segments_it() {
    for index in [25, 40, 55] {
        let (image, label) = liver_slice(index);
        let embedding = model().embed(image.view()).unwrap();
        let prediction = model()
            .predict(&embedding, &Prompt::from_box(box_of(&label)))
            .unwrap();
        assert_eq!(prediction.mask.dim(), label.dim());
        let d = dice(prediction.mask.view(), label.view());
        assert!(d >= 0.8, "CHAOS slice {index}: liver Dice {d:.3} < 0.8");
        assert!(
            (1..=3).contains(&prediction.chosen),
            "a lone box takes a multimask candidate"
        );
    }
}

#[test]
fn a_negative_point_removes_area() {
    let (image, label) = liver_slice(40);
    let embedding = model().embed(image.view()).unwrap();
    let bbox = box_of(&label);
    let first = model()
        .predict(&embedding, &Prompt::from_box(bbox))
        .unwrap();
    // Say "not organ" at a masked pixel near the box's lower-left corner, the way a user trims a leak.
    let (y, x) = first
        .mask
        .indexed_iter()
        .filter(|(_, on)| **on)
        .map(|(yx, _)| yx)
        .min_by_key(|(y, x)| y.abs_diff(bbox.y1 as usize) + x.abs_diff(bbox.x0 as usize))
        .unwrap();
    let mut refined = Prompt::from_box(bbox);
    refined.points.push(Point {
        x: x as f32,
        y: y as f32,
        positive: false,
    });
    refined.previous_logits = Some(first.low_res_logits.clone());
    let second = model().predict(&embedding, &refined).unwrap();
    assert!(
        second.area() < first.area(),
        "area {} did not shrink below {}",
        second.area(),
        first.area()
    );
    assert!(
        !second.mask[[y, x]],
        "the pixel marked negative is still in the mask"
    );
}

#[test]
fn the_previous_mask_prompt_changes_the_answer() {
    let (image, label) = liver_slice(40);
    let embedding = model().embed(image.view()).unwrap();
    let from_box = model()
        .predict(&embedding, &Prompt::from_box(box_of(&label)))
        .unwrap();
    let (x, y) = inside_point(&from_box.mask);
    // Two clicks, so both answers come from the single-mask output and only the mask input differs.
    let mut click = Prompt::from_point(x, y, true);
    click.points.push(Point {
        x: x + 4.0,
        y,
        positive: true,
    });
    let without = model().predict(&embedding, &click).unwrap();
    click.previous_logits = Some(from_box.low_res_logits.clone());
    let with = model().predict(&embedding, &click).unwrap();
    let agreement = dice(with.mask.view(), without.mask.view());
    assert!(
        agreement < 0.99,
        "the previous mask made no difference (Dice between answers {agreement:.4})"
    );
    let better = dice(with.mask.view(), label.view());
    assert!(
        better >= 0.8,
        "click + previous box mask: liver Dice {better:.3}"
    );
}

#[test]
fn prompts_off_the_image_are_refused_with_the_reason() {
    let (image, _) = liver_slice(40);
    let embedding = model().embed(image.view()).unwrap();
    let err = model()
        .predict(&embedding, &Prompt::from_point(600.0, 20.0, true))
        .unwrap_err();
    assert!(matches!(err, ModelError::Prompt(_)));
    assert!(
        err.to_string().contains("outside the 512×512 image"),
        "{err}"
    );
    let wrong_size = Prompt {
        previous_logits: Some(Array2::zeros((3, 3))),
        ..Prompt::from_point(10.0, 10.0, true)
    };
    assert!(
        model()
            .predict(&embedding, &wrong_size)
            .unwrap_err()
            .to_string()
            .contains("previous mask")
    );
}

/// The mask pixel nearest the mask's centroid, as (x, y): inside even for a concave organ.
fn inside_point(mask: &Array2<bool>) -> (f32, f32) {
    let on: Vec<(usize, usize)> = mask
        .indexed_iter()
        .filter(|(_, v)| **v)
        .map(|(yx, _)| yx)
        .collect();
    let n = on.len() as f32;
    let cy = on.iter().map(|p| p.0 as f32).sum::<f32>() / n;
    let cx = on.iter().map(|p| p.1 as f32).sum::<f32>() / n;
    let nearest = on
        .iter()
        .min_by(|a, b| {
            let d = |p: &&(usize, usize)| (p.0 as f32 - cy).powi(2) + (p.1 as f32 - cx).powi(2);
            d(a).total_cmp(&d(b))
        })
        .unwrap();
    (nearest.1 as f32, nearest.0 as f32)
}
