//! The intensity histogram of the slice on screen (or of the active segment on it), over twice
//! the display window, with the window's edges drawn on it.

use egui_plot::{Bar, BarChart, Plot, VLine};
use lumen_study::Window;

/// Bars of the histogram.
const BINS: usize = 100;

/// Counts of `values[i]` for the `i` that `keep` accepts, in `BINS` bins over [lo, hi); values
/// outside are left out. Returns (bin centre, count) pairs.
pub fn histogram(
    values: &[f32],
    keep: impl Fn(usize) -> bool,
    lo: f32,
    hi: f32,
) -> Vec<(f64, f64)> {
    let width = (hi - lo) / BINS as f32;
    let mut counts = vec![0usize; BINS];
    if width > 0.0 {
        for (i, &v) in values.iter().enumerate() {
            if v >= lo && v < hi && keep(i) {
                let bin = (((v - lo) / width) as usize).min(BINS - 1);
                counts[bin] += 1;
            }
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(b, &c)| (f64::from(lo + (b as f32 + 0.5) * width), c as f64))
        .collect()
}

/// What the shown histogram was computed from, to recompute only when it changes.
type Key = (usize, Option<u8>, u64, i64, i64);

#[derive(Default)]
pub struct HistogramView {
    pub segment_only: bool,
    key: Option<Key>,
    bars: Vec<(f64, f64)>,
}

impl HistogramView {
    /// The histogram range for a window: twice its width around its centre.
    fn range(window: &Window) -> (f32, f32) {
        let c = window.center as f32;
        let w = window.width as f32;
        (c - w, c + w)
    }

    /// Recomputes if the slice, segment, annotation or window changed.
    pub fn update(
        &mut self,
        slice: &[f32],
        labels: &[u8],
        z: usize,
        label: Option<u8>,
        revision: u64,
        window: &Window,
    ) {
        let label = label.filter(|_| self.segment_only);
        let key = (
            z,
            label,
            revision,
            window.center.round() as i64,
            window.width.round() as i64,
        );
        if self.key == Some(key) {
            return;
        }
        self.key = Some(key);
        let (lo, hi) = Self::range(window);
        self.bars = match label {
            Some(l) => histogram(slice, |i| labels.get(i) == Some(&l), lo, hi),
            None => histogram(slice, |_| true, lo, hi),
        };
    }

    pub fn show(&mut self, ui: &mut egui::Ui, window: &Window, unit: &str) {
        ui.checkbox(&mut self.segment_only, "active segment only");
        let (lo, hi) = Self::range(window);
        let bar_width = f64::from(hi - lo) / BINS as f64;
        let bars: Vec<Bar> = self
            .bars
            .iter()
            .map(|&(x, n)| Bar::new(x, n).width(bar_width))
            .collect();
        let half = window.width / 2.0;
        Plot::new("intensity-histogram")
            .height(110.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .show_axes([true, false])
            .x_axis_label(unit)
            .show(ui, |plot| {
                plot.bar_chart(BarChart::new("voxels", bars));
                plot.vline(VLine::new("window low", window.center - half));
                plot.vline(VLine::new("window high", window.center + half));
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_in_their_bins_and_outliers_and_masked_values_are_left_out() {
        let values = [0.5f32, 1.5, 1.6, 99.9, 100.0, -3.0];
        let h = histogram(&values, |_| true, 0.0, 100.0);
        assert_eq!(h.len(), BINS);
        assert_eq!(h[0], (0.5, 1.0));
        assert_eq!(h[1].1, 2.0);
        assert_eq!(h[99].1, 1.0);
        assert_eq!(
            h.iter().map(|b| b.1).sum::<f64>(),
            4.0,
            "100 and -3 are outside"
        );
        let masked = histogram(&values, |i| i != 1, 0.0, 100.0);
        assert_eq!(masked[1].1, 1.0);
    }
}
