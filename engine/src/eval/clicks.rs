//! Simulated clicks: where a user corrects a mask next (the protocol of interactive segmentation
//! benchmarks, RITM / SAM): in the larger error region, at its point farthest from the region's
//! border, positive where the organ was missed and negative where the mask spills over.

use crate::model::Point;
use ndarray::{Array2, ArrayView2};

/// The next click for the current `prediction` (none yet: the first click) against `reference`,
/// or `None` when the two agree everywhere. Ties go to the first pixel in raster order.
pub fn next_click(
    prediction: Option<ArrayView2<bool>>,
    reference: ArrayView2<bool>,
) -> Option<Point> {
    let missed = Array2::from_shape_fn(reference.dim(), |at| {
        reference[at] && !prediction.is_some_and(|p| p[at])
    });
    let spilled = match prediction {
        Some(p) => Array2::from_shape_fn(reference.dim(), |at| p[at] && !reference[at]),
        None => Array2::from_elem(reference.dim(), false),
    };
    let (miss_at, miss_depth) = deepest(missed.view());
    let (spill_at, spill_depth) = deepest(spilled.view());
    let (at, positive) = if miss_depth >= spill_depth {
        (miss_at, true)
    } else {
        (spill_at, false)
    };
    at.map(|(row, col)| Point {
        x: col as f32,
        y: row as f32,
        positive,
    })
}

/// The pixel of `region` farthest from every pixel outside it (beyond the image counts as
/// outside), and its squared distance; `(None, 0)` for an empty region.
fn deepest(region: ArrayView2<bool>) -> (Option<(usize, usize)>, u64) {
    let depth = squared_distance_inside(region);
    let mut best = (None, 0);
    for ((row, col), &d) in depth.indexed_iter() {
        if d > best.1 {
            best = (Some((row, col)), d);
        }
    }
    best
}

/// Exact squared Euclidean distance from each pixel of `region` to the nearest pixel outside it
/// (0 outside), the image framed by outside pixels. Two passes of the lower envelope of parabolas
/// (Felzenszwalb & Huttenlocher, 2012): columns first, then rows.
pub fn squared_distance_inside(region: ArrayView2<bool>) -> Array2<u64> {
    let (h, w) = region.dim();
    // Column pass: distance to the nearest outside pixel in the same column, framed above and below.
    let mut columns = Array2::<u64>::zeros((h, w));
    for col in 0..w {
        let mut run = 0u64;
        for row in 0..h {
            run = if region[[row, col]] { run + 1 } else { 0 };
            columns[[row, col]] = run;
        }
        run = 0;
        for row in (0..h).rev() {
            run = if region[[row, col]] { run + 1 } else { 0 };
            let d = columns[[row, col]].min(run);
            columns[[row, col]] = d * d;
        }
    }
    // Row pass over the framed row: index 0 and w + 1 are outside (distance 0).
    let mut out = Array2::<u64>::zeros((h, w));
    let mut f = vec![0u64; w + 2];
    for row in 0..h {
        for col in 0..w {
            f[col + 1] = columns[[row, col]];
        }
        f[0] = 0;
        f[w + 1] = 0;
        let envelope = lower_envelope(&f);
        for col in 0..w {
            out[[row, col]] = envelope[col + 1];
        }
    }
    out
}

/// `d(q) = min_p (q - p)² + f(p)` for every q: the 1-D squared distance transform of `f`.
fn lower_envelope(f: &[u64]) -> Vec<u64> {
    let n = f.len();
    let mut vertices = vec![0usize; n];
    // Boundaries between parabolas, as exact fractions would be costly; f64 is exact for these sizes.
    let mut bounds = vec![0f64; n + 1];
    let intersect = |p: usize, q: usize| {
        let (p_f, q_f) = (p as f64, q as f64);
        ((f[q] as f64 + q_f * q_f) - (f[p] as f64 + p_f * p_f)) / (2.0 * (q_f - p_f))
    };
    let mut k = 0usize;
    bounds[0] = f64::NEG_INFINITY;
    bounds[1] = f64::INFINITY;
    for q in 1..n {
        let mut s = intersect(vertices[k], q);
        while s <= bounds[k] {
            k -= 1;
            s = intersect(vertices[k], q);
        }
        k += 1;
        vertices[k] = q;
        bounds[k] = s;
        bounds[k + 1] = f64::INFINITY;
    }
    let mut out = vec![0u64; n];
    k = 0;
    for (q, slot) in out.iter_mut().enumerate() {
        while bounds[k + 1] < q as f64 {
            k += 1;
        }
        let p = vertices[k];
        let dq = q.abs_diff(p) as u64;
        *slot = dq * dq + f[p];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    /// Brute force: the nearest outside pixel (or the frame) by trying them all.
    fn brute(region: ArrayView2<bool>) -> Array2<u64> {
        let (h, w) = region.dim();
        Array2::from_shape_fn((h, w), |(r, c)| {
            if !region[[r, c]] {
                return 0;
            }
            let mut best = u64::MAX;
            for rr in -1..=h as i64 {
                for cc in -1..=w as i64 {
                    let inside_image = rr >= 0 && cc >= 0 && rr < h as i64 && cc < w as i64;
                    if inside_image && region[[rr as usize, cc as usize]] {
                        continue;
                    }
                    let (dr, dc) = (rr - r as i64, cc - c as i64);
                    best = best.min((dr * dr + dc * dc) as u64);
                }
            }
            best
        })
    }

    #[test]
    fn distance_transform_matches_brute_force_on_irregular_shapes() {
        let mut seed = 7u64;
        for _ in 0..20 {
            let region = Array2::from_shape_fn((13, 17), |_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                !(seed >> 33).is_multiple_of(5)
            });
            assert_eq!(squared_distance_inside(region.view()), brute(region.view()));
        }
    }

    #[test]
    fn the_first_click_is_the_organs_most_interior_pixel() {
        let mut organ = Array2::from_elem((20, 30), false);
        organ.slice_mut(s![4..11, 3..25]).fill(true); // 7 rows: centre row 7
        let click = next_click(None, organ.view()).unwrap();
        assert!(click.positive);
        assert_eq!(click.y, 7.0);
        // every column of rows 4..11 between 6 and 21 is 4 px from the border; the first wins
        assert_eq!(click.x, 6.0);
    }

    #[test]
    fn corrections_go_to_the_larger_error_and_say_which_kind() {
        let mut organ = Array2::from_elem((30, 30), false);
        organ.slice_mut(s![5..25, 5..15]).fill(true);
        // the mask misses a 10×10 block of the organ and spills a 4×4 block beside it
        let mut mask = organ.clone();
        mask.slice_mut(s![15..25, 5..15]).fill(false);
        mask.slice_mut(s![5..9, 20..24]).fill(true);
        let click = next_click(Some(mask.view()), organ.view()).unwrap();
        assert!(click.positive, "{click:?}");
        assert!((15.0..25.0).contains(&click.y) && (5.0..15.0).contains(&click.x));
        // a large spill outweighs a small miss
        let mut spill = organ.clone();
        spill.slice_mut(s![0..30, 16..30]).fill(true);
        spill[[10, 10]] = false;
        let click = next_click(Some(spill.view()), organ.view()).unwrap();
        assert!(!click.positive && click.x >= 16.0, "{click:?}");
        assert!(next_click(Some(organ.view()), organ.view()).is_none());
    }
}
