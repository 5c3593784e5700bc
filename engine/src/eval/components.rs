//! Connected components and bounding boxes of binary masks.

use crate::model::BoxPrompt;
use ndarray::{Array2, ArrayView2};

/// The largest 8-connected component of `mask` and its area in pixels, or `None` if the mask is
/// empty. Ties go to the component met first in raster order (row by row), as with
/// `scipy.ndimage.label` followed by `argmax`, so results match the Python evaluator.
pub fn largest_component(mask: ArrayView2<bool>) -> Option<(Array2<bool>, usize)> {
    let (h, w) = mask.dim();
    // 0 = unvisited background or foreground; ids start at 1.
    let mut ids = Array2::<u32>::zeros((h, w));
    let mut best: Option<(u32, usize)> = None;
    let mut next_id = 0u32;
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if !mask[[y, x]] || ids[[y, x]] != 0 {
                continue;
            }
            next_id += 1;
            ids[[y, x]] = next_id;
            stack.push((y, x));
            let mut area = 0usize;
            while let Some((cy, cx)) = stack.pop() {
                area += 1;
                for ny in cy.saturating_sub(1)..=(cy + 1).min(h - 1) {
                    for nx in cx.saturating_sub(1)..=(cx + 1).min(w - 1) {
                        if mask[[ny, nx]] && ids[[ny, nx]] == 0 {
                            ids[[ny, nx]] = next_id;
                            stack.push((ny, nx));
                        }
                    }
                }
            }
            if best.is_none_or(|(_, a)| area > a) {
                best = Some((next_id, area));
            }
        }
    }
    best.map(|(id, area)| (ids.mapv(|v| v == id), area))
}

/// A box in pixel indices, corners inclusive (`x` = column, `y` = row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl PixelBox {
    /// The box as corner coordinates, `[x0, y0, x1, y1]`.
    pub fn corners(&self) -> [f32; 4] {
        [self.x0, self.y0, self.x1, self.y1].map(|v| v as f32)
    }
}

/// The tight bounding box of the true pixels of `mask`, or `None` if it is empty.
pub fn tight_box(mask: ArrayView2<bool>) -> Option<PixelBox> {
    let mut found: Option<PixelBox> = None;
    for ((y, x), on) in mask.indexed_iter() {
        if *on {
            found = Some(match found {
                None => PixelBox {
                    x0: x,
                    y0: y,
                    x1: x,
                    y1: y,
                },
                Some(b) => PixelBox {
                    x0: b.x0.min(x),
                    y0: b.y0.min(y),
                    x1: b.x1.max(x),
                    y1: b.y1.max(y),
                },
            });
        }
    }
    found
}

/// Smallest extent a prompt box is given along an axis, in pixels.
const MIN_EXTENT: f32 = 0.01;

/// Corners `[x0, y0, x1, y1]` as a SAM box prompt.
///
/// A one-pixel-wide component has `x0 == x1`; the Python evaluator sends such a box to the decoder
/// as it is, but `Prompt::validate` rejects empty boxes, so the far corner moves by 0.01 px (which
/// changes the decoder's input by far less than one pixel's worth of positional encoding).
pub fn box_prompt(corners: [f32; 4]) -> BoxPrompt {
    let [x0, y0, x1, y1] = corners;
    BoxPrompt {
        x0,
        y0,
        x1: x1.max(x0 + MIN_EXTENT),
        y1: y1.max(y0 + MIN_EXTENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn mask(rows: &[&str]) -> Array2<bool> {
        let h = rows.len();
        let w = rows[0].len();
        Array2::from_shape_fn((h, w), |(y, x)| rows[y].as_bytes()[x] == b'#')
    }

    #[test]
    fn diagonal_neighbours_join_a_component() {
        // 8-connected: the diagonal chain is one component of 4 px, larger than the 3 px bar.
        let m = mask(&["#...###", ".#.....", "..#....", "...#..."]);
        let (largest, area) = largest_component(m.view()).unwrap();
        assert_eq!(area, 4);
        assert!(largest[[3, 3]] && largest[[0, 0]] && !largest[[0, 5]]);
    }

    #[test]
    fn ties_go_to_the_first_component_in_raster_order() {
        let m = mask(&["..##", "....", "##..", "...."]);
        let (largest, area) = largest_component(m.view()).unwrap();
        assert_eq!(area, 2);
        assert!(largest[[0, 2]] && !largest[[2, 0]]);
    }

    #[test]
    fn empty_masks_have_no_component_and_no_box() {
        let m = Array2::from_elem((4, 5), false);
        assert!(largest_component(m.view()).is_none());
        assert!(tight_box(m.view()).is_none());
    }

    #[test]
    fn tight_box_is_inclusive() {
        let m = mask(&[".....", "..#..", ".###.", "....."]);
        let b = tight_box(m.view()).unwrap();
        assert_eq!(
            b,
            PixelBox {
                x0: 1,
                y0: 1,
                x1: 3,
                y1: 2
            }
        );
        assert_eq!(b.corners(), [1.0, 1.0, 3.0, 2.0]);
        let single = array![[false, true], [false, true]];
        assert_eq!(tight_box(single.view()).unwrap().x0, 1);
    }

    #[test]
    fn degenerate_boxes_become_valid_prompts() {
        let p = box_prompt([5.0, 2.0, 5.0, 9.0]);
        assert!(p.x1 > p.x0 && p.x1 - p.x0 < 0.02);
        assert_eq!((p.y0, p.y1), (2.0, 9.0));
        let prompt = crate::model::Prompt::from_box(p);
        assert!(prompt.validate(10, 6).is_ok());
    }
}
