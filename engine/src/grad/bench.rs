//! The gradient benchmark: forward+backward time over forward time for a SAM encoder, and the
//! process's peak memory for each (Linux: VmHWM, reset through /proc/self/clear_refs).

use super::{GradError, GradRequest, build_gradient};
use crate::graph::{Builder, Model, Runner, Shapes, TensorData, attr};
use crate::runtime::SessionConfig;
use ndarray::{ArrayD, IxDyn};
use std::path::Path;
use std::time::Instant;

/// Timings (median of the timed runs, after two warm-up runs) and peak resident memory.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderBench {
    pub input_shape: Vec<usize>,
    pub build_gradient_ms: f64,
    pub forward_ms: f64,
    pub forward_backward_ms: f64,
    /// forward_backward_ms / forward_ms
    pub ratio: f64,
    /// Peak resident memory of the process while the forward session ran (MiB), if known.
    pub forward_peak_mib: Option<f64>,
    pub forward_backward_peak_mib: Option<f64>,
    /// Process CPU time per run (ms): robust to other load on the machine.
    pub forward_cpu_ms: Option<f64>,
    pub forward_backward_cpu_ms: Option<f64>,
    pub forward_nodes: usize,
    pub gradient_nodes: usize,
}

fn status_kib(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak-RSS counter to the current RSS (Linux ≥ 4.0); false where unsupported.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_mib(reset_ok: bool) -> Option<f64> {
    if reset_ok {
        status_kib("VmHWM:").map(|k| k / 1024.0)
    } else {
        None
    }
}

/// Process CPU time (user + system) in ms, from /proc/self/stat (Linux, 100 ticks/s).
fn cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// (median wall ms, mean CPU ms) per run.
fn time_runs(
    runner: &mut Runner,
    feeds: &[(&str, &TensorData)],
    runs: usize,
) -> Result<(f64, Option<f64>), GradError> {
    for _ in 0..2 {
        runner.run_with(feeds, |_, _| Ok(()))?;
    }
    let runs = runs.max(1);
    let mut times = Vec::with_capacity(runs);
    let cpu0 = cpu_ms();
    for _ in 0..runs {
        let t = Instant::now();
        runner.run_with(feeds, |_, _| Ok(()))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = cpu0.zip(cpu_ms()).map(|(a, b)| (b - a) / runs as f64);
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], cpu))
}

/// Benchmarks the encoder at `path` (input "image"): the forward model alone against one
/// session computing loss = mean(embeddings ⊙ R) and its gradient with respect to the image.
pub fn bench_encoder(
    path: &Path,
    runs: usize,
    config: &SessionConfig,
) -> Result<EncoderBench, GradError> {
    let encoder = Model::load(path)?;
    let input = encoder
        .input_names()
        .into_iter()
        .next()
        .ok_or_else(|| GradError::UnknownTensor("image".into()))?;
    let output = encoder
        .output_names()
        .into_iter()
        .next()
        .ok_or_else(|| GradError::UnknownTensor("image_embeddings".into()))?;
    let shape = static_input_shape(&encoder, &input);
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let image = TensorData::F32(ArrayD::from_shape_simple_fn(IxDyn(&shape), &mut noise));
    let feeds = [(input.as_str(), &image)];

    let t = Instant::now();
    let shapes = Shapes::probe(&encoder, &feeds)?;
    let out_shape: Vec<usize> = shapes
        .get(&output)
        .map(|i| i.shape.iter().map(|&d| d as usize).collect())
        .ok_or_else(|| GradError::NoShape(output.clone()))?;
    let mut b = Builder::from_model(encoder.clone());
    let r = b.constant(
        "r",
        &TensorData::F32(ArrayD::from_shape_simple_fn(IxDyn(&out_shape), &mut noise)),
    );
    let p = b.op("Mul", &[output.as_str(), r.as_str()], vec![]);
    let loss = b.op("ReduceMean", &[p.as_str()], vec![attr::int("keepdims", 0)]);
    b.model.set_outputs(&[loss.as_str()])?;
    let with_loss = b.finish();
    let shapes = Shapes::probe(&with_loss, &feeds)?;
    let request = GradRequest {
        output: loss,
        wrt: vec![input.clone()],
        keep: vec![],
    };
    let grad = build_gradient(&with_loss, &request, &shapes)?;
    let build_gradient_ms = t.elapsed().as_secs_f64() * 1e3;

    let reset = reset_peak();
    let mut fwd = Runner::new(&encoder, "encoder forward", config)?;
    let (forward_ms, forward_cpu_ms) = time_runs(&mut fwd, &feeds, runs)?;
    let forward_peak_mib = peak_mib(reset);
    drop(fwd);

    let reset = reset_peak();
    let mut fb = Runner::new(&grad.model, "encoder forward+backward", config)?;
    let (forward_backward_ms, forward_backward_cpu_ms) = time_runs(&mut fb, &feeds, runs)?;
    let forward_backward_peak_mib = peak_mib(reset);

    Ok(EncoderBench {
        input_shape: shape,
        build_gradient_ms,
        forward_ms,
        forward_backward_ms,
        ratio: forward_backward_ms / forward_ms,
        forward_peak_mib,
        forward_backward_peak_mib,
        forward_cpu_ms,
        forward_backward_cpu_ms,
        forward_nodes: encoder.graph().node.len(),
        gradient_nodes: grad.model.graph().node.len(),
    })
}

/// The input's static dims (symbolic dims count as 1).
fn static_input_shape(m: &Model, name: &str) -> Vec<usize> {
    m.input_dims(name)
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.unwrap_or(1))
        .collect()
}
