//! Load-speed benchmark (ignored by default; numbers go to docs/benchmarks.md):
//!
//! `cargo test -p lumen-tests --release --test study_bench -- --ignored --nocapture`
//!
//! Builds a 500-slice 512×512 uncompressed series from a real CHAOS slice (new positions and
//! UIDs) in a temporary folder, then times discovery + loading; and times the 20-slice JPEG 2000
//! TotalSegmentator series (slices per second).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use lumen_study::dicom::write_slice_copy;
use lumen_study::{discover, load_series};
use lumen_tests::shared_data;

fn best_and_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture (release build)"]
fn bench_load_500_slice_uncompressed_series() {
    let src = shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon/i0040,0000b.dcm");
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    for i in 0..500u32 {
        let z = -500.0 + f64::from(i) * 2.0;
        // scatter file names and instance numbers so that neither is slice order
        let dst = dir.path().join(format!("f{:05}.dcm", (i * 7919) % 500));
        write_slice_copy(
            &src,
            &dst,
            [-186.0, -186.0, z],
            &format!("2.25.99{i}"),
            "2.25.1234567890123456789",
            i64::from(500 - i),
        )
        .unwrap();
    }
    eprintln!("built 500 slices in {:.2} s", t.elapsed().as_secs_f64());

    let mut discover_s = Vec::new();
    let mut load_s = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let d = discover(dir.path()).unwrap();
        discover_s.push(t.elapsed().as_secs_f64());
        assert_eq!(d.series.len(), 1);
        let t = Instant::now();
        let v = load_series(&d.series[0]).unwrap();
        load_s.push(t.elapsed().as_secs_f64());
        assert_eq!(v.dims, [512, 512, 500]);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    }
    let (db, dm) = best_and_median(discover_s.clone());
    let (lb, lm) = best_and_median(load_s.clone());
    let total: Vec<f64> = discover_s.iter().zip(&load_s).map(|(a, b)| a + b).collect();
    let (tb, tm) = best_and_median(total);
    eprintln!(
        "BENCH 500x512x512 uncompressed: discover best {db:.3} s median {dm:.3} s; load best {lb:.3} s median {lm:.3} s; \
         discover+load best {tb:.3} s median {tm:.3} s; threads {}",
        std::thread::available_parallelism().unwrap()
    );
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture (release build)"]
fn bench_jpeg2000_slices_per_second() {
    let dir = shared_data().join("totalsegmentator/example_ct_dicom");
    let d = discover(&dir).unwrap();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let v = load_series(&d.series[0]).unwrap();
        let s = t.elapsed().as_secs_f64();
        rates.push(v.dims[2] as f64 / s);
    }
    let (lo, med) = best_and_median(rates.clone());
    let hi = rates.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "BENCH JPEG 2000 lossless 512x512: {med:.1} slices/s median (min {lo:.1}, max {hi:.1}); threads {}",
        std::thread::available_parallelism().unwrap()
    );
}
