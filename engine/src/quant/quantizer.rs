//! The quantizers: uniform asymmetric (per tensor or per channel) with an MSE search over
//! clipping ranges, and the log-√2 quantizer for post-softmax attention probabilities.

use serde::{Deserialize, Serialize};

/// Percentiles tried as clipping points; 1.0 is the plain min/max.
const PERCENTILES: [f64; 8] = [1.0, 0.99999, 0.9999, 0.9995, 0.999, 0.998, 0.995, 0.99];
/// Shrink factors of the min/max range tried besides the percentiles (they matter for weights,
/// where a channel has too few values for fine percentiles).
const SHRINK: [f64; 9] = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5];

/// A uniform asymmetric quantizer: q = clamp(round(x / scale) + zero_point, 0, 2^bits − 1),
/// x̂ = (q − zero_point) · scale. The range always contains 0, so 0 is represented exactly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Uniform {
    pub bits: u32,
    pub scale: f32,
    /// An integer in 0..=2^bits − 1, kept as f32 because graphs compute with it in float.
    pub zero_point: f32,
}

impl Uniform {
    /// The quantizer covering [lo, hi] (widened to contain 0) with `bits` bits.
    pub fn from_range(bits: u32, lo: f32, hi: f32) -> Self {
        let qmax = Self::qmax_of(bits);
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let span = hi - lo;
        // A constant-zero tensor still needs a positive scale (ONNX requires one).
        let scale = if span > f32::MIN_POSITIVE * 1e6 {
            span / qmax
        } else {
            1e-8
        };
        let zero_point = (-lo / scale).round().clamp(0.0, qmax);
        Self {
            bits,
            scale,
            zero_point,
        }
    }

    /// The symmetric quantizer of [−absmax, absmax]: zero point at mid-range, 2^bits − 1 levels
    /// used. Its signed zero point is 0 for every channel, which ONNX Runtime's integer
    /// convolution requires of a weight (one zero point shared by all output channels).
    pub fn symmetric(bits: u32, absmax: f32) -> Self {
        let half = (1u64 << (bits - 1)) as f32;
        let scale = if absmax > f32::MIN_POSITIVE * 1e6 {
            absmax / (half - 1.0)
        } else {
            1e-8
        };
        Self {
            bits,
            scale,
            zero_point: half,
        }
    }

    fn qmax_of(bits: u32) -> f32 {
        ((1u64 << bits) - 1) as f32
    }

    pub fn qmax(&self) -> f32 {
        Self::qmax_of(self.bits)
    }

    /// The integer level of x.
    pub fn level(&self, x: f32) -> f32 {
        (round_half_even(x / self.scale) + self.zero_point).clamp(0.0, self.qmax())
    }

    /// x quantized and dequantized.
    pub fn fake(&self, x: f32) -> f32 {
        (self.level(x) - self.zero_point) * self.scale
    }

    /// The representable range [lowest, highest].
    pub fn range(&self) -> (f32, f32) {
        (
            -self.zero_point * self.scale,
            (self.qmax() - self.zero_point) * self.scale,
        )
    }
}

/// Rounding as ONNX `Round` and `QuantizeLinear` do it (halves to even), so simulated and
/// deployed graphs agree with the quantizers here bit for bit.
pub fn round_half_even(x: f32) -> f32 {
    x.round_ties_even()
}

/// Mean squared quantization error of `values` under `q`.
pub fn mse(values: &[f32], q: &Uniform) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let sum: f64 = values
        .iter()
        .map(|&x| f64::from(q.fake(x) - x).powi(2))
        .sum();
    sum / values.len() as f64
}

/// The uniform quantizer with the lowest MSE on `values` among clipping ranges from a
/// percentile grid and shrunk min/max ranges.
pub fn search_uniform(values: &[f32], bits: u32) -> Uniform {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Uniform::from_range(bits, 0.0, 0.0);
    }
    sorted.sort_by(f32::total_cmp);
    let quantile = |p: f64| {
        let i = (p * (sorted.len() - 1) as f64).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    };
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let mut candidates: Vec<(f32, f32)> = PERCENTILES
        .iter()
        .map(|&p| (quantile(1.0 - p), quantile(p)))
        .collect();
    candidates.extend(SHRINK.iter().map(|&a| (min * a as f32, max * a as f32)));
    candidates
        .into_iter()
        .map(|(lo, hi)| Uniform::from_range(bits, lo, hi))
        .map(|q| (mse(&sorted, &q), q))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(|| Uniform::from_range(bits, min, max), |(_, q)| q)
}

