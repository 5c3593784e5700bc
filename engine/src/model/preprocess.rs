//! Slice → encoder input: resize the longest side to S, normalize, pad bottom/right to S×S.
//! The same steps the training recipe uses (packaging/model), so the model sees what it learned on.

use super::error::ModelError;
use super::manifest::Normalize;
use image::{GrayImage, imageops};
use ndarray::{Array4, ArrayView2};

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

/// Builds the normalized, padded [1,3,S,S] encoder input from an 8-bit grey slice.
pub fn encoder_input(
    image: ArrayView2<u8>,
    s: usize,
    normalize: &Normalize,
) -> Result<(Array4<f32>, InputFrame), ModelError> {
    let (height, width) = image.dim();
    if height == 0 || width == 0 {
        return Err(ModelError::Image(format!(
            "the slice is empty ({width}×{height} pixels)"
        )));
    }
    let frame = InputFrame::new(height, width, s);
    let grey = GrayImage::from_raw(width as u32, height as u32, image.iter().copied().collect())
        .ok_or_else(|| ModelError::Image("slice buffer does not match its size".into()))?;
    let (rh, rw) = frame.resized;
    let resized = if (rh, rw) == (height, width) {
        grey
    } else {
        imageops::resize(&grey, rw as u32, rh as u32, imageops::FilterType::Triangle)
    };
    let mut input = Array4::<f32>::zeros((1, 3, s, s));
    for (c, (mean, std)) in normalize.mean.iter().zip(&normalize.std).enumerate() {
        for (x, y, pixel) in resized.enumerate_pixels() {
            input[[0, c, y as usize, x as usize]] = (f32::from(pixel.0[0]) - mean) / std;
        }
    }
    Ok((input, frame))
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
            mean: [100.0, 100.0, 100.0],
            std: [50.0, 50.0, 50.0],
        };
        let (input, frame) = encoder_input(image.view(), 64, &normalize).unwrap();
        assert_eq!(frame.resized, (64, 32));
        assert_eq!(input[[0, 2, 10, 10]], 2.0);
        assert_eq!(input[[0, 0, 10, 40]], 0.0, "padding right of the image");
    }

    #[test]
    fn empty_slice_is_an_error() {
        let image = Array2::<u8>::zeros((0, 10));
        let normalize = Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        assert!(encoder_input(image.view(), 64, &normalize).is_err());
    }
}
