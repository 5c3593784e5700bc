//! Area resampling of 8-bit slices, bit for bit as OpenCV's `cv2.resize(..., INTER_AREA)` makes
//! it, because models trained on OpenCV's output (LiteMedSAM) must see the same pixels here.
//!
//! OpenCV takes three roads, and so does this file:
//! - an exact 2× reduction averages 2×2 blocks with integer rounding, `(sum + 2) >> 2`;
//! - another whole-number reduction averages k×l blocks in float, rounded half to even;
//! - any other reduction weights each source pixel by the share of it that the output pixel
//!   covers (weights in f32, accumulated row by row in OpenCV's order), rounded half to even.
//!
//! Enlarging (an image smaller than the model's input) is not an area operation; OpenCV then
//! interpolates between neighbours with its area-style weights, in 11-bit fixed point, as
//! `enlarge_bilinear` does here.

use ndarray::{Array2, ArrayView2};

/// `src` resized to `height`×`width` by area averaging (see the module text).
pub fn resize_area(src: ArrayView2<u8>, height: usize, width: usize) -> Array2<u8> {
    let (sh, sw) = src.dim();
    if (sh, sw) == (height, width) {
        return src.to_owned();
    }
    // OpenCV's scale: the inverse of the output/input ratio, in double
    let scale_x = 1.0 / (width as f64 / sw as f64);
    let scale_y = 1.0 / (height as f64 / sh as f64);
    if scale_x < 1.0 || scale_y < 1.0 {
        return enlarge_bilinear(src, height, width);
    }
    let (ix, iy) = (scale_x.round(), scale_y.round());
    let whole = (scale_x - ix).abs() < f64::EPSILON && (scale_y - iy).abs() < f64::EPSILON;
    if whole && ix == 2.0 && iy == 2.0 {
        halve(src, height, width)
    } else if whole {
        block_mean(src, height, width, ix as usize, iy as usize)
    } else {
        weighted_area(src, height, width, scale_x, scale_y)
    }
}

fn halve(src: ArrayView2<u8>, height: usize, width: usize) -> Array2<u8> {
    Array2::from_shape_fn((height, width), |(y, x)| {
        let sum = u32::from(src[[2 * y, 2 * x]])
            + u32::from(src[[2 * y, 2 * x + 1]])
            + u32::from(src[[2 * y + 1, 2 * x]])
            + u32::from(src[[2 * y + 1, 2 * x + 1]]);
        ((sum + 2) >> 2) as u8
    })
}

fn block_mean(
    src: ArrayView2<u8>,
    height: usize,
    width: usize,
    kx: usize,
    ky: usize,
) -> Array2<u8> {
    let (sh, sw) = src.dim();
    let scale = 1.0f32 / (kx * ky) as f32;
    Array2::from_shape_fn((height, width), |(y, x)| {
        let mut sum = 0i32;
        for sy in y * ky..((y + 1) * ky).min(sh) {
            for sx in x * kx..((x + 1) * kx).min(sw) {
                sum += i32::from(src[[sy, sx]]);
            }
        }
        round_to_u8(sum as f32 * scale)
    })
}

/// One source index's share of one output index.
#[derive(Debug, Clone, Copy)]
struct Share {
    source: usize,
    target: usize,
    weight: f32,
}

/// The shares along one axis of `source_len` pixels reduced to `target_len` by `scale`.
fn shares(source_len: usize, target_len: usize, scale: f64) -> Vec<Share> {
    let mut out = Vec::new();
    for target in 0..target_len {
        let start = target as f64 * scale;
        let end = start + scale;
        let last = (end.floor() as usize).min(source_len - 1);
        let first = (start.ceil() as usize).min(last);
        let cell = scale.min(source_len as f64 - start);
        if first as f64 - start > 1e-3 {
            out.push(Share {
                source: first - 1,
                target,
                weight: ((first as f64 - start) / cell) as f32,
            });
        }
        for source in first..last {
            out.push(Share {
                source,
                target,
                weight: (1.0 / cell) as f32,
            });
        }
        if end - last as f64 > 1e-3 {
            out.push(Share {
                source: last,
                target,
                weight: ((end - last as f64).min(1.0).min(cell) / cell) as f32,
            });
        }
    }
    out
}

fn weighted_area(
    src: ArrayView2<u8>,
    height: usize,
    width: usize,
    scale_x: f64,
    scale_y: f64,
) -> Array2<u8> {
    let (sh, sw) = src.dim();
    let across = shares(sw, width, scale_x);
    let down = shares(sh, height, scale_y);
    let mut out = Array2::<u8>::zeros((height, width));
    let mut row = vec![0f32; width];
    let mut sum = vec![0f32; width];
    let mut current: Option<usize> = None;
    for share in &down {
        row.iter_mut().for_each(|v| *v = 0.0);
        for s in &across {
            row[s.target] += f32::from(src[[share.source, s.source]]) * s.weight;
        }
        if current != Some(share.target) {
            if let Some(done) = current {
                write_row(&mut out, done, &sum);
            }
            current = Some(share.target);
            for (s, r) in sum.iter_mut().zip(&row) {
                *s = r * share.weight;
            }
        } else {
            for (s, r) in sum.iter_mut().zip(&row) {
                *s += r * share.weight;
            }
        }
    }
    if let Some(done) = current {
        write_row(&mut out, done, &sum);
    }
    out
}

