//! Slice → encoder input: resize the longest side to S, normalize, pad bottom/right to S×S.
//! The same steps the training recipe uses (packaging/model), so the model sees what it learned on.

use super::error::ModelError;
use super::manifest::{Normalize, NormalizeRule, ResizeFilter};
use image::{GrayImage, imageops};
use ndarray::{Array2, Array4, ArrayView2};

/// How an image of the original size maps into the model's S×S input frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputFrame {
    /// Original image (height, width) in pixels.
    pub original: (usize, usize),
    /// Size after resizing the longest side to S, before padding.
    pub resized: (usize, usize),
}

impl InputFrame {
    /// The frame for an image of `height`×`width` and a model of input size `s`.
    pub fn new(height: usize, width: usize, s: usize) -> Self {
        let scale = s as f64 / height.max(width) as f64;
        let resized_h = ((height as f64 * scale).round() as usize).clamp(1, s);
        let resized_w = ((width as f64 * scale).round() as usize).clamp(1, s);
        Self {
            original: (height, width),
            resized: (resized_h, resized_w),
        }
    }

    /// Original pixel coordinates (x, y) → input-frame coordinates.
    pub fn to_input(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = self.resized.1 as f32 / self.original.1 as f32;
        let sy = self.resized.0 as f32 / self.original.0 as f32;
        (x * sx, y * sy)
    }
}

/// How a bundle turns a slice into its encoder input (from its manifest).
#[derive(Debug, Clone, Copy)]
pub struct InputRecipe<'a> {
    /// S, the side of the square input.
    pub size: usize,
    pub resize: ResizeFilter,
    pub normalize: &'a Normalize,
}

impl<'a> InputRecipe<'a> {
    pub fn of(manifest: &'a super::Manifest) -> Self {
        Self {
            size: manifest.input_size as usize,
            resize: manifest.resize,
            normalize: &manifest.normalize,
        }
    }
}

/// Builds the normalized, padded [1,3,S,S] encoder input from an 8-bit grey slice.
pub fn encoder_input(
    image: ArrayView2<u8>,
    recipe: &InputRecipe,
) -> Result<(Array4<f32>, InputFrame), ModelError> {
    let (height, width) = image.dim();
    if height == 0 || width == 0 {
        return Err(ModelError::Image(format!(
            "the slice is empty ({width}×{height} pixels)"
        )));
    }
    let s = recipe.size;
    let frame = InputFrame::new(height, width, s);
    let resized = resized(image, frame.resized, recipe.resize)?;
    let mut input = Array4::<f32>::zeros((1, 3, s, s));
    let normalize = recipe.normalize;
    match normalize.rule {
        NormalizeRule::MeanStd => {
            for (c, (mean, std)) in normalize.mean.iter().zip(&normalize.std).enumerate() {
                for ((y, x), pixel) in resized.indexed_iter() {
                    input[[0, c, y, x]] = (f32::from(*pixel) - mean) / std;
                }
            }
        }
        NormalizeRule::MinMax => {
            // as LiteMedSAM's own code: in double, on the resized 8-bit values
            let min = resized.iter().copied().min().unwrap_or(0);
            let max = resized.iter().copied().max().unwrap_or(0);
            let range = f64::from(max - min).max(1e-8);
            for ((y, x), pixel) in resized.indexed_iter() {
                let value = (f64::from(*pixel - min) / range) as f32;
                for c in 0..3 {
                    input[[0, c, y, x]] = value;
                }
            }
        }
    }
    Ok((input, frame))
}

/// The slice at the frame's resized size, by the bundle's filter.
fn resized(
    image: ArrayView2<u8>,
    (rh, rw): (usize, usize),
    filter: ResizeFilter,
) -> Result<Array2<u8>, ModelError> {
    let (height, width) = image.dim();
    if (rh, rw) == (height, width) {
        return Ok(image.to_owned());
    }
    match filter {
        ResizeFilter::Area => Ok(super::resize::resize_area(image, rh, rw)),
        ResizeFilter::Triangle => {
            let grey = GrayImage::from_raw(
                width as u32,
                height as u32,
                image.iter().copied().collect(),
            )
            .ok_or_else(|| ModelError::Image("slice buffer does not match its size".into()))?;
            let out = imageops::resize(&grey, rw as u32, rh as u32, imageops::FilterType::Triangle);
            Array2::from_shape_vec((rh, rw), out.into_raw())
                .map_err(|e| ModelError::Image(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn frame_scales_the_longest_side_and_keeps_aspect() {
        let frame = InputFrame::new(512, 256, 256);
        assert_eq!(frame.resized, (256, 128));
        assert_eq!(frame.to_input(256.0, 512.0), (128.0, 256.0));
    }

    #[test]
    fn input_is_normalized_and_padded_with_zeros() {
        let image = Array2::<u8>::from_elem((100, 50), 200);
        let normalize = Normalize {
            rule: NormalizeRule::MeanStd,
            mean: [100.0, 100.0, 100.0],
            std: [50.0, 50.0, 50.0],
        };
        let recipe = InputRecipe {
            size: 64,
            resize: ResizeFilter::Triangle,
            normalize: &normalize,
        };
        let (input, frame) = encoder_input(image.view(), &recipe).unwrap();
        assert_eq!(frame.resized, (64, 32));
        assert_eq!(input[[0, 2, 10, 10]], 2.0);
        assert_eq!(input[[0, 0, 10, 40]], 0.0, "padding right of the image");
    }

    #[test]
    fn minmax_spans_zero_to_one_before_the_padding() {
        let image = Array2::from_shape_fn((100, 50), |(y, x)| (50 + y + x) as u8);
        let normalize = Normalize {
            rule: NormalizeRule::MinMax,
            mean: [0.0; 3],
            std: [255.0; 3],
        };
        let recipe = InputRecipe {
            size: 64,
            resize: ResizeFilter::Area,
            normalize: &normalize,
        };
        let (input, frame) = encoder_input(image.view(), &recipe).unwrap();
        let (rh, rw) = frame.resized;
        let inside = input.slice(ndarray::s![0, 1, ..rh, ..rw]);
        let (lo, hi) = inside
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(input[[0, 0, 5, 60]], 0.0, "padding");
    }

    #[test]
    fn empty_slice_is_an_error() {
        let image = Array2::<u8>::zeros((0, 10));
        let normalize = Normalize {
            rule: NormalizeRule::MinMax,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let recipe = InputRecipe {
            size: 64,
            resize: ResizeFilter::Area,
            normalize: &normalize,
        };
        assert!(encoder_input(image.view(), &recipe).is_err());
    }
}
