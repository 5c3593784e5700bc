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
            });
            add_sample(entry, &flat, kind, k, total);
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
