//! Gradient benchmark (ignored by default; numbers go to docs/benchmarks.md, "Gradients"):
//!
//! `cargo test -p lumen-tests --release --test grad_bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::grad::bench::bench_encoder;
use lumen_engine::runtime::SessionConfig;

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture (release build)"]
fn encoder_forward_backward_over_forward() {
    let dir = match std::env::var_os("LUMEN_TEST_MODEL") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => lumen_tests::repo_root().join("assets/models/ct-starter"),
    };
    let threads: usize = std::env::var("LUMEN_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let config = SessionConfig {
        intra_threads: threads,
        ..SessionConfig::default()
    };
    let r = bench_encoder(&dir.join("encoder.onnx"), 10, &config).unwrap();
    println!("{r:#?}");
    assert!(r.ratio.is_finite() && r.ratio > 1.0);
}
