//! Hostile and damaged studies, made by `tests/crafted/make_cases.py` from real CHAOS CT slices
//! and a CHAOS MR volume, each opened by `lumen inspect` in its own process as a user would open
//! it: each must give a volume (with the warning that says what is odd) or an error naming the
//! file; none may crash, hang, or take more than 2 GiB at its peak (the process's own maximum
//! resident set, from `wait4`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const PEAK_LIMIT_BYTES: u64 = 2 << 30;
/// Far above any case's time (the slowest, a deflate bomb, takes a few seconds): only a hang
/// reaches it.
const HANG_LIMIT: Duration = Duration::from_secs(120);

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    path: PathBuf,
    /// "volume", "error", or "either" (damage whose right answer may be a smaller volume or an
    /// error: the check is then that it is one of the two, clearly).
    outcome: String,
    /// Phrases the output must hold, in any case (the warning, the attribute, the file's name).
    says: Vec<String>,
    /// The slices the volume must have.
    slices: Option<usize>,
    /// The highest voxel value the volume may hold.
    max_value: Option<f32>,
}

/// How one `lumen inspect` run ended.
struct Run {
    /// The exit code; None when a signal ended it (a crash or the hang limit).
    code: Option<i32>,
    output: String,
    peak_bytes: u64,
    took: Duration,
}

#[test]
fn crafted_and_damaged_studies_give_a_volume_or_a_clear_error_within_2_gib() {
    let cases_dir = make_cases();
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(cases_dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut failures = Vec::new();
    let (mut volumes, mut warned, mut errors, mut peak_max, mut slowest) =
        (0, 0, 0, 0u64, Duration::ZERO);
    for case in &cases {
        let run = inspect(&cases_dir.join(&case.path));
        peak_max = peak_max.max(run.peak_bytes);
        slowest = slowest.max(run.took);
        match check(case, &run) {
            Ok(Opened::Volume { notes }) => {
                volumes += 1;
                warned += usize::from(notes > 0);
            }
            Ok(Opened::Error) => errors += 1,
            Err(why) => failures.push(format!("{}: {why}\n{}", case.name, run.output)),
        }
        println!(
            "{:<36} {:>7.1} MiB {:>6} ms  {}",
            case.name,
            run.peak_bytes as f64 / f64::from(1 << 20),
            run.took.as_millis(),
            run.output.lines().next().unwrap_or("")
        );
    }
    println!(
        "{} cases: {volumes} volumes ({warned} with a note), {errors} errors; peak {:.0} MiB; slowest {} ms",
        cases.len(),
        peak_max as f64 / f64::from(1 << 20),
        slowest.as_millis()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The cases under `target/crafted-cases`, made afresh from the shared data.
fn make_cases() -> PathBuf {
    let python = lumen_tests::seg_check_python().expect("the Python of the SEG check");
    let out = lumen_tests::repo_root()
        .join("target")
        .join("crafted-cases");
    let made = Command::new(python)
        .arg(lumen_tests::repo_root().join("tests/crafted/make_cases.py"))
        .arg(lumen_tests::shared_data())
        .arg(&out)
        .status()
        .unwrap();
    assert!(made.success(), "make_cases.py failed");
    out
}

enum Opened {
    Volume { notes: usize },
    Error,
}

fn check(case: &Case, run: &Run) -> Result<Opened, String> {
    if run.peak_bytes > PEAK_LIMIT_BYTES {
        return Err(format!("peak memory {} MiB", run.peak_bytes >> 20));
    }
    if run.output.contains("panicked") {
        return Err("a panic".into());
    }
    let opened = match run.code {
        Some(0) => volume_facts(case, &run.output)?,
        Some(1) => error_facts(case, &run.output)?,
        Some(code) => return Err(format!("exit code {code}")),
        None => return Err(format!("killed by a signal after {:?}", run.took)),
    };
    match (case.outcome.as_str(), &opened) {
        ("volume", Opened::Error) => return Err("an error where a volume was due".into()),
        ("error", Opened::Volume { .. }) => return Err("a volume where an error was due".into()),
        _ => {}
    }
    let output = run.output.to_lowercase();
    if let Some(missing) = case
        .says
        .iter()
        .find(|s| !output.contains(&s.to_lowercase()))
    {
        return Err(format!("the output does not say {missing:?}"));
    }
    Ok(opened)
}

/// A volume's report: the slice count and highest value the case asks for.
fn volume_facts(case: &Case, output: &str) -> Result<Opened, String> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("volume   "))
        .ok_or("exit code 0 without a volume")?;
    // "512×512×6 CT, spacing …, values -1000…1343"
    let dims = line.split_whitespace().next().unwrap_or("");
    let slices: usize = dims
        .rsplit('×')
        .next()
        .and_then(|z| z.parse().ok())
        .ok_or(dims)?;
    if case.slices.is_some_and(|want| want != slices) {
        return Err(format!("{slices} slices, not {:?}", case.slices));
    }
    if line.contains("not finite") {
        return Err(format!("non-finite voxels: {line}"));
    }
    let high: f32 = line
        .rsplit('…')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no value range")?;
    if case.max_value.is_some_and(|most| high > most) {
        return Err(format!("values up to {high}"));
    }
    let notes = output.lines().filter(|l| l.starts_with("note ")).count();
    Ok(Opened::Volume { notes })
}

/// An error must name the case's file or folder and give a reason after it.
fn error_facts(case: &Case, output: &str) -> Result<Opened, String> {
    let message = output
        .lines()
        .find_map(|l| l.strip_prefix("lumen: "))
        .ok_or("exit code 1 without an error message")?;
    let named = case.path.iter().next_back().map(|n| n.to_string_lossy());
    match named {
        Some(name) if message.contains(name.as_ref()) => Ok(Opened::Error),
        _ => Err(format!("the error does not name {}", case.path.display())),
    }
}

/// `lumen inspect PATH` in a process of its own, its output in a file (no pipe to fill), its
/// peak resident memory from `wait4`; killed at the hang limit.
// the child is reaped by `wait4` (which `Child::wait` cannot replace: it drops the rusage)
#[allow(clippy::zombie_processes)]
fn inspect(path: &Path) -> Run {
    let log = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lumen"))
        .arg("inspect")
        .arg(path)
        .env("LUMEN_HOME", common::isolated_home())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let (status, peak_bytes) = loop {
        if let Some(ended) = try_wait4(pid) {
            break ended;
        }
        if started.elapsed() > HANG_LIMIT {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let output = {
        use std::io::{Read, Seek};
        let mut log = log;
        let mut text = String::new();
        log.rewind().unwrap();
        log.read_to_string(&mut text).unwrap();
        text
    };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        output,
        peak_bytes,
        took,
    }
}

/// The child's wait status and peak resident set in bytes, once it has ended.
#[allow(unsafe_code)]
fn try_wait4(pid: i32) -> Option<(i32, u64)> {
    let mut status = 0;
    // SAFETY: both out-pointers are valid for the call; rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ended = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
    // ru_maxrss is in KiB on Linux
    (ended == pid).then(|| (status, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024))
}