/// Output row `y` from its accumulated sums.
fn write_row(out: &mut Array2<u8>, y: usize, sums: &[f32]) {
    for (o, v) in out.row_mut(y).iter_mut().zip(sums) {
        *o = round_to_u8(*v);
    }
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, then clamp.
fn round_to_u8(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

/// One axis of OpenCV's enlargement under `INTER_AREA`: for output index d, the source index and
/// the fixed-point weights (11 bits) of it and its successor. The weight moves to the successor
/// only where the output pixel straddles two source pixels, so this is close to nearest-neighbour.
fn enlarge_taps(source_len: usize, target_len: usize) -> Vec<(usize, [i32; 2])> {
    let inv_scale = target_len as f64 / source_len as f64;
    let scale = 1.0 / inv_scale;
    (0..target_len)
        .map(|d| {
            let mut s = (d as f64 * scale).floor() as i64;
            let mut f = ((d as f64 + 1.0) - (s as f64 + 1.0) * inv_scale) as f32;
            f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            if s < 0 {
                (s, f) = (0, 0.0);
            }
            if s >= source_len as i64 - 1 {
                (s, f) = (source_len as i64 - 1, 0.0);
            }
            let fixed = |w: f32| (w * 2048.0).round_ties_even() as i32;
            (s as usize, [fixed(1.0 - f), fixed(f)])
        })
        .collect()
}

/// OpenCV's `INTER_AREA` enlargement of 8-bit images: a horizontal pass in integers, then a
/// vertical one that OpenCV's SIMD code rounds its own way on whole blocks of 16 pixels and its
/// scalar code on the rest of the row.
fn enlarge_bilinear(src: ArrayView2<u8>, height: usize, width: usize) -> Array2<u8> {
    let (sh, sw) = src.dim();
    let across = enlarge_taps(sw, width);
    let down = enlarge_taps(sh, height);
    let row = |y: usize| -> Vec<i32> {
        across
            .iter()
            .map(|&(s, [a0, a1])| {
                let next = (s + 1).min(sw - 1);
                i32::from(src[[y, s]]) * a0 + i32::from(src[[y, next]]) * a1
            })
            .collect()
    };
    let simd_width = width / 16 * 16;
    let mut out = Array2::<u8>::zeros((height, width));
    for (y, &(s, [b0, b1])) in down.iter().enumerate() {
        let (r0, r1) = (row(s), row((s + 1).min(sh - 1)));
        for x in 0..width {
            let value = if x < simd_width {
                let mulhi = |h: i32, b: i32| ((h >> 4) * b) >> 16;
                (mulhi(r0[x], b0) + mulhi(r1[x], b1) + 2) >> 2
            } else {
                (i64::from(b0) * i64::from(r0[x]) + i64::from(b1) * i64::from(r1[x]) + (1 << 21))
                    .wrapping_shr(22) as i32
            };
            out[[y, x]] = value.clamp(0, 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn halving_rounds_half_up_like_opencv() {
        let src = Array2::from_shape_vec((2, 4), vec![0, 1, 10, 10, 1, 0, 10, 11]).unwrap();
        let out = resize_area(src.view(), 1, 2);
        // (0+1+1+0+2)>>2 = 1 where half-to-even would give 0; (41+2)>>2 = 10
        assert_eq!(out.into_raw_vec_and_offset().0, vec![1, 10]);
    }

    #[test]
    fn shares_of_an_output_pixel_sum_to_one() {
        for (from, to) in [(257, 256), (300, 256), (511, 256), (1000, 256)] {
            let scale = 1.0 / (to as f64 / from as f64);
            let shares = shares(from, to, scale);
            for target in 0..to {
                let total: f32 = shares
                    .iter()
                    .filter(|s| s.target == target)
                    .map(|s| s.weight)
                    .sum();
                assert!(
                    (total - 1.0).abs() < 1e-4,
                    "{from}→{to}, pixel {target}: {total}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_at_any_size() {
        let src = Array2::<u8>::from_elem((257, 300), 77);
        for (h, w) in [(256, 256), (128, 150), (85, 100), (400, 512)] {
            assert!(
                resize_area(src.view(), h, w).iter().all(|v| *v == 77),
                "{h}×{w}"
            );
        }
    }
}
