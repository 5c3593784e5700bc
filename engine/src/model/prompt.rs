//! What the user tells SAM: clicks, a box, and the previous mask.

use super::error::ModelError;
use ndarray::Array2;

/// A click in original image pixels (x = column, y = row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
    /// true: "this is the organ"; false: "this is not".
    pub positive: bool,
}

/// A box in original image pixels, corners inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxPrompt {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

/// A prompt: any mix of points, at most one box, and optionally the previous low-res logits
/// (from an earlier prediction on the same embedding, or a neighbouring slice when propagating).
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    pub points: Vec<Point>,
    pub bbox: Option<BoxPrompt>,
    pub previous_logits: Option<Array2<f32>>,
}

impl Prompt {
    pub fn from_box(bbox: BoxPrompt) -> Self {
        Self {
            bbox: Some(bbox),
            ..Self::default()
        }
    }

    pub fn from_point(x: f32, y: f32, positive: bool) -> Self {
        Self {
            points: vec![Point { x, y, positive }],
            ..Self::default()
        }
    }

    /// A lone click or a lone box is ambiguous (part, organ, or more?), so SAM's three
    /// multimask candidates are compared; richer prompts use the single-mask output.
    pub fn is_ambiguous(&self) -> bool {
        let elements = self.points.len() + usize::from(self.bbox.is_some());
        elements == 1 && self.previous_logits.is_none()
    }

    /// Checks that the prompt lies on an image of `height`×`width` pixels.
    pub fn validate(&self, height: usize, width: usize) -> Result<(), ModelError> {
        let (w, h) = (width as f32, height as f32);
        let inside = |x: f32, y: f32| {
            x.is_finite() && y.is_finite() && (0.0..=w).contains(&x) && (0.0..=h).contains(&y)
        };
        if self.points.is_empty() && self.bbox.is_none() {
            return Err(ModelError::Prompt(
                "it has no point and no box; click on the organ or drag a box around it".into(),
            ));
        }
        for p in &self.points {
            if !inside(p.x, p.y) {
                return Err(ModelError::Prompt(format!(
                    "point ({}, {}) is outside the {width}×{height} image",
                    p.x, p.y
                )));
            }
        }
        if let Some(b) = self.bbox {
            if !inside(b.x0, b.y0) || !inside(b.x1, b.y1) {
                return Err(ModelError::Prompt(format!(
                    "box ({}, {})–({}, {}) reaches outside the {width}×{height} image",
                    b.x0, b.y0, b.x1, b.y1
                )));
            }
            if b.x1 <= b.x0 || b.y1 <= b.y0 {
                return Err(ModelError::Prompt(format!(
                    "box ({}, {})–({}, {}) is empty: the second corner must lie right of and below the first",
                    b.x0, b.y0, b.x1, b.y1
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_image_and_empty_prompts_are_rejected_with_the_reason() {
        let outside = Prompt::from_point(300.0, 10.0, true);
        let err = outside.validate(256, 256).unwrap_err().to_string();
        assert!(err.contains("outside the 256×256 image"), "{err}");
        let flipped = Prompt::from_box(BoxPrompt {
            x0: 50.0,
            y0: 50.0,
            x1: 40.0,
            y1: 60.0,
        });
        assert!(
            flipped
                .validate(256, 256)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(Prompt::default().validate(256, 256).is_err());
        assert!(
            Prompt::from_point(f32::NAN, 1.0, true)
                .validate(256, 256)
                .is_err()
        );
        assert!(
            Prompt::from_point(255.0, 0.0, false)
                .validate(256, 256)
                .is_ok()
        );
    }

    #[test]
    fn only_single_element_prompts_are_ambiguous() {
        assert!(Prompt::from_point(1.0, 1.0, true).is_ambiguous());
        let mut two = Prompt::from_point(1.0, 1.0, true);
        two.points.push(Point {
            x: 2.0,
            y: 2.0,
            positive: false,
        });
        assert!(!two.is_ambiguous());
    }
}
