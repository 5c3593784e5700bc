//! Pseudo-positive labels on the decoder's low-res grid: seeded as random rotated ellipses, then
//! evolved into the model's own confident masks. Also the roll/flip augmentation shared by
//! images, labels and gradients.

use super::Rng;
use crate::eval::{largest_component, tight_box};
use ndarray::Array2;

/// A box (x0, y0, x1, y1) in grid cells, inclusive of x0/y0 and exclusive of x1/y1.
pub type GridBox = (usize, usize, usize, usize);

/// A random rotated ellipse well inside the grid (so small rolls never wrap it).
pub fn seed_ellipse(h: usize, w: usize, rng: &mut Rng) -> Array2<f32> {
    let (cy, cx) = (
        h as f64 * rng.range(0.3, 0.7),
        w as f64 * rng.range(0.3, 0.7),
    );
    let (a, b) = (
        w.min(h) as f64 * rng.range(0.08, 0.22),
        w.min(h) as f64 * rng.range(0.08, 0.22),
    );
    let theta = rng.range(0.0, std::f64::consts::PI);
    let (c, s) = (theta.cos(), theta.sin());
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (dy, dx) = (y as f64 + 0.5 - cy, x as f64 + 0.5 - cx);
        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
        if (u / a).powi(2) + (v / b).powi(2) <= 1.0 {
            1.0
        } else {
            0.0
        }
    })
}

/// The tight box of the positive cells, if any.
pub fn bounding_box(mask: &Array2<f32>) -> Option<GridBox> {
    let b = tight_box(mask.mapv(|v| v > 0.5).view())?;
    Some((b.x0, b.y0, b.x1 + 1, b.y1 + 1))
}

/// The label that replaces `current`: the model's mask (logits) inside the box grown by a
/// margin, its largest component, accepted if its area is within [1/4, 4]× the current
/// label's and at least `min_area` cells; otherwise None (keep the current label).
pub fn evolve(
    current: &Array2<f32>,
    logits: &Array2<f32>,
    margin: usize,
    min_area: usize,
) -> Option<Array2<f32>> {
    let (x0, y0, x1, y1) = bounding_box(current)?;
    let (h, w) = current.dim();
    let (x0, y0) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
    let (x1, y1) = ((x1 + margin).min(w), (y1 + margin).min(h));
    let inside = Array2::from_shape_fn((h, w), |(y, x)| {
        (y0..y1).contains(&y) && (x0..x1).contains(&x) && logits[[y, x]] > 0.0
    });
    let (component, area) = largest_component(inside.view())?;
    let old_area = current.iter().filter(|v| **v > 0.5).count().max(1);
    if area < min_area || area * 4 < old_area || area > old_area * 4 {
        return None;
    }
    Some(component.mapv(|v| if v { 1.0 } else { 0.0 }))
}

/// A roll by (dy, dx) cells (wrapping) followed by an optional horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augment {
    pub dy: isize,
    pub dx: isize,
    pub flip: bool,
}

impl Augment {
    /// The same augmentation on a grid `factor` times coarser (rolls divide exactly).
    pub fn scaled_down(&self, factor: isize) -> Self {
        Self {
            dy: self.dy / factor,
            dx: self.dx / factor,
            flip: self.flip,
        }
    }

    pub fn apply(&self, a: &Array2<f32>) -> Array2<f32> {
        let (h, w) = a.dim();
        Array2::from_shape_fn((h, w), |(y, x)| {
            let x = if self.flip { w - 1 - x } else { x };
            let sy = (y as isize - self.dy).rem_euclid(h as isize) as usize;
            let sx = (x as isize - self.dx).rem_euclid(w as isize) as usize;
            a[[sy, sx]]
        })
    }

    /// The inverse: maps an augmented array (or a gradient in the augmented frame) back.
    pub fn invert(&self, a: &Array2<f32>) -> Array2<f32> {
        let (h, w) = a.dim();
        Array2::from_shape_fn((h, w), |(y, x)| {
            let ay = (y as isize + self.dy).rem_euclid(h as isize) as usize;
            let ax = (x as isize + self.dx).rem_euclid(w as isize) as usize;
            let ax = if self.flip { w - 1 - ax } else { ax };
            a[[ay, ax]]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_inverts_exactly() {
        let a = Array2::from_shape_fn((6, 8), |(y, x)| (y * 8 + x) as f32);
        for aug in [
            Augment {
                dy: 2,
                dx: -3,
                flip: true,
            },
            Augment {
                dy: -1,
                dx: 4,
                flip: false,
            },
            Augment {
                dy: 0,
                dx: 0,
                flip: true,
            },
        ] {
            assert_eq!(aug.invert(&aug.apply(&a)), a, "{aug:?}");
        }
        let shifted = Augment {
            dy: 1,
            dx: 0,
            flip: false,
        }
        .apply(&a);
        assert_eq!(shifted[[1, 0]], a[[0, 0]]);
        let flipped = Augment {
            dy: 0,
            dx: 0,
            flip: true,
        }
        .apply(&a);
        assert_eq!(flipped[[0, 0]], a[[0, 7]]);
    }

    #[test]
    fn ellipse_is_inside_and_has_a_box() {
        let mut rng = Rng::new(1);
        for _ in 0..20 {
            let e = seed_ellipse(128, 128, &mut rng);
            let (x0, y0, x1, y1) = bounding_box(&e).unwrap();
            assert!(x0 > 0 && y0 > 0 && x1 < 128 && y1 < 128);
            assert!(e.sum() >= 20.0);
        }
    }

    #[test]
    fn evolution_takes_the_largest_component_inside_the_box_within_area_bounds() {
        let mut current = Array2::<f32>::zeros((32, 32));
        current.slice_mut(ndarray::s![10..20, 10..20]).fill(1.0);
        let mut logits = Array2::<f32>::from_elem((32, 32), -1.0);
        logits.slice_mut(ndarray::s![11..19, 12..22]).fill(2.0); // the organ-like blob
        logits.slice_mut(ndarray::s![0..3, 0..3]).fill(2.0); // outside the box: ignored
        logits[[15, 9]] = 2.0; // touches the blob? no: separate single cell left of it
        let next = evolve(&current, &logits, 2, 4).unwrap();
        assert_eq!(next.sum(), 80.0);
        assert_eq!(next[[0, 0]], 0.0);
        // A mask far smaller than the label is rejected.
        let mut tiny = Array2::<f32>::from_elem((32, 32), -1.0);
        tiny.slice_mut(ndarray::s![14..16, 14..16]).fill(2.0);
        assert!(evolve(&current, &tiny, 2, 4).is_none());
    }
}
