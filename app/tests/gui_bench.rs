//! Scrolling benchmark of the real app (ignored by default; numbers go to docs/benchmarks.md):
//!
//! `cargo test -p lumen-app --release --test gui_bench -- --ignored --nocapture`
//!
//! Opens a 500-slice 512×512 study (a real CHAOS slice copied to 500 positions), then steps
//! through 200 slices and back with the arrow key, in the one-plane and three-plane layouts in
//! turn, timing each frame: the UI pass (slice texture, overlay,
//! panels, histogram) alone, and with a render of the window (wgpu; on lavapipe when there is no
//! GPU, so an upper bound). Reports resident memory with the study open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use egui::Key;
use egui_kittest::Harness;
use lumen_app::ui::LumenApp;
use lumen_study::dicom::write_slice_copy;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn status_mb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture (release build)"]
fn bench_scrolling_a_500_slice_study() {
    common::isolated_home();
    let src = repo().join("../shared/data/chaos_ct_liver/Data_3D/DICOM_anon/i0040,0000b.dcm");
    let dir = tempfile::tempdir().unwrap();
    for i in 0..500u32 {
        let z = -500.0 + f64::from(i) * 2.0;
        let dst = dir.path().join(format!("f{i:05}.dcm"));
        write_slice_copy(
            &src,
            &dst,
            [-186.0, -186.0, z],
            &format!("2.25.77{i}"),
            "2.25.9876543210",
            i64::from(i + 1),
        )
        .unwrap();
    }
    let model = repo().join("assets/models/ct-starter");
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 860.0))
        .wgpu()
        .build_eframe(|cc| LumenApp::new(&cc.egui_ctx, model, None));
    harness.state_mut().set_settings_file(None);
    harness.state_mut().set_autosave_folder(None);
    let opened = Instant::now();
    harness.state_mut().open_folder(dir.path());
    while !harness.state().is_ready() {
        assert!(
            opened.elapsed() < Duration::from_secs(300),
            "study did not open"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let open_s = opened.elapsed().as_secs_f64();
    assert_eq!(harness.state().volume().unwrap().dims, [512, 512, 500]);

    // Both layouts in one run, alternating every 10 frames, so the shared machine's noise
    // falls on both alike. The three-plane layout's planes across the slices do not change
    // while the slice does; they are drawn (and their crosshair moves) every frame.
    use lumen_app::ui::app::Layout;
    let start = harness.state().current_slice().unwrap();
    let layouts = [Layout::Single, Layout::ThreePlanes];
    let mut ui_ms = [Vec::new(), Vec::new()];
    let mut ui_render_ms = [Vec::new(), Vec::new()];
    for i in 0..400 {
        let which = (i / 10) % 2;
        harness.state_mut().set_layout(layouts[which]);
        if i == 200 {
            let moved = harness.state().current_slice().unwrap().abs_diff(start);
            assert!(moved >= 150, "the arrow key moved {moved} slices");
        }
        harness.key_press(if i < 200 {
            Key::ArrowUp
        } else {
            Key::ArrowDown
        });
        let t = Instant::now();
        harness.step();
        ui_ms[which].push(t.elapsed().as_secs_f64() * 1e3);
        if i % 4 == 0 {
            let t = Instant::now();
            harness.step();
            harness.render().unwrap();
            ui_render_ms[which].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    for (which, name) in ["one plane", "three planes"].into_iter().enumerate() {
        ui_ms[which].sort_by(f64::total_cmp);
        ui_render_ms[which].sort_by(f64::total_cmp);
        eprintln!(
            "BENCH scroll 500x512x512, {name}: open {open_s:.2} s; UI frame p50 {:.1} ms p95 {:.1} ms \
             max {:.1} ms; UI+render p50 {:.1} ms p95 {:.1} ms",
            percentile(&ui_ms[which], 0.5),
            percentile(&ui_ms[which], 0.95),
            ui_ms[which].last().unwrap(),
            percentile(&ui_render_ms[which], 0.5),
            percentile(&ui_render_ms[which], 0.95),
        );
    }
    eprintln!(
        "BENCH RSS {:.0} MB (peak {:.0} MB); threads {}",
        status_mb("VmRSS:").unwrap_or(0.0),
        status_mb("VmHWM:").unwrap_or(0.0),
        std::thread::available_parallelism().unwrap()
    );
}
