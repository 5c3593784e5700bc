//! Decoder low-res logits → mask logits at the original image size.
//!
//! The official SAM ONNX decoder does this inside the graph (`SamOnnxModel.mask_postprocessing`)
//! for all four mask candidates. `SamModel` runs the decoder without that part and upsamples only
//! the candidate it keeps, here, with the graph's arithmetic: ONNX `Resize` (linear,
//! `half_pixel`) as ONNX Runtime's CPU kernel evaluates it, term for term, so the logits are the
//! graph's `masks` output bit for bit on ONNX Runtime 1.32 (tests/tests/engine_postprocess.rs
//! compares them on real CT slices, square and not).

use ndarray::{Array2, ArrayView2};

/// Upsamples one channel of the decoder's low-res logits to the original `height`×`width` image,
/// as `SamOnnxModel.mask_postprocessing` does: bilinear to the model's `input_size`×`input_size`
/// frame, crop the padding off (keep the [`prepadded_size`] top-left region), bilinear to the
/// original size. Threshold the result at 0 for the mask.
///
/// The two resizes are not fused: a bilinear resize of a bilinear resize is not one bilinear
/// resize, and the point is to give what the graph gives.
pub fn upscale_mask_logits(
    low_res: ArrayView2<f32>,
    input_size: usize,
    original: (usize, usize),
) -> Array2<f32> {
    let (height, width) = original;
    if low_res.is_empty() || input_size == 0 || height == 0 || width == 0 {
        return Array2::zeros(original);
    }
    let (crop_h, crop_w) = prepadded_size(original, input_size);
    let padded = resize_bilinear(low_res, (input_size, input_size), (crop_h, crop_w));
    resize_bilinear(padded.view(), (height, width), (height, width))
}

/// Where the image sits in the model's padded input frame, computed as upstream's
/// `resize_longest_image_size` does in float32: `floor(size · (S / longest) + 0.5)`. PyTorch
/// evaluates `S / tensor` as `reciprocal(tensor) · S`, and that is what the exported graph holds,
/// so the scale is formed the same way (for a power-of-two S the two forms agree anyway).
/// Clamped to 1..=S: the graph would fail on a zero-sized crop of a very thin image.
pub fn prepadded_size(original: (usize, usize), input_size: usize) -> (usize, usize) {
    let (height, width) = original;
    let longest = height.max(width).max(1) as f32;
    let scale = (1.0 / longest) * input_size as f32;
    let side = |n: usize| ((scale * n as f32 + 0.5).floor() as usize).clamp(1, input_size.max(1));
    (side(height), side(width))
}

/// The top-left `region` of `src` resized to `full` (rows, columns), bilinear with half-pixel
/// centres and clamping at the edges: ONNX `Resize` with `mode=linear`,
/// `coordinate_transformation_mode=half_pixel`, which is what PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False)` exports to. Computing only the region is
/// the crop that follows the first resize, without producing the padding first.
pub fn resize_bilinear(
    src: ArrayView2<f32>,
    full: (usize, usize),
    region: (usize, usize),
) -> Array2<f32> {
    let (in_h, in_w) = src.dim();
    let (out_h, out_w) = (region.0.min(full.0), region.1.min(full.1));
    if in_h == 0 || in_w == 0 {
        return Array2::zeros((out_h, out_w));
    }
    let src = src.as_standard_layout();
    let Some(pixels) = src.as_slice() else {
        return Array2::zeros((out_h, out_w));
    };
    let rows = taps(in_h, full.0, out_h);
    let cols = taps(in_w, full.1, out_w);
    let mut out = Vec::with_capacity(out_h * out_w);
    for row in &rows {
        let upper = &pixels[row.lo * in_w..(row.lo + 1) * in_w];
        let lower = &pixels[row.hi * in_w..(row.hi + 1) * in_w];
        out.extend(cols.iter().map(|col| {
            // ONNX Runtime's term order, (x weight · y weight) · value, summed left to right,
            // so that the sums round as the graph's do.
            col.w_lo * row.w_lo * upper[col.lo]
                + col.w_hi * row.w_lo * upper[col.hi]
                + col.w_lo * row.w_hi * lower[col.lo]
                + col.w_hi * row.w_hi * lower[col.hi]
        }));
    }
    Array2::from_shape_vec((out_h, out_w), out).unwrap_or_else(|_| Array2::zeros((out_h, out_w)))
}

/// The two source samples of one output coordinate and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    lo: usize,
    hi: usize,
    w_lo: f32,
    w_hi: f32,
}