/// The log-√2 quantizer for values in [0, scale] (attention probabilities): level
/// l = round(−2·log2(x / scale)), x̂ = scale · 2^(−l/2); levels past 2^bits − 1 (and x = 0)
/// become 0. Dense near 1/√2^k, which suits the long-tailed softmax distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogSqrt2 {
    pub bits: u32,
    pub scale: f32,
}

impl LogSqrt2 {
    /// Levels 0..=levels() − 1 are representable; level `levels()` and beyond mean zero.
    pub fn levels(&self) -> f32 {
        ((1u64 << self.bits) - 1) as f32
    }

    pub fn fake(&self, x: f32) -> f32 {
        if x <= 0.0 {
            return 0.0;
        }
        let l = round_half_even(-2.0 * (x / self.scale).log2()).max(0.0);
        if l >= self.levels() {
            0.0
        } else {
            self.scale * (-l / 2.0).exp2()
        }
    }

    /// The scale (a fraction of the maximum) with the lowest MSE on `values`.
    pub fn search(values: &[f32], bits: u32) -> Self {
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::max)
            .max(1e-8);
        [1.0f32, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7]
            .iter()
            .map(|&a| Self {
                bits,
                scale: max * a,
            })
            .map(|q| {
                let e: f64 = values
                    .iter()
                    .map(|&x| f64::from(q.fake(x) - x).powi(2))
                    .sum();
                (e, q)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(Self { bits, scale: max }, |(_, q)| q)
    }
}

/// Per-output-channel uniform quantizers for a weight tensor, `channel_values[c]` holding the
/// values of channel c.
pub fn search_per_channel(channel_values: &[Vec<f32>], bits: u32) -> Vec<Uniform> {
    channel_values
        .iter()
        .map(|v| search_uniform(v, bits))
        .collect()
}

/// Per-output-channel symmetric quantizers (see `Uniform::symmetric`), each channel's clipping
/// point searched by MSE among shrunk maxima.
pub fn search_per_channel_symmetric(channel_values: &[Vec<f32>], bits: u32) -> Vec<Uniform> {
    channel_values
        .iter()
        .map(|v| {
            let absmax = v
                .iter()
                .filter(|x| x.is_finite())
                .fold(0.0f32, |m, x| m.max(x.abs()));
            std::iter::once(1.0)
                .chain(SHRINK)
                .map(|a| Uniform::symmetric(bits, absmax * a as f32))
                .map(|q| (mse(v, &q), q))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or_else(|| Uniform::symmetric(bits, absmax), |(_, q)| q)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn round_trip_of_representable_values_is_exact() {
        for bits in 2..=8 {
            let q = Uniform::from_range(bits, -1.3, 2.1);
            for level in 0..=q.qmax() as i32 {
                let x = (level as f32 - q.zero_point) * q.scale;
                assert_eq!(q.level(x), level as f32, "bits {bits} level {level}");
                assert!((q.fake(x) - x).abs() <= 1e-6 * x.abs().max(1.0));
            }
        }
    }

    #[test]
    fn error_is_at_most_half_a_step_inside_the_range_and_values_saturate_outside() {
        let mut seed = 3;
        for bits in [2, 3, 4, 6, 8] {
            let q = Uniform::from_range(bits, -0.7, 1.9);
            let (lo, hi) = q.range();
            assert!(lo <= -0.7 + q.scale && hi >= 1.9 - q.scale);
            for _ in 0..1000 {
                let x = lcg(&mut seed) * 3.0;
                let y = q.fake(x);
                assert!(y >= lo - 1e-6 && y <= hi + 1e-6, "{y} outside [{lo}, {hi}]");
                if x >= lo && x <= hi {
                    assert!((y - x).abs() <= q.scale / 2.0 + 1e-6);
                }
            }
            assert_eq!(q.fake(100.0), hi);
            assert_eq!(q.fake(-100.0), lo);
        }
    }

    #[test]
    fn zero_is_exact_and_zero_point_is_an_integer_level() {
        let q = Uniform::from_range(4, 0.3, 5.0);
        assert_eq!(q.fake(0.0), 0.0);
        assert_eq!(
            q.zero_point, 0.0,
            "a positive range is widened to start at 0"
        );
        let q = Uniform::from_range(8, -3.0, 1.0);
        assert_eq!(q.zero_point.fract(), 0.0);
        assert_eq!(q.fake(0.0), 0.0);
        let q = Uniform::from_range(8, 0.0, 0.0);
        assert!(q.scale > 0.0);
        assert_eq!(q.fake(0.0), 0.0);
    }

    #[test]
    fn symmetric_quantizers_share_the_signed_zero_point_and_cover_each_channel() {
        let channels = vec![
            vec![-0.5f32, 0.2, 0.1],
            vec![3.0, -1.0, 2.5],
            vec![0.0, 0.0],
        ];
        let q = search_per_channel_symmetric(&channels, 8);
        assert!(
            q.iter()
                .all(|u| u.zero_point == 128.0 && u.fake(0.0) == 0.0)
        );
        for (u, v) in q.iter().zip(&channels) {
            for &x in v {
                assert!(
                    (u.fake(x) - x).abs() <= u.scale / 2.0 + 1e-6,
                    "{x} → {}",
                    u.fake(x)
                );
            }
        }
        assert!((q[1].scale - 3.0 / 127.0).abs() < 1e-6);
    }

    #[test]
    fn rounding_halves_to_even_like_onnx() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(-0.5), 0.0);
        assert_eq!(round_half_even(-1.5), -2.0);
        assert_eq!(round_half_even(1.4), 1.0);
        assert_eq!(round_half_even(-2.6), -3.0);
    }

    #[test]
    fn mse_search_clips_outliers_and_beats_min_max() {
        // A Gaussian-like bulk with a few large outliers: min/max wastes most levels.
        let mut seed = 11;
        let mut values: Vec<f32> = (0..20000)
            .map(|_| (0..4).map(|_| lcg(&mut seed)).sum::<f32>() * 0.5)
            .collect();
        values.extend([4.0, -3.6, 4.3, 3.9, -4.1]);
        let minmax = Uniform::from_range(4, -4.1, 4.3);
        let best = search_uniform(&values, 4);
        let (e_best, e_minmax) = (mse(&values, &best), mse(&values, &minmax));
        assert!(
            e_best < 0.8 * e_minmax,
            "MSE {e_best} vs min/max {e_minmax}"
        );
        let (lo, hi) = best.range();
        assert!(hi < 4.3 && lo > -4.1, "range [{lo}, {hi}] was not clipped");
        // More bits never hurt.
        let mut last = f64::INFINITY;
        for bits in 2..=8 {
            let e = mse(&values, &search_uniform(&values, bits));
            assert!(e <= last, "{bits} bits: {e} > {last}");
            last = e;
        }
    }

    #[test]
    fn log_sqrt2_levels_are_powers_of_sqrt2_and_small_values_vanish() {
        let q = LogSqrt2 {
            bits: 4,
            scale: 1.0,
        };
        assert_eq!(q.fake(1.0), 1.0);
        assert!((q.fake(0.5) - 0.5).abs() < 1e-7);
        assert!(
            (q.fake(std::f32::consts::FRAC_1_SQRT_2) - std::f32::consts::FRAC_1_SQRT_2).abs()
                < 1e-7
        );
        assert_eq!(q.fake(0.0), 0.0);
        // 15 levels reach 2^(−7); far below that is zero.
        assert!(q.fake(2f32.powf(-7.0)) > 0.0);
        assert_eq!(q.fake(1e-4), 0.0);
        for x in [0.9f32, 0.3, 0.11, 0.05, 0.02] {
            let y = q.fake(x);
            assert!(y / x < 2f32.sqrt().sqrt() * 1.001 && x / y < 2f32.sqrt().sqrt() * 1.001);
        }
    }

    #[test]
    fn log_sqrt2_beats_uniform_on_softmax_like_values_at_4_bits() {
        let mut seed = 5;
        let values: Vec<f32> = (0..5000)
            .map(|_| {
                let u = (lcg(&mut seed) + 1.0) / 2.0;
                (u * u * u * u).min(1.0)
            })
            .collect();
        let log = LogSqrt2::search(&values, 4);
        let uni = search_uniform(&values, 4);
        let log_rel: f64 = values
            .iter()
            .filter(|&&x| x > 1e-3)
            .map(|&x| f64::from(((log.fake(x) - x) / x).abs()))
            .sum();
        let uni_rel: f64 = values
            .iter()
            .filter(|&&x| x > 1e-3)
            .map(|&x| f64::from(((uni.fake(x) - x) / x).abs()))
            .sum();
        assert!(
            log_rel < uni_rel,
            "relative error log {log_rel} vs uniform {uni_rel}"
        );
    }
}
