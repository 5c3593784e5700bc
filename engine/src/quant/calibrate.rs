//! Calibration: runs a graph on calibration inputs with chosen intermediates exposed and keeps
//! a bounded sample of each one's values (per tensor, or per channel along the last axis).

use super::QuantError;
use crate::graph::exec::to_data;
use crate::graph::{Model, Runner, TensorData};
use crate::runtime::SessionConfig;
use std::collections::HashMap;

/// Values kept per tensor (per channel: per channel) across all calibration inputs.
const SAMPLE_CAP: usize = 262_144;
const CHANNEL_SAMPLE_CAP: usize = 8192;

/// What to collect for one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    PerTensor,
    /// Per channel of the last axis (with `channels` channels).
    PerChannel {
        channels: usize,
    },
}

/// Collected samples of one tensor.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Per tensor: one entry; per channel: one entry per channel.
    pub values: Vec<Vec<f32>>,
    pub min: f32,
    pub max: f32,
    /// Each channel's extremes (axis 1 of a 4-D NCHW tensor, else the last axis).
    pub channel_min: Vec<f32>,
    pub channel_max: Vec<f32>,
}

impl Samples {
    /// The median channel's range (widened to hold 0) as a share of the whole tensor's: near 1
    /// when channels look alike, small when a few channels dominate one per-tensor quantizer.
    pub fn median_channel_share(&self) -> f32 {
        let mut spans: Vec<f32> = self
            .channel_min
            .iter()
            .zip(&self.channel_max)
            .map(|(lo, hi)| hi.max(0.0) - lo.min(0.0))
            .collect();
        let whole = self.max.max(0.0) - self.min.min(0.0);
        if spans.is_empty() || whole <= 0.0 {
            return 1.0;
        }
        spans.sort_by(f32::total_cmp);
        spans[spans.len() / 2] / whole
    }
}

/// Runs `model` on every feed set, collecting the requested tensors. `progress(done, total)` is
/// called after each input; it returns false to cancel.
pub fn collect(
    model: &Model,
    requests: &[(String, Collect)],
    inputs: &[Vec<(String, TensorData)>],
    config: &SessionConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<HashMap<String, Samples>, QuantError> {
    // Graph inputs are read from the feeds: ONNX Runtime does not hand inputs back as outputs.
    let graph_inputs = model.input_names();
    let mut exposed = model.clone();
    let names: Vec<&str> = requests
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !graph_inputs.iter().any(|i| i == n))
        .collect();
    exposed.set_outputs(&names)?;
    let mut runner = Runner::new(&exposed, "calibration", config)?;
    let kinds: HashMap<&str, Collect> = requests.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    let mut samples: HashMap<String, Samples> = HashMap::new();
    let total = inputs.len();
    for (k, feeds) in inputs.iter().enumerate() {
        let mut record = |name: &str, data: &TensorData| {
            let (Some(&kind), TensorData::F32(a)) = (kinds.get(name), data) else {
                return;
            };
            let flat: Vec<f32> = a.iter().copied().collect();
            let entry = samples.entry(name.to_string()).or_insert_with(|| Samples {
                values: vec![],
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
                ..Default::default()
            });
            add_sample(entry, &flat, kind, k, total);
            add_channel_extremes(entry, a);
        };
        for (name, data) in feeds {
            record(name, data);
        }
        let feeds: Vec<(&str, &TensorData)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
        if !names.is_empty() {
            runner.run_with(&feeds, |name, value| {
                record(name, &to_data(name, value)?);
                Ok(())
            })?;
        }
        if !progress(k + 1, total) {
            return Err(QuantError::Cancelled);
        }
    }
    Ok(samples)
}

/// Widens each channel's extremes by `a`'s values.
fn add_channel_extremes(s: &mut Samples, a: &ndarray::ArrayD<f32>) {
    let axis = if a.ndim() == 4 {
        1
    } else {
        a.ndim().saturating_sub(1)
    };
    let Some(&channels) = a.shape().get(axis) else {
        return;
    };
    if s.channel_min.len() != channels {
        s.channel_min = vec![f32::INFINITY; channels];
        s.channel_max = vec![f32::NEG_INFINITY; channels];
    }
    for (c, lane) in a.axis_iter(ndarray::Axis(axis)).enumerate() {
        for &v in lane.iter().filter(|v| v.is_finite()) {
            s.channel_min[c] = s.channel_min[c].min(v);
            s.channel_max[c] = s.channel_max[c].max(v);
        }
    }
}

