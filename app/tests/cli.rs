//! The `lumen` binary's command line, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

/// The `lumen` binary, keeping its settings and caches in the test process's own folder.
fn lumen() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lumen"));
    command.env("LUMEN_HOME", common::isolated_home());
    command
}

fn starter_model() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/ct-starter")
}

#[test]
fn missing_onnx_runtime_is_one_clear_message() {
    let out = lumen()
        .arg("info")
        .arg(starter_model())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ONNX Runtime 1.32.0") && stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
    assert!(
        stderr.contains("provision.py"),
        "the message says how to fix it: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_reported() {
    let fake = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(fake.path(), b"not a shared library").unwrap();
    let out = lumen()
        .arg("info")
        .arg(starter_model())
        .env("ORT_DYLIB_PATH", fake.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not be loaded"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn info_prints_the_bundled_manifest() {
    let out = lumen().arg("info").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("model      ct-starter"), "{stdout}");
    assert!(stdout.contains("(verified)"), "{stdout}");
    assert!(stdout.contains("input      256×256"), "{stdout}");
}

#[test]
fn a_reader_that_stops_early_ends_lumen_info_quietly() {
    use std::io::BufRead;
    use std::process::Stdio;
    // `lumen info | head -1`: the reader takes the first line and goes away.
    let mut child = lumen()
        .arg("info")
        .arg(starter_model())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("model      ct-starter"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(out.status.success(), "{:?} {stderr}", out.status);

    // A reader gone before the first line: the very first write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = lumen()
        .arg("info")
        .arg(starter_model())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?} {stderr}", out.status);
}

#[test]
fn a_closed_stderr_does_not_stop_lumen_eval() {
    // `lumen eval … 2>&-`-like: the progress lines have nowhere to go, the report still comes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let chaos = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/chaos_ct_liver/Data_3D");
    let out = lumen()
        .args(["eval", "--every", "40", "--data"])
        .arg(chaos)
        .arg("--model")
        .arg(starter_model())
        .stderr(writer)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?} {stdout}", out.status);
    let liver = stdout
        .lines()
        .find(|l| l.starts_with("liver"))
        .unwrap_or_else(|| panic!("no liver row in {stdout}"));
    let dice: f64 = liver.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(dice > 0.9, "CHAOS liver box Dice {dice}: {stdout}");
}

/// A real CT slice from the SAM-Med2D demo set and its liver label.
fn demo_slice() -> (std::path::PathBuf, image::GrayImage) {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/sam_med2d_demo/data_demo");
    let label = image::open(demo.join("masks/amos_0004_75_liver_000.png"))
        .unwrap()
        .into_luma8();
    (demo.join("images/amos_0004_75.png"), label)
}

#[test]
fn segment_writes_a_mask_inside_the_box_and_refuses_a_box_off_the_image() {
    let (image, label) = demo_slice();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in label.enumerate_pixels() {
        if p.0[0] > 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("mask.png");
    let out = lumen()
        .args(["segment", "--image"])
        .arg(&image)
        .arg("--box")
        .arg(format!("{x0},{y0},{x1},{y1}"))
        .arg("--out")
        .arg(&mask)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = image::open(&mask).unwrap().into_luma8();
    assert_eq!(written.dimensions(), label.dimensions());
    let on: Vec<(u32, u32)> = written
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] == 255)
        .map(|(x, y, _)| (x, y))
        .collect();
    assert!(!on.is_empty(), "the mask is empty");
    let inside = on
        .iter()
        .filter(|(x, y)| {
            (x0.saturating_sub(3)..=x1 + 3).contains(x)
                && (y0.saturating_sub(3)..=y1 + 3).contains(y)
        })
        .count();
    assert!(
        inside as f64 >= 0.95 * on.len() as f64,
        "{} of {} mask pixels lie outside the box",
        on.len() - inside,
        on.len()
    );
    let overlap = on
        .iter()
        .filter(|(x, y)| label.get_pixel(*x, *y).0[0] > 0)
        .count();
    let labelled = label.pixels().filter(|p| p.0[0] > 0).count();
    let dice = 2.0 * overlap as f64 / (on.len() + labelled) as f64;
    assert!(
        dice >= 0.5,
        "the mask does not cover the liver: Dice {dice:.3}"
    );

    let (w, h) = label.dimensions();
    let out = lumen()
        .args(["segment", "--image"])
        .arg(&image)
        .arg("--box")
        .arg(format!("10,10,{},{}", w + 50, h / 2))
        .arg("--out")
        .arg(dir.path().join("bad.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("outside the {w}×{h} image")),
        "{stderr}"
    );
    assert!(!dir.path().join("bad.png").exists());
}
