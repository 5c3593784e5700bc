//! DESIGN.md §4 on one slice: prompts from the label map, the model's masks, their scores.

use super::clicks::next_click;
use super::components::{PixelBox, box_prompt, largest_component, tight_box};
use super::jitter::{Rng, jitter_box};
use super::metrics::{Overlap, overlap};
use crate::model::{Embedding, ModelError, Prompt, SamModel};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// Components smaller than this (pixels, at the slice's own size) are not scored; the model card's
/// numbers use 20 (`packaging/model/common.py` MIN_AREA).
pub const DEFAULT_MIN_AREA: usize = 20;

/// An organ the protocol scores: its value in the label map and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organ {
    pub label: u16,
    pub name: String,
}

impl Organ {
    pub fn new(label: u16, name: impl Into<String>) -> Self {
        Self {
            label,
            name: name.into(),
        }
    }
}

/// Settings of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolOptions {
    /// Smallest largest-component area (pixels) that is scored.
    pub min_area: usize,
    /// Also score a jittered box (one more decoder run per organ).
    pub jitter: bool,
    /// Seed of the jittered boxes.
    pub seed: u64,
    /// Also run a click session of this many clicks per organ (0: none): the first click on the
    /// organ's most interior pixel, each next one on the larger error (`next_click`), every
    /// prompt with all clicks so far and the previous mask, as the app sends them.
    #[serde(default)]
    pub clicks: usize,
}

impl Default for ProtocolOptions {
    fn default() -> Self {
        Self {
            min_area: DEFAULT_MIN_AREA,
            jitter: false,
            seed: 0,
            clicks: 0,
        }
    }
}

/// One organ on one slice, ready to prompt. It depends on the labels only, never on a model, so
/// every model is scored on exactly the same prompts.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: u16,
    /// The organ's largest 8-connected component: the reference mask.
    pub component: Array2<bool>,
    /// Every pixel of the organ on the slice.
    pub whole: Array2<bool>,
    /// Area of `component` in pixels.
    pub area: usize,
    /// Tight bounding box of `component`: the prompt.
    pub tight: PixelBox,
    /// The jittered box `[x0, y0, x1, y1]`, when asked for.
    pub jittered: Option<[f32; 4]>,
}

/// The score of one organ on one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub label: u16,
    /// Area of the reference component (pixels).
    pub area: usize,
    /// Tight box prompt: Dice and IoU against the largest component.
    pub tight: Overlap,
    /// Tight box prompt: Dice against the whole organ on the slice (all its components).
    pub whole_organ_dice: f64,
    /// The decoder's own IoU estimate for the chosen mask.
    pub predicted_iou: f32,
    /// Jittered box prompt: Dice and IoU against the largest component.
    pub jittered: Option<Overlap>,
    /// The click session: Dice and IoU against the largest component after each click.
    #[serde(default)]
    pub clicks: Vec<Overlap>,
}

/// Why a slice could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the image is {image:?} (rows, columns) but its label map is {labels:?}")]
    Shape {
        image: (usize, usize),
        labels: (usize, usize),
    },
}

/// The organs of `organs` present on the slice with a largest component of at least
/// `options.min_area` pixels, in the order of `organs`. `slice_key` identifies the slice (for
/// example a hash of case and index) and seeds its jittered boxes.
pub fn targets(
    labels: ArrayView2<u16>,
    organs: &[Organ],
    options: &ProtocolOptions,
    slice_key: u64,
) -> Vec<Target> {
    let mut found = Vec::new();
    for organ in organs {
        let whole = labels.mapv(|v| v == organ.label);
        let Some((component, area)) = largest_component(whole.view()) else {
            continue;
        };
        if area < options.min_area {
            continue;
        }
        let Some(tight) = tight_box(component.view()) else {
            continue;
        };
        let jittered = options.jitter.then(|| {
            let mut rng = Rng::for_sample(options.seed, slice_key, organ.label);
            jitter_box(tight, labels.dim(), &mut rng)
        });
        found.push(Target {
            label: organ.label,
            component,
            whole,
            area,
            tight,
            jittered,
        });
    }
    found
}

