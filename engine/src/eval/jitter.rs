//! The jittered-box variant of the protocol: a deterministic, seeded perturbation of a tight box.

use super::components::PixelBox;

/// Standard deviation of each corner's shift, as a fraction of the box side along that axis.
pub const JITTER_SIGMA: f32 = 0.05;
/// Largest shift of a corner, as a fraction of the image's longest side.
pub const JITTER_LIMIT: f32 = 0.05;

/// A small deterministic generator (SplitMix64): the same seed gives the same boxes on every
/// machine and for every model, so a quantized model is scored on exactly the FP model's prompts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one (slice, organ), independent of which other slices are evaluated.
    pub fn for_sample(seed: u64, slice_key: u64, label: u16) -> Self {
        let mut mix = Self(seed ^ slice_key.rotate_left(17) ^ u64::from(label).rotate_left(43));
        Self(mix.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1], never 0 (safe to take the logarithm).
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The SAM-style noisy box of `packaging/model/evaluate.py` (`jitter_box`): each corner
/// coordinate moves by N(0, 0.05 · box side along its axis), at most 5% of the image's longest
/// side; then the first corner is clamped to the image and the second to [first corner, image].
/// Returns `[x0, y0, x1, y1]` in pixels (the second corner may equal the first; see
/// [`super::box_prompt`]). `size` is (height, width).
pub fn jitter_box(tight: PixelBox, size: (usize, usize), rng: &mut Rng) -> [f32; 4] {
    let (h, w) = size;
    let [x0, y0, x1, y1] = tight.corners();
    let side = [(x1 - x0).max(1.0), (y1 - y0).max(1.0)];
    let limit = JITTER_LIMIT * h.max(w) as f32;
    let mut shift = || rng.normal() as f32 * JITTER_SIGMA;
    // Draw order as in numpy's rng.normal(size=(2, 2)): x0, y0, x1, y1.
    let d = [
        (shift() * side[0]).clamp(-limit, limit),
        (shift() * side[1]).clamp(-limit, limit),
        (shift() * side[0]).clamp(-limit, limit),
        (shift() * side[1]).clamp(-limit, limit),
    ];
    let (xmax, ymax) = (w.saturating_sub(1) as f32, h.saturating_sub(1) as f32);
    let nx0 = (x0 + d[0]).clamp(0.0, xmax);
    let ny0 = (y0 + d[1]).clamp(0.0, ymax);
    let nx1 = (x1 + d[2]).clamp(nx0, xmax.max(nx0));
    let ny1 = (y1 + d[3]).clamp(ny0, ymax.max(ny0));
    [nx0, ny0, nx1, ny1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_unit_spread() {
        let mut rng = Rng::new(7);
        let n = 20_000;
        let samples: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn jitter_is_deterministic_bounded_and_inside_the_image() {
        let tight = PixelBox {
            x0: 0,
            y0: 40,
            x1: 99,
            y1: 60,
        };
        let size = (100, 100);
        let a = jitter_box(tight, size, &mut Rng::for_sample(1, 2, 3));
        let b = jitter_box(tight, size, &mut Rng::for_sample(1, 2, 3));
        assert_eq!(a, b, "same seed, same box");
        let c = jitter_box(tight, size, &mut Rng::for_sample(1, 2, 4));
        assert_ne!(a, c, "another organ, another box");
        let mut rng = Rng::new(11);
        let mut moved = false;
        for _ in 0..500 {
            let [x0, y0, x1, y1] = jitter_box(tight, size, &mut rng);
            assert!((0.0..=99.0).contains(&x0) && (0.0..=99.0).contains(&y0));
            assert!(x1 >= x0 && x1 <= 99.0 && y1 >= y0 && y1 <= 99.0);
            // At most 5% of the longest side (5 px) per coordinate.
            assert!((y0 - 40.0).abs() <= 5.0 + 1e-4 && (y1 - 60.0).abs() <= 5.0 + 1e-4);
            assert!((x1 - 99.0).abs() <= 5.0 + 1e-4);
            moved |= (y0 - 40.0).abs() > 0.1;
        }
        assert!(moved, "the box does move");
    }
}