/// Adds an evenly strided subset of `flat` (its share of the cap for this input).
fn add_sample(s: &mut Samples, flat: &[f32], kind: Collect, input: usize, inputs: usize) {
    for &v in flat.iter().filter(|v| v.is_finite()) {
        s.min = s.min.min(v);
        s.max = s.max.max(v);
    }
    match kind {
        Collect::PerTensor => {
            s.values.resize(1, Vec::new());
            let share = (SAMPLE_CAP / inputs.max(1)).max(1);
            let stride = flat.len().div_ceil(share).max(1);
            // A different offset per input so strided patterns do not alias.
            let offset = input % stride;
            s.values[0].extend(flat.iter().skip(offset).step_by(stride).copied());
        }
        Collect::PerChannel { channels } => {
            s.values.resize(channels, Vec::new());
            let rows = flat.len() / channels.max(1);
            let share = (CHANNEL_SAMPLE_CAP / inputs.max(1)).max(1);
            let stride = rows.div_ceil(share).max(1);
            for r in (input % stride..rows).step_by(stride) {
                for (c, v) in flat[r * channels..(r + 1) * channels].iter().enumerate() {
                    s.values[c].push(*v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_samples_keep_channels_apart_and_track_extremes() {
        let mut s = Samples {
            values: vec![],
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            ..Default::default()
        };
        // 3 channels: channel c holds values 100·c + row.
        let rows = 50;
        let flat: Vec<f32> = (0..rows)
            .flat_map(|r| (0..3).map(move |c| (100 * c + r) as f32))
            .collect();
        add_sample(&mut s, &flat, Collect::PerChannel { channels: 3 }, 0, 1);
        assert_eq!(s.values.len(), 3);
        for (c, v) in s.values.iter().enumerate() {
            assert_eq!(v.len(), rows);
            assert!(v.iter().all(|x| (*x as usize) / 100 == c));
        }
        assert_eq!((s.min, s.max), (0.0, 249.0));
    }

    #[test]
    fn median_channel_share_is_small_when_one_channel_dominates() {
        let mut s = Samples {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            ..Default::default()
        };
        // NCHW, 4 channels of 2×2: three span [0, 1], one spans [-2, 40].
        let mut a = ndarray::Array4::<f32>::zeros((1, 4, 2, 2));
        for c in 0..3 {
            a[[0, c, 1, 1]] = 1.0;
        }
        a[[0, 3, 0, 0]] = 40.0;
        a[[0, 3, 0, 1]] = -2.0;
        let a = a.into_dyn();
        let flat: Vec<f32> = a.iter().copied().collect();
        add_sample(&mut s, &flat, Collect::PerTensor, 0, 1);
        add_channel_extremes(&mut s, &a);
        assert_eq!(s.channel_max, vec![1.0, 1.0, 1.0, 40.0]);
        assert!((s.median_channel_share() - 1.0 / 42.0).abs() < 1e-6);
        // channels alike: share 1
        let alike = ndarray::Array2::<f32>::from_elem((3, 5), 2.0).into_dyn();
        let mut t = Samples::default();
        add_sample(&mut t, &[2.0; 15], Collect::PerTensor, 0, 1);
        add_channel_extremes(&mut t, &alike);
        assert_eq!(t.median_channel_share(), 1.0);
    }

    #[test]
    fn per_tensor_sample_is_bounded() {
        let mut s = Samples::default();
        let flat = vec![1.0f32; SAMPLE_CAP * 3];
        for i in 0..4 {
            add_sample(&mut s, &flat, Collect::PerTensor, i, 4);
        }
        assert!(s.values[0].len() <= SAMPLE_CAP + 4);
        assert!(s.values[0].len() >= SAMPLE_CAP / 2);
    }
}
