//! The `lumen` binary's command line, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;
#[path = "common/demo_slice.rs"]
mod demo_slice;
use demo_slice::{demo_slice, label_box};

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
    assert!(
        stdout.contains("model      litemedsam-w8a8 ("),
        "the default: {stdout}"
    );
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

#[test]
fn segment_writes_a_mask_inside_the_box_and_refuses_a_box_off_the_image() {
    let (image, label) = demo_slice();
    let (x0, y0, x1, y1) = label_box(&label);
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

/// A writable copy of the bundled model whose `model.toml` has `from` replaced by `to`.
fn broken_bundle(from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["encoder.onnx", "decoder.onnx"] {
        std::fs::copy(starter_model().join(name), dir.path().join(name)).unwrap();
    }
    let text = std::fs::read_to_string(starter_model().join("model.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(dir.path().join("model.toml"), text.replacen(from, to, 1)).unwrap();
    dir
}

#[test]
fn a_bundle_with_a_nan_std_or_a_bad_window_is_refused_by_info_and_segment() {
    let nan_std = broken_bundle(
        "std = [58.395, 57.12, 57.375]",
        "std = [58.395, nan, 57.375]",
    );
    let out = lumen().arg("info").arg(nan_std.path()).output().unwrap();
    assert!(!out.status.success(), "lumen info accepted a NaN std");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model.toml")
            && stderr.contains("normalize.std[1] must be a finite number > 0, found NaN"),
        "{stderr}"
    );

    let (image, _) = demo_slice();
    let work = tempfile::tempdir().unwrap();
    let mask = work.path().join("mask.png");
    let out = lumen()
        .args(["segment", "--model"])
        .arg(nan_std.path())
        .arg("--image")
        .arg(&image)
        .args(["--box", "40,40,120,120", "--out"])
        .arg(&mask)
        .output()
        .unwrap();
    assert!(!out.status.success(), "lumen segment accepted a NaN std");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("normalize.std[1]"), "{stderr}");
    assert!(!mask.exists(), "no mask is written");

    for width in ["0.0", "-5.0"] {
        let bad_window = broken_bundle("width = 475.0", &format!("width = {width}"));
        let out = lumen().arg("info").arg(bad_window.path()).output().unwrap();
        assert!(!out.status.success(), "width {width} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("intensity.ct.width must be a finite number > 0"),
            "{stderr}"
        );
    }
}

#[test]
fn quantize_checks_its_arguments_before_any_synthesis() {
    let work = tempfile::tempdir().unwrap();
    let existing = work.path().join("existing.txt");
    std::fs::write(&existing, b"keep me").unwrap();
    let nan_std = broken_bundle(
        "std = [58.395, 57.12, 57.375]",
        "std = [58.395, 57.12, nan]",
    );
    let fresh = work.path().join("q");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec!["-w".into(), "9".into()], "weights take 2–8 bits"),
        (vec!["-a".into(), "1".into()], "weights take 2–8 bits"),
        (
            vec!["--min-self-check".into(), "1.5".into()],
            "--min-self-check 1.5 must be a mask IoU from 0 to 1",
        ),
        (
            vec!["--model".into(), nan_std.path().into()],
            "normalize.std[2] must be a finite number > 0, found NaN",
        ),
    ];
    for (args, expected) in cases {
        let out = lumen()
            .arg("quantize")
            .args(if args.iter().any(|a| a == "--model") {
                vec![]
            } else {
                vec!["--model".into(), starter_model().into_os_string()]
            })
            .arg("--out")
            .arg(&fresh)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("[synthesize]"), "{args:?}: {stderr}");
        assert!(!fresh.exists(), "{args:?}");
    }
    for out_dir in [&existing, &work.path().to_path_buf()] {
        let out = lumen()
            .arg("quantize")
            .arg("--model")
            .arg(starter_model())
            .arg("--out")
            .arg(out_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("already exists"), "{stderr}");
        assert!(!stderr.contains("[synthesize]"), "{stderr}");
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    let names: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["existing.txt"], "nothing else is left behind");
}

#[test]
fn quantize_on_the_default_w8a8_model_starts_from_its_fp32_bundle() {
    // 9 weight bits stop it before any work, after it chose its source
    let work = tempfile::tempdir().unwrap();
    let out = lumen()
        .args(["quantize", "-w", "9", "--out"])
        .arg(work.path().join("q"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("litemedsam-w8a8 is quantized; requantizing the full-precision ")
            && stderr.contains("assets/models/litemedsam it was made from"),
        "{stderr}"
    );
    assert!(stderr.contains("weights take 2–8 bits"), "{stderr}");
}

#[test]
fn quantize_below_the_self_check_floor_fails_and_leaves_no_bundle() {
    // W2A2 on noise calibration, the quick preset: a real run (about 7 s) whose masks agree
    // with the FP model's at IoU ~0.2, under the default floor of 0.5.
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("w2a2");
    let out = lumen()
        .args(["quantize", "--model"])
        .arg(starter_model())
        .args([
            "--preset",
            "quick",
            "--calibration",
            "noise",
            "-w",
            "2",
            "-a",
            "2",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("self-check failed") && stderr.contains("below the floor of 0.5"),
        "{stderr}"
    );
    assert!(!stdout.contains("wrote"), "{stdout}");
    assert!(
        !out_dir.exists(),
        "no bundle is left at {}",
        out_dir.display()
    );
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_thread_count_beyond_the_machine_is_refused_at_once() {
    for command in ["bench", "eval", "quantize"] {
        // refused by the argument parser, before any model is opened
        let out = lumen()
            .args([command, "--threads", "999"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not a thread count for this machine"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn doctor_fails_on_a_missing_library_and_an_unwritable_home_and_names_each_fix() {
    // LUMEN_HOME is a file, so none of the three folders can be made under it
    let not_a_folder = tempfile::NamedTempFile::new().unwrap();
    let out = lumen()
        .arg("doctor")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("LUMEN_HOME", not_a_folder.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("4 check(s) failed"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let fix_after = |start: &str| {
        let at = lines
            .iter()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} line in:\n{stdout}"));
        lines[at + 1]
    };
    assert!(
        fix_after("FAIL  ONNX Runtime 1.32.0").contains("ORT_DYLIB_PATH"),
        "{stdout}"
    );
    assert!(
        fix_after("FAIL  settings folder").contains("set LUMEN_HOME to a writable folder"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  caches folder"), "{stdout}");
    assert!(
        stdout.contains("FAIL  models and autosaves folder"),
        "{stdout}"
    );
    // without a runtime the models' checksums are still checked
    assert!(
        stdout.contains("ok    bundled model litemedsam-w8a8 (W8A8")
            && stdout.contains("ok    bundled model litemedsam (fp32")
            && stdout.contains("every file matches its sha256\n"),
        "{stdout}"
    );
}
