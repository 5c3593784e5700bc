//! `lumen bench`: embed and predict latency (p50/p95) and peak resident memory.

use super::segment::read_grey;
use anyhow::Context;
use lumen_engine::model::{BoxPrompt, Point, Prompt, SamModel};
use lumen_engine::runtime::SessionConfig;
use ndarray::Array2;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model bundle folder; default: the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Timed runs of each stage (after warm-up: one embedding, two boxes and two clicks).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// An 8-bit image to encode; default: a 512×512 synthetic slice (latency does not depend on content).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Intra-op threads; 0 = the app's pool, one thread per core, shared by the encoder and the
    /// decoders; N = a pool of N threads for each of them.
    #[arg(long, default_value_t = 0, value_parser = super::parse::parse_threads)]
    pub threads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    mean_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    runs: usize,
    threads: usize,
    /// "shared" (the app's one pool) or "per session".
    thread_pool: &'static str,
    image: String,
    load_ms: f64,
    embed: Latency,
    predict: Latency,
    peak_rss_mb: Option<f64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(crate::paths::default_model_dir);
    let (image, image_name) = match &args.image {
        Some(path) => (read_grey(path)?, path.display().to_string()),
        None => (synthetic_slice(512), "synthetic 512×512".to_string()),
    };
    let config = SessionConfig {
        intra_threads: args.threads,
        ..SessionConfig::default()
    };
    let started = Instant::now();
    let model = SamModel::load(&model_dir, &config)
        .with_context(|| format!("cannot open model bundle {}", model_dir.display()))?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let runs = args.runs.max(1);

    let mut embed_ms = Vec::with_capacity(runs);
    let mut embedding = model.embed(image.view())?;
    for _ in 0..runs {
        let t = Instant::now();
        embedding = model.embed(image.view())?;
        embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Prompts as a user makes them: boxes of varying size, then a correction click with the mask.
    // The first two boxes and clicks are not timed: a click goes to its own decoder session (when
    // the bundle has one), and each session's first runs grow its buffers (on LiteMedSAM the
    // second box and click, once timed, took 1.3–1.4× the steady time).
    const WARM_UP: usize = 4;
    let (h, w) = image.dim();
    let mut predict_ms = Vec::with_capacity(runs);
    let mut previous = None;
    for i in 0..runs + WARM_UP {
        let inset = 0.2 + 0.1 * (i % 3) as f32;
        let mut prompt = Prompt::from_box(BoxPrompt {
            x0: w as f32 * inset,
            y0: h as f32 * inset,
            x1: w as f32 * (1.0 - inset),
            y1: h as f32 * (1.0 - inset),
        });
        if i % 2 == 1 {
            prompt.points.push(Point {
                x: w as f32 / 2.0,
                y: h as f32 / 2.0,
                positive: false,
            });
            prompt.previous_logits = previous.take();
        }
        let t = Instant::now();
        let prediction = model.predict(&embedding, &prompt)?;
        if i >= WARM_UP {
            predict_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        previous = Some(prediction.low_res_logits);
    }

    let (threads, thread_pool) = match args.threads {
        0 => (lumen_engine::runtime::cores(), "shared"),
        n => (n, "per session"),
    };
    let report = Report {
        model: model.bundle().manifest.name.clone(),
        runs,
        threads,
        thread_pool,
        image: image_name,
        load_ms,
        embed: latency(&mut embed_ms),
        predict: latency(&mut predict_ms),
        peak_rss_mb: peak_rss_mb(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "model    {} ({} runs, {} threads, {} pool, {})",
            report.model,
            report.runs,
            report.threads,
            report.thread_pool,
            report.image
        )?;
        outln!("load     {:.0} ms", report.load_ms)?;
        for (stage, l) in [("embed", &report.embed), ("predict", &report.predict)] {
            outln!(
                "{stage:<8} p50 {:.1} ms  p95 {:.1} ms  mean {:.1} ms",
                l.p50_ms,
                l.p95_ms,
                l.mean_ms
            )?;
        }
        if let Some(mb) = report.peak_rss_mb {
            outln!("peak RSS {mb:.0} MB")?;
        }
    }
    Ok(())
}

fn latency(samples: &mut [f64]) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        mean_ms: samples.iter().sum::<f64>() / samples.len() as f64,
    }
}

/// A smooth body-like disc with some structure, so the encoder sees a plausible input.
fn synthetic_slice(size: usize) -> Array2<u8> {
    let c = size as f32 / 2.0;
    Array2::from_shape_fn((size, size), |(y, x)| {
        let r = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt() / c;
        if r < 0.8 {
            (110.0 + 40.0 * (x as f32 / 23.0).sin() * (y as f32 / 31.0).cos()) as u8
        } else {
            0
        }
    })
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
