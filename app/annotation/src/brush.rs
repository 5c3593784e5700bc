//! Brush and eraser: a stroke (image-pixel points along the pointer's path) becomes a disc-swept
//! mask, which is added to or removed from a segment on one slice as one undoable edit.

use crate::Document;
use lumen_study::Volume;
use lumen_study::reformat::Cut;
use ndarray::{Array2, ArrayView2};

/// Pixels within `radius` of the polyline through `points` on an image of (width, height).
pub fn stroke_mask(
    points: &[(f32, f32)],
    radius: f32,
    (width, height): (usize, usize),
) -> Array2<bool> {
    stroke_mask_with_aspect(points, radius, (width, height), 1.0)
}

/// As [`stroke_mask`] on pixels `aspect` times as tall as wide (a plane across the slices):
/// `radius` is in pixel widths, so the disc is round in millimetres.
pub fn stroke_mask_with_aspect(
    points: &[(f32, f32)],
    radius: f32,
    (width, height): (usize, usize),
    aspect: f32,
) -> Array2<bool> {
    let aspect = aspect.max(1e-3);
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
    let rows = radius / aspect;
    for (cx, cy) in centres {
        let x0 = (cx - radius).floor().max(0.0) as usize;
        let y0 = (cy - rows).floor().max(0.0) as usize;
        let x1 = ((cx + radius).ceil() as usize).min(width.saturating_sub(1));
        let y1 = ((cy + rows).ceil() as usize).min(height.saturating_sub(1));
        if cx + radius < 0.0 || cy + rows < 0.0 {
            continue;
        }
        for y in y0..=y1 {
            for x in x0..=x1 {
                // Pixel centres at +0.5, as the viewport maps the image.
                let (dx, dy) = (x as f32 + 0.5 - cx, (y as f32 + 0.5 - cy) * aspect);
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
    let mask = stroked(current, stroke, label, erase);
    document.set_slice_mask(z, label, mask.view(), stroke_name(erase))
}

/// As [`apply_stroke`], on any cut of `volume` (a slice, or a plane across the slices).
pub fn apply_stroke_on(
    document: &mut Document,
    volume: &Volume,
    cut: Cut,
    label: u8,
    stroke: ArrayView2<bool>,
    erase: bool,
) -> usize {
    let (w, h) = cut.size(volume);
    if stroke.dim() != (h, w) {
        return 0;
    }
    let current = cut.gather(volume, document.labels());
    let mask = stroked(&current, stroke, label, erase);
    document.set_cut_mask(volume, cut, label, &mask, stroke_name(erase))
}

/// The segment's new extent on a cut whose labels are `current`: with the stroke, or without.
fn stroked(current: &[u8], stroke: ArrayView2<bool>, label: u8, erase: bool) -> Array2<bool> {
    let width = stroke.ncols();
    Array2::from_shape_fn(stroke.dim(), |(y, x)| {
        let inside = current.get(y * width + x) == Some(&label);
        if erase {
            inside && !stroke[[y, x]]
        } else {
            inside || stroke[[y, x]]
        }
    })
}

fn stroke_name(erase: bool) -> &'static str {
    if erase { "erase" } else { "brush" }
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

    #[test]
    fn a_disc_on_pixels_four_times_as_tall_spans_a_quarter_of_the_rows() {
        // radius 4 pixel widths: ±4 across, ±1 row; row 10's centre is half a row (2 widths)
        // off, so it spans ±√12 across
        let m = stroke_mask_with_aspect(&[(10.0, 10.0)], 4.0, (20, 20), 4.0);
        let column: usize = (0..20).filter(|y| m[[*y, 10]]).count();
        let row: usize = (0..20).filter(|x| m[[10, *x]]).count();
        assert_eq!((row, column), (6, 2));
    }

    #[test]
    fn a_stroke_across_the_slices_paints_that_plane_only() {
        use lumen_study::reformat::Across;
        let volume = Volume {
            dims: [6, 5, 4],
            voxels: vec![0.0; 120],
            spacing: [1.0, 1.0, 1.0],
            patient_from_voxel: lumen_study::geometry::IDENTITY,
            ..Volume::default()
        };
        let mut doc = Document::new(volume.dims, volume.spacing);
        let liver = doc.add_segment("Liver").unwrap();
        let cut = Cut::Across(Across::Column, 2);
        let all = Array2::from_elem((4, 5), true);
        let painted = apply_stroke_on(&mut doc, &volume, cut, liver, all.view(), false);
        assert_eq!(painted, 20, "the whole plane: 5 rows × 4 slices");
        for z in 0..4 {
            let slice = doc.slice_labels(z);
            assert!((0..5).all(|y| slice[y * 6 + 2] == liver));
            assert_eq!(slice.iter().filter(|l| **l == liver).count(), 5);
        }
        let erased = apply_stroke_on(&mut doc, &volume, cut, liver, all.view(), true);
        assert_eq!(erased, 20);
    }
}