/// Prompts the model with each target's box on a slice's embedding and scores the masks.
/// A lone box takes the multimask candidate with the highest predicted IoU (`SamModel::predict`);
/// masks come at the slice's size, thresholded at 0.
pub fn score(
    model: &SamModel,
    embedding: &Embedding,
    targets: &[Target],
    clicks: usize,
) -> Result<Vec<Sample>, EvalError> {
    let mut samples = Vec::with_capacity(targets.len());
    for target in targets {
        let prompt = Prompt::from_box(box_prompt(target.tight.corners()));
        let prediction = model.predict(embedding, &prompt)?;
        let jittered = match target.jittered {
            Some(corners) => {
                let p = model.predict(embedding, &Prompt::from_box(box_prompt(corners)))?;
                Some(overlap(p.mask.view(), target.component.view()))
            }
            None => None,
        };
        samples.push(Sample {
            label: target.label,
            area: target.area,
            tight: overlap(prediction.mask.view(), target.component.view()),
            whole_organ_dice: overlap(prediction.mask.view(), target.whole.view()).dice,
            predicted_iou: prediction.iou,
            jittered,
            clicks: click_session(model, embedding, target, clicks)?,
        });
    }
    Ok(samples)
}

/// Dice and IoU after each of `clicks` simulated clicks on `target`. Once the mask is perfect
/// there is nothing left to click, and it stays so.
fn click_session(
    model: &SamModel,
    embedding: &Embedding,
    target: &Target,
    clicks: usize,
) -> Result<Vec<Overlap>, EvalError> {
    let mut scores = Vec::with_capacity(clicks);
    let mut prompt = Prompt::default();
    let mut mask: Option<Array2<bool>> = None;
    for _ in 0..clicks {
        let Some(click) = next_click(mask.as_ref().map(|m| m.view()), target.component.view())
        else {
            scores.push(overlap(target.component.view(), target.component.view()));
            continue;
        };
        prompt.points.push(click);
        let prediction = model.predict(embedding, &prompt)?;
        scores.push(overlap(prediction.mask.view(), target.component.view()));
        prompt.previous_logits = Some(prediction.low_res_logits);
        mask = Some(prediction.mask);
    }
    Ok(scores)
}

/// The whole protocol on one 8-bit slice and its label map: the slice is embedded only when
/// some organ qualifies.
pub fn evaluate_slice(
    model: &SamModel,
    image: ArrayView2<u8>,
    labels: ArrayView2<u16>,
    organs: &[Organ],
    options: &ProtocolOptions,
    slice_key: u64,
) -> Result<Vec<Sample>, EvalError> {
    if image.dim() != labels.dim() {
        return Err(EvalError::Shape {
            image: image.dim(),
            labels: labels.dim(),
        });
    }
    let targets = targets(labels, organs, options, slice_key);
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let embedding = model.embed(image)?;
    score(model, &embedding, &targets, options.clicks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn organs() -> Vec<Organ> {
        vec![
            Organ::new(1, "liver"),
            Organ::new(2, "spleen"),
            Organ::new(3, "aorta"),
        ]
    }

    #[test]
    fn targets_skip_small_and_absent_organs_and_use_the_largest_component() {
        let mut labels = Array2::<u16>::zeros((40, 40));
        // liver: a 6×6 block plus a separate 2×2 island
        labels.slice_mut(ndarray::s![10..16, 20..26]).fill(1);
        labels.slice_mut(ndarray::s![30..32, 2..4]).fill(1);
        // spleen: 19 px, below the minimum
        labels.slice_mut(ndarray::s![0..1, 0..19]).fill(2);
        let found = targets(labels.view(), &organs(), &ProtocolOptions::default(), 0);
        assert_eq!(found.len(), 1);
        let liver = &found[0];
        assert_eq!((liver.label, liver.area), (1, 36));
        assert_eq!(
            liver.tight,
            PixelBox {
                x0: 20,
                y0: 10,
                x1: 25,
                y1: 15
            }
        );
        assert_eq!(liver.whole.iter().filter(|v| **v).count(), 40);
        assert!(liver.jittered.is_none());
    }

    #[test]
    fn jittered_targets_are_reproducible_per_slice() {
        let mut labels = Array2::<u16>::zeros((50, 50));
        labels.slice_mut(ndarray::s![10..30, 5..25]).fill(3);
        let options = ProtocolOptions {
            jitter: true,
            ..ProtocolOptions::default()
        };
        let a = targets(labels.view(), &organs(), &options, 9);
        let b = targets(labels.view(), &organs(), &options, 9);
        let c = targets(labels.view(), &organs(), &options, 10);
        assert_eq!(a[0].jittered, b[0].jittered);
        assert_ne!(a[0].jittered, c[0].jittered);
    }
}