/// Taps for the first `count` outputs of a resize from `input` to `output` samples along one
/// axis. The scale is `output / input` in float32 and the source coordinate
/// `(i + 0.5) / scale − 0.5`, clamped to the input: ONNX Runtime's `half_pixel` with `sizes`
/// given, float for float. At the clamped edge both taps are the same sample, weighted ½ each.
fn taps(input: usize, output: usize, count: usize) -> Vec<Tap> {
    let scale = output as f32 / input as f32;
    let last = input - 1;
    (0..count)
        .map(|i| {
            let x = if scale == 1.0 {
                i as f32
            } else {
                (i as f32 + 0.5) / scale - 0.5
            };
            let x = x.clamp(0.0, last as f32);
            let lo = (x as usize).min(last);
            let hi = (lo + 1).min(last);
            if lo == hi {
                return Tap {
                    lo,
                    hi,
                    w_lo: 0.5,
                    w_hi: 0.5,
                };
            }
            Tap {
                lo,
                hi,
                w_lo: (x - hi as f32).abs(),
                w_hi: (x - lo as f32).abs(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn close(a: &Array2<f32>, b: &Array2<f32>) {
        assert_eq!(a.dim(), b.dim());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?}\n!=\n{b:?}");
        }
    }

    #[test]
    fn doubling_a_2x2_matches_the_hand_computed_half_pixel_grid() {
        // Output i samples source (i + 0.5) / 2 − 0.5: −0.25, 0.25, 0.75, 1.25, clamped to 0..1,
        // so each axis reads [a, ¾a+¼b, ¼a+¾b, b].
        let src = array![[0.0f32, 4.0], [8.0, 12.0]];
        let expected = array![
            [0.0, 1.0, 3.0, 4.0],
            [2.0, 3.0, 5.0, 6.0],
            [6.0, 7.0, 9.0, 10.0],
            [8.0, 9.0, 11.0, 12.0],
        ];
        close(&resize_bilinear(src.view(), (4, 4), (4, 4)), &expected);
    }

    #[test]
    fn shrinking_averages_the_two_nearest_samples() {
        // 4 → 2: outputs sample 0.5 and 2.5, halfway between neighbours.
        let src = array![[0.0f32, 2.0, 4.0, 6.0]];
        close(
            &resize_bilinear(src.view(), (1, 2), (1, 2)),
            &array![[1.0, 5.0]],
        );
    }

    #[test]
    fn a_region_is_the_top_left_of_the_full_resize() {
        let src = Array2::from_shape_fn((5, 7), |(y, x)| (y * 7 + x) as f32 * 0.37 - 3.0);
        let full = resize_bilinear(src.view(), (16, 16), (16, 16));
        let region = resize_bilinear(src.view(), (16, 16), (9, 12));
        close(&region, &full.slice(ndarray::s![..9, ..12]).to_owned());
    }

    #[test]
    fn same_size_is_the_identity() {
        let src = Array2::from_shape_fn((3, 5), |(y, x)| (y * 5 + x) as f32);
        assert_eq!(resize_bilinear(src.view(), (3, 5), (3, 5)), src);
    }

    #[test]
    fn prepadded_size_rounds_half_up_like_upstream() {
        assert_eq!(prepadded_size((512, 512), 256), (256, 256));
        // 301 · ½ = 150.5 → 151 (floor(x + 0.5), not banker's rounding).
        assert_eq!(prepadded_size((512, 301), 256), (256, 151));
        // 300 · 256/437 = 175.74 → 176.
        assert_eq!(prepadded_size((437, 300), 256), (256, 176));
        assert_eq!(prepadded_size((100, 200), 1024), (512, 1024));
        assert_eq!(
            prepadded_size((1, 5000), 256),
            (1, 256),
            "never a zero-sized crop"
        );
    }

    #[test]
    fn upscaling_a_constant_keeps_it_everywhere() {
        let low = Array2::from_elem((64, 64), -2.5f32);
        let out = upscale_mask_logits(low.view(), 256, (300, 200));
        assert_eq!(out.dim(), (300, 200));
        assert!(out.iter().all(|v| (v + 2.5).abs() < 1e-6));
    }

    #[test]
    fn the_crop_drops_the_padding_before_the_final_resize() {
        // Logits positive over the image part of a 512×256 slice's frame (left half), negative
        // over the padding: the mask must cover the whole slice and nothing leaks from the pad.
        let low = Array2::from_shape_fn((64, 64), |(_, x)| if x < 32 { 5.0 } else { -5.0 });
        let out = upscale_mask_logits(low.view(), 256, (512, 256));
        assert_eq!(out.dim(), (512, 256));
        assert!(out.column(0).iter().all(|v| *v == 5.0));
        assert!(
            out.iter().all(|v| *v > 0.0),
            "the padding leaked into the mask"
        );
    }
}
