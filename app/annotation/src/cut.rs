//! A cut as the model sees it. A plane across the slices has pixels taller than wide (5 mm slices
//! of 0.7 mm pixels); the model must see the anatomy at its true shape, so its image is resampled
//! to square pixels, and prompts and masks are carried between the cut's own grid (one row a
//! slice, as shown and as stored) and the model image's rows.

use crate::Document;
use crate::document::slice_voxels;
use crate::propagate::model_image;
use lumen_engine::model::{IntensityRule, Prompt};
use lumen_study::Volume;
use lumen_study::reformat::{Cut, Reformat};
use ndarray::Array2;

/// How a cut's model image rows relate to the cut's own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutGrid {
    /// Model image rows per cut row (1 for a slice).
    pub rows_per_row: f32,
}

/// A cut's model image, and its grid.
pub struct CutImage {
    pub image: Array2<u8>,
    pub grid: CutGrid,
}

/// `cut` of `volume` as the model's 8-bit input by `rule`, square-pixelled.
pub fn cut_image(volume: &Volume, cut: Cut, rule: &IntensityRule) -> Option<CutImage> {
    let reformat = match cut {
        Cut::Slice(z) => {
            let image = model_image(volume, z, rule)?;
            let grid = CutGrid { rows_per_row: 1.0 };
            return Some(CutImage { image, grid });
        }
        Cut::Across(across, index) => Reformat::of(across, index, volume),
    };
    let (w, h) = reformat.size();
    let values = Array2::from_shape_vec((h, w), reformat.values(volume)).ok()?;
    let mut grid = rule.to_u8(values.view());
    volume.apply_polarity(grid.iter_mut());
    let aspect = reformat.pixel_aspect(volume.spacing).max(1e-3);
    let rows = ((h as f32 * aspect).round() as usize).max(1);
    let rows_per_row = rows as f32 / h as f32;
    // linear between the cut's rows, each row's centre at its own place
    let image = Array2::from_shape_fn((rows, w), |(r, u)| {
        let at = ((r as f32 + 0.5) / rows_per_row - 0.5).clamp(0.0, (h - 1) as f32);
        let (low, t) = (at.floor() as usize, at.fract());
        let high = (low + 1).min(h - 1);
        (f32::from(grid[[low, u]]) * (1.0 - t) + f32::from(grid[[high, u]]) * t).round() as u8
    });
    Some(CutImage {
        image,
        grid: CutGrid { rows_per_row },
    })
}

impl CutGrid {
    /// The prompt, given in the cut's grid, in the model image's (rows stretched).
    pub fn to_model(&self, prompt: &Prompt) -> Prompt {
        let s = self.rows_per_row;
        let mut scaled = prompt.clone();
        if let Some(b) = &mut scaled.bbox {
            b.y0 *= s;
            b.y1 = ((b.y1 + 1.0) * s - 1.0).max(b.y0);
        }
        for p in &mut scaled.points {
            p.y = (p.y + 0.5) * s - 0.5;
        }
        scaled
    }

    /// A mask of the model image back on the cut's grid: each cut row takes the model row at
    /// its centre.
    pub fn to_cut(&self, mask: &Array2<bool>) -> Array2<bool> {
        let (rows, w) = mask.dim();
        if self.rows_per_row == 1.0 {
            return mask.clone();
        }
        let h = ((rows as f32 / self.rows_per_row).round() as usize).max(1);
        Array2::from_shape_fn((h, w), |(v, u)| {
            let r = ((v as f32 + 0.5) * self.rows_per_row).floor() as usize;
            mask[[r.min(rows - 1), u]]
        })
    }
}

/// The voxels (by index into the label map) under `mask` on `cut`'s grid, each with whether it
/// is inside; nothing when the mask is not of the cut's size.
fn cut_voxels(volume: &Volume, cut: Cut, mask: &Array2<bool>) -> Vec<(usize, bool)> {
    match cut {
        Cut::Slice(z) => slice_voxels(volume.dims, z, mask.view()),
        Cut::Across(across, index) => {
            let reformat = Reformat::of(across, index, volume);
            let (w, h) = reformat.size();
            if mask.dim() != (h, w) {
                return Vec::new();
            }
            mask.indexed_iter()
                .map(|((v, u), inside)| (reformat.source_index(u, v), *inside))
                .collect()
        }
    }
}

