//! Raw intensities (HU, MR signal) → the 8-bit grey image a model was trained on.

use super::manifest::IntensityRule;
use ndarray::{Array2, ArrayView2};

impl IntensityRule {
    /// Applies the rule to one slice. Non-finite values (padding, NaN) become 0.
    pub fn to_u8(&self, slice: ArrayView2<f32>) -> Array2<u8> {
        let (low, high, zero_stays) = match *self {
            IntensityRule::Window { center, width } => {
                (center - width / 2.0, center + width / 2.0, false)
            }
            IntensityRule::Percentile { low, high, nonzero } => {
                let (l, h) = percentile_range(slice, low, high, nonzero);
                (l, h, nonzero)
            }
        };
        let span = (high - low).max(f32::EPSILON);
        slice.mapv(|v| {
            if zero_stays && v == 0.0 {
                0
            } else if v.is_finite() {
                ((v - low) / span * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        })
    }

    /// What is wrong with the rule's numbers, each naming its key under `key` (e.g.
    /// "intensity.ct.width must be a finite number > 0, found 0"). `to_u8` needs a finite
    /// centre and a positive finite width, or finite percentiles with 0 ≤ low < high ≤ 100.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        match *self {
            IntensityRule::Window { center, width } => {
                if !center.is_finite() {
                    problems.push(format!(
                        "{key}.center must be a finite number, found {center}"
                    ));
                }
                if !(width.is_finite() && width > 0.0) {
                    problems.push(format!(
                        "{key}.width must be a finite number > 0, found {width}"
                    ));
                }
            }
            IntensityRule::Percentile { low, high, .. } => {
                for (name, value) in [("low", low), ("high", high)] {
                    if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
                        problems.push(format!(
                            "{key}.{name} must be a percentage from 0 to 100, found {value}"
                        ));
                    }
                }
                if low.is_finite() && high.is_finite() && low >= high {
                    problems.push(format!(
                        "{key}.low must be below {key}.high, found low {low} and high {high}"
                    ));
                }
            }
        }
        problems
    }
}

/// The values at the `low` and `high` percentiles of the finite (and, with `nonzero`, non-zero)
/// values of `slice`.
fn percentile_range(slice: ArrayView2<f32>, low: f32, high: f32, nonzero: bool) -> (f32, f32) {
    let mut values: Vec<f32> = slice
        .iter()
        .copied()
        .filter(|v| v.is_finite() && !(nonzero && *v == 0.0))
        .collect();
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mut at = |percent: f32| {
        let rank = ((percent / 100.0).clamp(0.0, 1.0) * (values.len() - 1) as f32).round() as usize;
        *values.select_nth_unstable_by(rank, f32::total_cmp).1
    };
    (at(low), at(high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn window_maps_its_edges_to_black_and_white() {
        let rule = IntensityRule::Window {
            center: 40.0,
            width: 400.0,
        };
        let hu = array![[-1000.0, -160.0, 40.0], [240.0, 3000.0, f32::NAN]];
        let u8s = rule.to_u8(hu.view());
        assert_eq!(u8s, array![[0, 0, 128], [255, 255, 0]]);
    }

    #[test]
    fn nonzero_percentiles_leave_the_background_out() {
        // half the slice is air outside the body (0), half tissue 100..199
        let values: Vec<f32> = (0..200)
            .map(|v| if v < 100 { 0.0 } else { v as f32 })
            .collect();
        let slice = Array2::from_shape_vec((10, 20), values).unwrap();
        let rule = |nonzero| IntensityRule::Percentile {
            low: 0.0,
            high: 100.0,
            nonzero,
        };
        let tissue = rule(true).to_u8(slice.view());
        assert_eq!(
            (tissue[[0, 0]], tissue[[5, 0]], tissue[[9, 19]]),
            (0, 0, 255)
        );
        // all values: tissue starts half way up the grey scale instead of at black
        let all = rule(false).to_u8(slice.view());
        assert_eq!(all[[5, 0]], 128);
    }

    #[test]
    fn percentile_rule_ignores_outliers() {
        let mut values: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        values[999] = 1.0e6; // one hot pixel must not crush the contrast
        let slice = Array2::from_shape_vec((10, 100), values).unwrap();
        let rule = IntensityRule::Percentile {
            low: 0.5,
            high: 99.5,
            nonzero: false,
        };
        let u8s = rule.to_u8(slice.view());
        assert_eq!(u8s[[0, 0]], 0);
        assert_eq!(u8s[[5, 0]], 128);
        assert_eq!(u8s[[9, 99]], 255);
    }
}
