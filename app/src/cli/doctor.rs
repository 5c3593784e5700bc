//! `lumen doctor`: checks that this installation can run, one line a check, each `ok`, `warn`
//! (works, with a limit) or `FAIL` with the fix. Exits non-zero when anything failed.

use crate::models::{Origin, list_models, user_models_dir};
use anyhow::bail;
use lumen_engine::model::SamModel;
use lumen_engine::runtime::{SessionConfig, candidate_paths, library_version};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Warn,
    Fail,
}

/// The checks' lines as they are printed, and how many failed.
#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, outcome: Outcome, what: &str, fix: Option<&str>) -> anyhow::Result<()> {
        let tag = match outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "warn",
            Outcome::Fail => {
                self.failed += 1;
                "FAIL"
            }
        };
        match fix {
            Some(fix) => outln!("{tag}  {what}\n      fix: {fix}"),
            None => outln!("{tag}  {what}"),
        }
    }
}

pub fn run() -> anyhow::Result<()> {
    let mut report = Report::default();
    report.line(Outcome::Ok, super::version::VERSION_LINE, None)?;
    let runtime_ok = check_runtime(&mut report)?;
    check_models(&mut report, runtime_ok)?;
    check_sample(&mut report)?;
    check_cpu(&mut report)?;
    check_user_dirs(&mut report)?;
    check_display(&mut report)?;
    if report.failed > 0 {
        bail!("{} check(s) failed; see the fixes above", report.failed);
    }
    outln!("all checks passed")?;
    Ok(())
}

fn check_runtime(report: &mut Report) -> anyhow::Result<bool> {
    match (lumen_engine::runtime::init(), library_version()) {
        (Ok(path), Ok(version)) => {
            let what = format!("ONNX Runtime {version} loads from {}", path.display());
            report.line(Outcome::Ok, &what, None)?;
            Ok(true)
        }
        (Err(error), _) | (_, Err(error)) => {
            let searched: Vec<String> = candidate_paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            let fix = format!(
                "put {} next to the lumen executable (it ships in the release archive), \
                 or set ORT_DYLIB_PATH to it; looked in {}",
                lumen_engine::runtime::LIBRARY_FILE,
                searched.join(", ")
            );
            report.line(Outcome::Fail, &error.to_string(), Some(&fix))?;
            Ok(false)
        }
    }
}

/// Every bundled model's files against their sha256 and, with a runtime, its sessions; the
/// user's own models too, whose faults only warn (the bundled ones still work).
fn check_models(report: &mut Report, runtime_ok: bool) -> anyhow::Result<()> {
    let bundled_dir = crate::paths::bundled_models_dir();
    let models = list_models(&bundled_dir, &user_models_dir());
    if !models.iter().any(|m| m.origin == Origin::Bundled) {
        let what = format!("no bundled model in {}", bundled_dir.display());
        let fix =
            "extract the release archive again: its assets/ folder goes beside the executable";
        return report.line(Outcome::Fail, &what, Some(fix));
    }
    for model in models {
        let opened = if runtime_ok {
            SamModel::load(&model.dir, &SessionConfig::default()).map(|m| m.bundle().clone())
        } else {
            lumen_engine::model::ModelBundle::open(&model.dir)
        };
        let origin = match model.origin {
            Origin::Bundled => "bundled",
            Origin::User => "your",
        };
        match opened {
            Ok(bundle) => {
                let what = format!(
                    "{origin} model {} ({}, {:.1} MB): every file matches its sha256{}",
                    model.name,
                    bundle.manifest.precision.label(),
                    bundle.size_bytes() as f64 / 1e6,
                    if runtime_ok { ", and it opens" } else { "" }
                );
                report.line(Outcome::Ok, &what, None)?;
            }
            Err(error) => {
                let what = format!("{origin} model {}: {error}", model.dir.display());
                let (outcome, fix) = match model.origin {
                    Origin::Bundled => (
                        Outcome::Fail,
                        "extract the release archive again, and check it with `sha256sum -c SHA256SUMS`",
                    ),
                    Origin::User => (
                        Outcome::Warn,
                        "import the bundle again, or delete its folder",
                    ),
                };
                report.line(outcome, &what, Some(fix))?;
            }
        }
    }
    Ok(())
}

fn check_sample(report: &mut Report) -> anyhow::Result<()> {
    let dir = crate::paths::sample_study_dir();
    let loaded = lumen_study::discover(&dir)
        .map_err(anyhow::Error::new)
        .and_then(|found| match found.series.first() {
            Some(series) => Ok((series.clone(), lumen_study::load_series(series)?)),
            None => bail!("no DICOM series in it"),
        });
    match loaded {
        Ok((series, volume)) => {
            let [columns, rows, slices] = volume.dims;
            let what = format!(
                "sample study decodes: {}, {slices} slices of {columns}×{rows}",
                series.modality
            );
            report.line(Outcome::Ok, &what, None)
        }
        Err(error) => {
            let what = format!("sample study {}: {error:#}", dir.display());
            let fix = "extract the release archive again (assets/sample)";
            report.line(Outcome::Warn, &what, Some(fix))
        }
    }
}

