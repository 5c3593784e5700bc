//! Overlap metrics of two binary masks.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// Dice and IoU of a predicted mask against a reference mask.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    pub dice: f64,
    pub iou: f64,
}

/// Dice `2|A∩B| / (|A|+|B|)` and IoU `|A∩B| / |A∪B|`.
///
/// Both masks empty counts as perfect agreement (1.0 for both), as in the Python evaluator
/// (`packaging/model/evaluate.py`); the protocol never scores an empty reference, so this only
/// matters to callers comparing two predictions.
///
/// Masks of different shapes are compared over their common top-left region; callers check shapes.
pub fn overlap(pred: ArrayView2<bool>, reference: ArrayView2<bool>) -> Overlap {
    let (mut both, mut p, mut r) = (0usize, 0usize, 0usize);
    for (a, b) in pred.iter().zip(reference.iter()) {
        both += usize::from(*a && *b);
        p += usize::from(*a);
        r += usize::from(*b);
    }
    let sum = p + r;
    let union = sum - both;
    Overlap {
        dice: if sum == 0 {
            1.0
        } else {
            2.0 * both as f64 / sum as f64
        },
        iou: if union == 0 {
            1.0
        } else {
            both as f64 / union as f64
        },
    }
}

/// Dice coefficient (see [`overlap`] for the both-empty convention).
pub fn dice(pred: ArrayView2<bool>, reference: ArrayView2<bool>) -> f64 {
    overlap(pred, reference).dice
}

/// Intersection over union (see [`overlap`] for the both-empty convention).
pub fn iou(pred: ArrayView2<bool>, reference: ArrayView2<bool>) -> f64 {
    overlap(pred, reference).iou
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn known_overlaps() {
        // A: 4 px, B: 2 px, 2 shared -> Dice 4/6, IoU 2/4.
        let a = array![[true, true], [true, true]];
        let b = array![[true, false], [true, false]];
        let o = overlap(a.view(), b.view());
        assert!((o.dice - 2.0 / 3.0).abs() < 1e-12);
        assert!((o.iou - 0.5).abs() < 1e-12);
        assert_eq!(dice(a.view(), a.view()), 1.0);
        let c = array![[false, false], [false, true]];
        assert_eq!(
            overlap(b.view(), c.view()),
            Overlap {
                dice: 0.0,
                iou: 0.0
            }
        );
    }

    #[test]
    fn both_empty_is_perfect_and_one_empty_is_zero() {
        let empty = Array2::from_elem((3, 3), false);
        let one = Array2::from_shape_fn((3, 3), |(y, x)| y == 1 && x == 1);
        assert_eq!(iou(empty.view(), empty.view()), 1.0);
        assert_eq!(dice(empty.view(), empty.view()), 1.0);
        assert_eq!(dice(empty.view(), one.view()), 0.0);
        assert_eq!(iou(one.view(), empty.view()), 0.0);
    }
}