impl Document {
    /// Makes `mask` (on `cut`'s grid) the extent of segment `label` in that cut, as
    /// [`Document::set_slice_mask`] does for a slice. One undoable step; the voxels changed.
    pub fn set_cut_mask(
        &mut self,
        volume: &Volume,
        cut: Cut,
        label: u8,
        mask: &Array2<bool>,
        what: &str,
    ) -> usize {
        self.set_voxels(&cut_voxels(volume, cut, mask), label, what)
    }

    /// As [`Document::set_cut_mask`] for several cuts (a propagation): one undoable step.
    pub fn set_cut_masks(
        &mut self,
        volume: &Volume,
        label: u8,
        masks: &[(Cut, Array2<bool>)],
        what: &str,
    ) -> usize {
        let voxels: Vec<(usize, bool)> = masks
            .iter()
            .flat_map(|(cut, mask)| cut_voxels(volume, *cut, mask))
            .collect();
        self.set_voxels(&voxels, label, what)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lumen_engine::model::BoxPrompt;
    use lumen_study::geometry::IDENTITY;
    use lumen_study::reformat::Across;

    /// 4 × 3 × 2 voxels of 1 × 1 × 3 mm, value = 100 z + x, slices toward the head.
    fn volume() -> Volume {
        let mut m = IDENTITY;
        m[2][2] = 3.0;
        Volume {
            dims: [4, 3, 2],
            voxels: (0..24).map(|i| (100 * (i / 12) + i % 4) as f32).collect(),
            spacing: [1.0, 1.0, 3.0],
            patient_from_voxel: m,
            ..Volume::default()
        }
    }

    #[test]
    fn a_plane_across_3_mm_slices_of_1_mm_pixels_is_stretched_threefold_and_back() {
        let volume = volume();
        let rule = IntensityRule::Window {
            center: 150.0,
            width: 300.0,
        };
        let cut = Cut::Across(Across::Row, 1);
        let model = cut_image(&volume, cut, &rule).unwrap();
        assert_eq!(model.image.dim(), (6, 4));
        assert_eq!(model.grid.rows_per_row, 3.0);
        // the top rows are the upper slice (value 100: 85 in a 0–300 window), the bottom the lower
        assert_eq!((model.image[[0, 0]], model.image[[5, 0]]), (85, 0));

        let prompt = Prompt {
            bbox: Some(BoxPrompt {
                x0: 0.0,
                y0: 1.0,
                x1: 3.0,
                y1: 1.0,
            }),
            ..Prompt::default()
        };
        let scaled = model.grid.to_model(&prompt).bbox.unwrap();
        assert_eq!(
            (scaled.y0, scaled.y1),
            (3.0, 5.0),
            "the lower slice's three rows"
        );

        let mut mask = Array2::from_elem((6, 4), false);
        for u in 0..4 {
            mask[[4, u]] = true;
        }
        let back = model.grid.to_cut(&mask);
        assert_eq!(back.dim(), (2, 4));
        assert!(back.row(1).iter().all(|v| *v) && back.row(0).iter().all(|v| !*v));

        let mut document = Document::new(volume.dims, volume.spacing);
        let liver = document.add_segment("Liver").unwrap();
        let changed = document.set_cut_mask(&volume, cut, liver, &back, "accept mask");
        assert_eq!(changed, 4);
        // row 1 of slice 0 (the lower slice, shown at the bottom), nothing else
        assert!(document.slice_labels(0)[4..8].iter().all(|l| *l == liver));
        assert_eq!(document.labels().iter().filter(|l| **l == liver).count(), 4);
        assert!(document.undo().is_some());
        assert!(document.labels().iter().all(|l| *l == 0));
    }

    #[test]
    fn propagated_cuts_are_one_undo_step() {
        let volume = volume();
        let mut document = Document::new(volume.dims, volume.spacing);
        let liver = document.add_segment("Liver").unwrap();
        let rows = |n: usize| Array2::from_shape_fn((2, 4), |(_, u)| u < n);
        let masks: Vec<(Cut, Array2<bool>)> = (0..3)
            .map(|y| (Cut::Across(Across::Row, y), rows(y + 1)))
            .collect();
        let changed = document.set_cut_masks(&volume, liver, &masks, "propagate");
        assert_eq!(changed, 2 * (1 + 2 + 3));
        assert_eq!(document.undo().as_deref(), Some("propagate"));
        assert!(!document.can_undo());
        assert!(document.labels().iter().all(|l| *l == 0));
    }
}