/// The instruction sets ONNX Runtime's int8 kernels choose between, best first.
fn check_cpu(report: &mut Report) -> anyhow::Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let best = if std::arch::is_x86_feature_detected!("avx512vnni") {
            Some("AVX-512 VNNI")
        } else if std::arch::is_x86_feature_detected!("avxvnni") {
            Some("AVX-VNNI")
        } else if std::arch::is_x86_feature_detected!("avx512bw") {
            Some("AVX-512")
        } else if std::arch::is_x86_feature_detected!("avx2") {
            Some("AVX2")
        } else {
            None
        };
        match best {
            Some(set) => {
                let what = format!("CPU: the int8 kernels use {set}");
                report.line(Outcome::Ok, &what, None)
            }
            None => report.line(
                Outcome::Warn,
                "CPU has no AVX2: quantized (int8) models run on slow fallback kernels",
                Some("choose an fp32 model in the Model panel"),
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    report.line(Outcome::Warn, "CPU is not x86-64: untested", None)
}

/// Settings, caches and the user's models and autosaves each need a folder Lumen can write.
fn check_user_dirs(report: &mut Report) -> anyhow::Result<()> {
    let Some(dirs) = crate::paths::user_dirs() else {
        return report.line(
            Outcome::Fail,
            "no home folder: settings, caches and autosaves have nowhere to go",
            Some("set HOME, or LUMEN_HOME to a writable folder"),
        );
    };
    for (role, dir) in [
        ("settings", dirs.config_dir()),
        ("caches", dirs.cache_dir()),
        ("models and autosaves", dirs.data_local_dir()),
    ] {
        match probe_writable(dir) {
            Ok(()) => {
                let what = format!("{role} folder {} is writable", dir.display());
                report.line(Outcome::Ok, &what, None)?;
            }
            Err(error) => {
                let what = format!("{role} folder {}: {error}", dir.display());
                let fix = "make it writable, or set LUMEN_HOME to a writable folder";
                report.line(Outcome::Fail, &what, Some(fix))?;
            }
        }
    }
    Ok(())
}

/// Makes the folder and writes and removes a file in it, as the app's own writes do.
fn probe_writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".lumen-doctor-probe");
    lumen_engine::fsio::write_bytes(&probe, b"lumen doctor\n")?;
    std::fs::remove_file(&probe)?;
    Ok(())
}

/// The libraries the desktop window loads at run time (winit, xkbcommon and the GL loader
/// open them by name), with the Debian package of each.
const X11_LIBRARIES: [(&str, &str); 7] = [
    ("libX11.so.6", "libx11-6"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libxcb.so.1", "libxcb1"),
    ("libXcursor.so.1", "libxcursor1"),
    ("libXi.so.6", "libxi6"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
];
const WAYLAND_LIBRARIES: [(&str, &str); 3] = [
    ("libwayland-client.so.0", "libwayland-client0"),
    ("libwayland-egl.so.1", "libwayland-egl1"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
];
const GL_LIBRARIES: [(&str, &str); 2] = [("libEGL.so.1", "libegl1"), ("libGL.so.1", "libgl1")];

fn check_display(report: &mut Report) -> anyhow::Result<()> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let (session, libraries): (String, &[(&str, &str)]) =
        match (set("WAYLAND_DISPLAY"), set("DISPLAY")) {
            (Some(wayland), _) => (
                format!("Wayland display {}", wayland.to_string_lossy()),
                &WAYLAND_LIBRARIES,
            ),
            (None, Some(x11)) => (
                format!("X11 display {}", x11.to_string_lossy()),
                &X11_LIBRARIES,
            ),
            (None, None) => {
                report.line(
                    Outcome::Warn,
                    "no display (DISPLAY and WAYLAND_DISPLAY unset): the command line works, \
                     the desktop window needs a graphical session",
                    None,
                )?;
                ("X11".to_string(), &X11_LIBRARIES)
            }
        };
    let mut missing: Vec<String> = libraries
        .iter()
        .filter(|(file, _)| !loads(file))
        .map(|(file, package)| format!("{file} (Debian: {package})"))
        .collect();
    if !GL_LIBRARIES.iter().any(|(file, _)| loads(file)) {
        missing.push("libEGL.so.1 or libGL.so.1 (Debian: libegl1 or libgl1)".to_string());
    }
    let headless = set("WAYLAND_DISPLAY").is_none() && set("DISPLAY").is_none();
    if missing.is_empty() {
        report.line(
            Outcome::Ok,
            &format!("window libraries for {session}"),
            None,
        )
    } else {
        let what = format!("the window for {session} needs {}", missing.join(", "));
        let fix = "install those packages (every desktop Linux has them)";
        let outcome = if headless {
            Outcome::Warn
        } else {
            Outcome::Fail
        };
        report.line(outcome, &what, Some(fix))
    }
}

/// Whether the dynamic loader finds and loads the library, as the window code will.
fn loads(file: &str) -> bool {
    // SAFETY: these are the system's X11, Wayland, xkbcommon and GL client libraries, which the
    // window code loads the same way; their initializers have no preconditions. The handle is
    // closed again at once.
    #[allow(unsafe_code)]
    unsafe {
        libloading::Library::new(file).is_ok()
    }
}
