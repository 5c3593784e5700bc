//! Propagation of one slice's mask through its neighbours: each next slice is prompted with the
//! previous slice's mask until the organ ends, the volume ends, or the user cancels. The model
//! itself stays with the caller (the app's segmenter thread, which owns it), reached through
//! the `segment` closure.

use lumen_engine::model::{BoxPrompt, IntensityRule, Prediction, Prompt};
use lumen_study::Volume;
use ndarray::Array2;

/// Where propagation starts and which way it goes.
pub struct Start<'a> {
    /// The slice the mask is on.
    pub from: usize,
    pub mask: &'a Array2<bool>,
    /// Towards higher slice indices.
    pub up: bool,
    /// Towards lower slice indices.
    pub down: bool,
}

/// What propagation found: masks by slice index, and whether the user stopped it.
pub struct Outcome {
    pub masks: Vec<(usize, Array2<bool>)>,
    pub cancelled: bool,
}

/// Carries `start.mask` through a volume of `depth` slices. `segment(z, prompt)` answers a
/// prompt on slice `z` (None: that slice failed, which ends the direction); `cancelled` is asked
/// before each slice; `progress(done, of)` hears of each slice added.
pub fn propagate(
    start: &Start,
    depth: usize,
    mut segment: impl FnMut(usize, &Prompt) -> Option<Prediction>,
    cancelled: impl Fn() -> bool,
    mut progress: impl FnMut(usize, usize),
) -> Outcome {
    let directions: Vec<isize> = [(start.up, 1), (start.down, -1)]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, d)| *d)
        .collect();
    let of = directions
        .iter()
        .map(|d| {
            if *d > 0 {
                depth.saturating_sub(start.from + 1)
            } else {
                start.from
            }
        })
        .sum();
    let mut masks = Vec::new();
    for step in directions {
        let mut previous = start.mask.clone();
        let mut previous_logits = None;
        let mut z = start.from;
        while let Some(next) = z.checked_add_signed(step).filter(|n| *n < depth) {
            if cancelled() {
                return Outcome {
                    masks,
                    cancelled: true,
                };
            }
            let Some(prompt) = next_prompt(&previous, previous_logits.take()) else {
                break;
            };
            let Some(prediction) = segment(next, &prompt) else {
                break;
            };
            if !organ_continues(&previous, &prediction) {
                break;
            }
            previous = prediction.mask.clone();
            previous_logits = Some(prediction.low_res_logits);
            masks.push((next, prediction.mask));
            z = next;
            progress(masks.len(), of);
        }
    }
    Outcome {
        masks,
        cancelled: false,
    }
}

/// Slice `z` of `volume` as a model's 8-bit input by `rule`. The models are trained on images
/// where white means bright (MONOCHROME2), so they get the slice as the radiologist sees it.
pub fn model_image(volume: &Volume, z: usize, rule: &IntensityRule) -> Option<Array2<u8>> {
    let [nx, ny, _] = volume.dims;
    let slice = ndarray::ArrayView2::from_shape((ny, nx), volume.slice(z)?).ok()?;
    let mut image = rule.to_u8(slice);
    volume.apply_polarity(image.iter_mut());
    Some(image)
}

/// The prompt for the next slice: the previous mask's box, a little larger since organs grow
/// and shift between slices, plus its logits when they come from the same direction.
fn next_prompt(previous: &Array2<bool>, logits: Option<Array2<f32>>) -> Option<Prompt> {
    let (h, w) = previous.dim();
    let tight = lumen_engine::eval::tight_box(previous.view())?;
    let margin = ((tight.x1 - tight.x0).max(tight.y1 - tight.y0) as f32 * 0.05).max(2.0);
    let bbox = BoxPrompt {
        x0: (tight.x0 as f32 - margin).max(0.0),
        y0: (tight.y0 as f32 - margin).max(0.0),
        x1: (tight.x1 as f32 + margin).min(w as f32 - 1.0),
        y1: (tight.y1 as f32 + margin).min(h as f32 - 1.0),
    };
    Some(Prompt {
        points: Vec::new(),
        bbox: Some(bbox),
        previous_logits: logits,
    })
}

/// The organ goes on while the new mask is not tiny and still overlaps the previous one.
fn organ_continues(previous: &Array2<bool>, next: &Prediction) -> bool {
    let area = next.area();
    let previous_area = previous.iter().filter(|v| **v).count();
    let overlap = previous
        .iter()
        .zip(next.mask.iter())
        .filter(|(a, b)| **a && **b)
        .count();
    area >= 20
        && area * 10 >= previous_area
        && overlap * 4 >= area.min(previous_area)
        && next.iou >= 0.5
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn square(x: std::ops::Range<usize>, y: std::ops::Range<usize>) -> Array2<bool> {
        Array2::from_shape_fn((100, 100), |(r, c)| x.contains(&c) && y.contains(&r))
    }

    fn answer(mask: Array2<bool>) -> Prediction {
        Prediction {
            mask,
            low_res_logits: Array2::zeros((4, 4)),
            iou: 0.9,
            candidate_ious: vec![0.9],
            chosen: 0,
        }
    }

    #[test]
    fn the_propagation_box_covers_the_previous_mask_with_a_margin() {
        let prompt = next_prompt(&square(20..40, 50..60), None).unwrap();
        let b = prompt.bbox.unwrap();
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (18.0, 48.0, 41.0, 61.0));
        assert!(next_prompt(&Array2::from_elem((4, 4), false), None).is_none());
    }

    #[test]
    fn propagation_runs_both_ways_until_the_organ_ends_and_stops_on_cancel() {
        let start_mask = square(20..40, 20..40);
        let start = Start {
            from: 5,
            mask: &start_mask,
            up: true,
            down: true,
        };
        // the organ spans slices 3..=7; beyond them the model finds a few stray pixels
        let segment = |z: usize, _: &Prompt| {
            Some(answer(if (3..=7).contains(&z) {
                square(21..39, 21..39)
            } else {
                square(0..2, 0..2)
            }))
        };
        let mut heard = Vec::new();
        let found = propagate(&start, 10, segment, || false, |d, of| heard.push((d, of)));
        let slices: Vec<usize> = found.masks.iter().map(|(z, _)| *z).collect();
        assert_eq!(slices, vec![6, 7, 4, 3]);
        assert!(!found.cancelled);
        assert_eq!(heard, vec![(1, 9), (2, 9), (3, 9), (4, 9)]);

        let calls = std::cell::Cell::new(0);
        let stopped = propagate(
            &start,
            10,
            |z, p| segment(z, p),
            || {
                calls.set(calls.get() + 1);
                calls.get() > 2
            },
            |_, _| {},
        );
        assert!(stopped.cancelled);
        assert_eq!(stopped.masks.len(), 2);
    }
}
