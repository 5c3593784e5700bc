//! Brush and eraser: a stroke (image-pixel points along the pointer's path) becomes a disc-swept
//! mask, which is added to or removed from a segment on one slice as one undoable edit.

use crate::Document;
use ndarray::{Array2, ArrayView2};

/// Pixels within `radius` of the polyline through `points` on an image of (width, height).
pub fn stroke_mask(
    points: &[(f32, f32)],
    radius: f32,
    (width, height): (usize, usize),
) -> Array2<bool> {
    let mut mask = Array2::from_elem((height, width), false);
    let radius = radius.max(0.5);
    // Discs every half radius along each segment, so fast strokes leave no gaps.
    let mut centres = Vec::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        match i.checked_sub(1).map(|j| points[j]) {
            Some((px, py)) => {
                let length = ((x - px).powi(2) + (y - py).powi(2)).sqrt();
                let steps = (length / (radius / 2.0)).ceil().max(1.0) as usize;
                for s in 1..=steps {
                    let t = s as f32 / steps as f32;
                    centres.push((px + (x - px) * t, py + (y - py) * t));
                }
            }
            None => centres.push((x, y)),
        }
    }
    for (cx, cy) in centres {
        let x0 = (cx - radius).floor().max(0.0) as usize;
        let y0 = (cy - radius).floor().max(0.0) as usize;
        let x1 = ((cx + radius).ceil() as usize).min(width.saturating_sub(1));
        let y1 = ((cy + radius).ceil() as usize).min(height.saturating_sub(1));
        if cx + radius < 0.0 || cy + radius < 0.0 {
            continue;
        }
        for y in y0..=y1 {
            for x in x0..=x1 {
                // Pixel centres at +0.5, as the viewport maps the image.
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= radius * radius {
                    mask[[y, x]] = true;
                }
            }
        }
    }
    mask
}

/// Paints (or, with `erase`, removes) the stroke into segment `label` on slice `z`; returns how
/// many voxels changed. Locked segments keep their voxels, as with accepted masks.
pub fn apply_stroke(
    document: &mut Document,
    z: usize,
    label: u8,
    stroke: ArrayView2<bool>,
    erase: bool,
) -> usize {
    let [nx, ny, _] = document.dims();
    let current = document.slice_labels(z);
    if current.len() != nx * ny || stroke.dim() != (ny, nx) {
        return 0;
    }
    let mask = Array2::from_shape_fn((ny, nx), |(y, x)| {
        let inside = current[y * nx + x] == label;
        if erase {
            inside && !stroke[[y, x]]
        } else {
            inside || stroke[[y, x]]
        }
    });
    let what = if erase { "erase" } else { "brush" };
    document.set_slice_mask(z, label, mask.view(), what)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_single_point_paints_a_disc() {
        let m = stroke_mask(&[(10.0, 10.0)], 3.0, (20, 20));
        let area = m.iter().filter(|v| **v).count();
        // π·3² ≈ 28 pixels.
        assert!((24..=32).contains(&area), "area {area}");
        assert!(m[[9, 9]] && m[[10, 10]] && !m[[0, 0]] && !m[[10, 15]]);
    }

    #[test]
    fn a_fast_stroke_leaves_no_gaps_and_stays_on_the_image() {
        let m = stroke_mask(&[(-5.0, 5.0), (30.0, 5.0)], 2.0, (20, 10));
        for x in 0..20 {
            assert!(m[[5, x]], "gap at x = {x}");
        }
        assert!(!m[[0, 0]] && !m[[9, 19]]);
    }

    #[test]
    fn brush_adds_eraser_removes_each_one_undo_step_and_locked_segments_stay() {
        let mut doc = Document::new([20, 20, 3], [1.0, 1.0, 1.0]);
        let liver = doc.add_segment("Liver").unwrap();
        let spleen = doc.add_segment("Spleen").unwrap();
        let disc = stroke_mask(&[(10.0, 10.0)], 4.0, (20, 20));
        let painted = apply_stroke(&mut doc, 1, liver, disc.view(), false);
        assert_eq!(painted, disc.iter().filter(|v| **v).count());
        assert_eq!(doc.slice_count(1, liver), painted);
        assert_eq!(doc.slice_count(0, liver), 0, "other slices untouched");

        let small = stroke_mask(&[(10.0, 10.0)], 2.0, (20, 20));
        let erased = apply_stroke(&mut doc, 1, liver, small.view(), true);
        assert_eq!(erased, small.iter().filter(|v| **v).count());
        assert_eq!(doc.slice_count(1, liver), painted - erased);
        doc.undo();
        assert_eq!(doc.slice_count(1, liver), painted, "the erase was one step");

        // Painting the spleen over a locked liver leaves the liver's voxels alone.
        doc.segment_mut(liver).unwrap().locked = true;
        apply_stroke(&mut doc, 1, spleen, disc.view(), false);
        assert_eq!(doc.slice_count(1, liver), painted);
        assert_eq!(doc.slice_count(1, spleen), 0);
    }
}
