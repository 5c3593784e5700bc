//! The clinic's release bundle, as a clinic gets it: `packaging/release/bundle.py` packs the
//! built `lumen` with its library, models and notices; the archive is checked and extracted into
//! an empty folder and run there with a bare environment (no cargo, no python, a fresh HOME) and
//! no network. The same goes for the .deb, extracted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::Array2;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/demo_slice.rs"]
mod demo_slice;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `exe args` as a clinic machine would: no inherited variables but PATH and a fresh HOME,
/// in `cwd`, in a network namespace of its own (`unshare`: no interface but a downed loopback).
fn run_bare(exe: &Path, args: &[&str], home: &Path, cwd: &Path) -> Output {
    let out = Command::new("unshare")
        .args([
            "--net",
            "--map-root-user",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
        ])
        .arg(format!("HOME={}", home.display()))
        .arg(exe)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {:?}\n{}\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_tool(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Every file under `root` with its length and sha256.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    let mut files = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            } else {
                let hash = lumen_engine::model::sha256_file(&path).unwrap();
                let len = entry.metadata().unwrap().len();
                files.insert(path.strip_prefix(root).unwrap().to_path_buf(), (len, hash));
            }
        }
    }
    files
}

/// `lumen segment` with a box around the demo slice's liver; the mask's Dice against the label.
fn segment_dice(exe: &Path, home: &Path, cwd: &Path) -> f64 {
    let (image, label) = demo_slice::demo_slice();
    let (x0, y0, x1, y1) = demo_slice::label_box(&label);
    let image = image.to_str().unwrap().to_string();
    let bbox = format!("{x0},{y0},{x1},{y1}");
    let args = [
        "segment", "--image", &image, "--box", &bbox, "--out", "mask.png",
    ];
    run_bare(exe, &args, home, cwd);
    let mask = image::open(cwd.join("mask.png")).unwrap().into_luma8();
    let as_bool = |img: &image::GrayImage| {
        let (w, h) = img.dimensions();
        Array2::from_shape_fn((h as usize, w as usize), |(y, x)| {
            img.get_pixel(x as u32, y as u32).0[0] > 0
        })
    };
    lumen_engine::eval::dice(as_bool(&mask).view(), as_bool(&label).view())
}

/// The files under `home` that are not in Lumen's own per-user folders.
fn written_elsewhere(home: &Path) -> Vec<PathBuf> {
    let ours = [".config/lumen", ".cache/lumen", ".local/share/lumen"];
    snapshot(home)
        .into_keys()
        .filter(|path| !ours.iter().any(|dir| path.starts_with(dir)))
        .collect()
}

/// What `bundle.py` made: the archive, its name without `.tar.gz`, and the .deb.
struct Packed {
    archive: PathBuf,
    name: String,
    deb: PathBuf,
}

/// Packs the built `lumen` into `dist` (the archive, its checksum file and the .deb) and checks
/// the archive against its checksum.
fn pack(dist: &Path) -> Packed {
    let packed = run_tool(
        Command::new("python3")
            .arg(repo().join("packaging/release/bundle.py"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_lumen"))
            .arg("--out")
            .arg(dist)
            .args(["--deb", "--fast"]),
    );
    let archive = PathBuf::from(packed.lines().next().unwrap());
    let name = archive
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_suffix(".tar.gz")
        .unwrap()
        .to_string();
    assert!(name.starts_with("lumen-") && name.ends_with("-linux-x86_64"));
    let size_mb = std::fs::metadata(&archive).unwrap().len() as f64 / 1e6;
    eprintln!("{} is {size_mb:.1} MB", archive.display());
    let sums = run_tool(
        Command::new("sha256sum")
            .arg("-c")
            .arg(format!("{name}.tar.gz.sha256"))
            .current_dir(dist),
    );
    assert!(sums.contains(": OK"), "{sums}");
    let deb = PathBuf::from(packed.lines().nth(1).unwrap());
    Packed { archive, name, deb }
}

/// Extracts the archive into `into` and checks every file against the bundle's SHA256SUMS; the
/// bundle's folder.
fn extract(packed: &Packed, into: &Path) -> PathBuf {
    std::fs::create_dir(into).unwrap();
    run_tool(
        Command::new("tar")
            .arg("-xzf")
            .arg(&packed.archive)
            .arg("-C")
            .arg(into),
    );
    let bundle = into.join(&packed.name);
    let checked = run_tool(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&bundle),
    );
    assert!(
        checked.lines().all(|l| l.ends_with(": OK")) && checked.contains("lumen: OK"),
        "{checked}"
    );
    bundle
}

/// The library, the models, the sample, the desktop entry and every notice are in the bundle;
/// the shipped crates' licences are listed, the test-only ones are not.
fn check_contents(bundle: &Path) {
    for inside in [
        "libonnxruntime.so.1.32.0",
        "assets/models/litemedsam/model.toml",
        "assets/models/litemedsam-w8a8/encoder.onnx",
        "assets/models/ct-starter/encoder.onnx",
        "assets/sample/totalsegmentator-ct",
        "lumen.desktop",
        "lumen.svg",
        "LICENSES/LICENSE",
        "LICENSES/onnxruntime/ThirdPartyNotices.txt",
        "NOTICE.txt",
        "README.txt",
    ] {
        assert!(bundle.join(inside).exists(), "{inside} is missing");
    }
    // the W8A8 and the fast bundles' decoders are LiteMedSAM's, stored once in the archive
    let inode = |bundled: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(
            bundle
                .join("assets/models")
                .join(bundled)
                .join("decoder.onnx"),
        )
        .unwrap()
        .ino()
    };
    assert_eq!(inode("litemedsam"), inode("litemedsam-w8a8"));
    assert_eq!(inode("litemedsam"), inode("litemedsam-fast"));
    let crates = std::fs::read_to_string(bundle.join("LICENSES/rust-crates.txt")).unwrap();
    for shipped in [
        "\neframe ",
        "\nort ",
        "\ndicom-object ",
        "Permission is hereby granted",
    ] {
        assert!(
            crates.contains(shipped),
            "{shipped:?} not in the crate notices"
        );
    }
    assert!(
        !crates.contains("\negui_kittest "),
        "a test-only crate is listed as shipped"
    );
}

/// `--version`, `doctor`, `info` and a real segmentation from the bundle, run bare: the library
/// and the default model are the bundle's own.
fn check_runs_bare(bundle: &Path, home: &Path, cwd: &Path) {
    let exe = bundle.join("lumen");
    let version = stdout(&run_bare(&exe, &["--version"], home, cwd));
    assert!(version.starts_with("lumen 0."), "{version}");
    let library = bundle.join("libonnxruntime.so.1.32.0");
    assert!(
        version.contains(&format!("ONNX Runtime 1.32.0: {}", library.display())),
        "the library beside the executable is the one found: {version}"
    );
    let default_model = bundle.join("assets/models/litemedsam-w8a8");
    assert!(
        version.contains(&format!(
            "default model litemedsam-w8a8 (W8A8): {}",
            default_model.display()
        )),
        "the default model is the bundle's own, not the source tree's: {version}"
    );

    let doctor = stdout(&run_bare(&exe, &["doctor"], home, cwd));
    for line in [
        format!("ok    ONNX Runtime 1.32.0 loads from {}", library.display()),
        "ok    bundled model litemedsam-w8a8 (W8A8".to_string(),
        "ok    bundled model litemedsam (fp32".to_string(),
        "ok    bundled model litemedsam-fast (fp32".to_string(),
        "ok    bundled model ct-starter (fp32".to_string(),
        "ok    sample study decodes: CT, 20 slices".to_string(),
        format!(
            "ok    settings folder {}",
            home.join(".config/lumen").display()
        ),
        "warn  no display".to_string(),
        "all checks passed".to_string(),
    ] {
        assert!(doctor.contains(&line), "{line:?} not in:\n{doctor}");
    }
    assert!(!doctor.contains("FAIL"), "{doctor}");

    let info = stdout(&run_bare(&exe, &["info"], home, cwd));
    assert!(info.contains("model      litemedsam-w8a8 ("), "{info}");
    assert!(info.contains("(verified)"), "{info}");

    // W8A8 LiteMedSAM scores 0.870 on this slice from a source tree's build
    let dice = segment_dice(&exe, home, cwd);
    assert!(dice > 0.85, "liver box Dice {dice:.3} from the bundle");
}

/// The .deb: /opt/lumen as the archive's bundle, /usr/bin/lumen a relative link to it, a menu
/// entry; run through the link, the library beside the real executable is still found.
fn check_deb(deb: &Path, root: &Path, home: &Path, cwd: &Path) {
    let fields = run_tool(Command::new("dpkg-deb").arg("--field").arg(deb));
    assert!(fields.contains("Package: lumen") && fields.contains("Depends: libc6 (>= 2.35)"));
    run_tool(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
    let entry = std::fs::read_to_string(root.join("usr/share/applications/lumen.desktop")).unwrap();
    assert!(entry.contains("Exec=/usr/bin/lumen"), "{entry}");
    let linked = stdout(&run_bare(
        &root.join("usr/bin/lumen"),
        &["--version"],
        home,
        cwd,
    ));
    assert!(
        linked.contains(
            &root
                .join("opt/lumen/libonnxruntime.so.1.32.0")
                .display()
                .to_string()
        ),
        "through /usr/bin/lumen the library is still found beside the real executable: {linked}"
    );
}

#[test]
fn the_release_bundle_runs_from_an_empty_folder_with_a_bare_environment_and_no_network() {
    let work = tempfile::tempdir().unwrap();
    let packed = pack(&work.path().join("dist"));
    let bundle = extract(&packed, &work.path().join("clinic"));
    check_contents(&bundle);

    let before = snapshot(&bundle);
    let home = work.path().join("home");
    let cwd = work.path().join("elsewhere");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    check_runs_bare(&bundle, &home, &cwd);
    assert_eq!(
        snapshot(&bundle),
        before,
        "the bundle's folder changed while it ran"
    );
    assert_eq!(written_elsewhere(&home), Vec::<PathBuf>::new());
    let left_in_cwd: Vec<_> = snapshot(&cwd).into_keys().collect();
    assert_eq!(left_in_cwd, vec![PathBuf::from("mask.png")]);

    check_deb(&packed.deb, &work.path().join("deb-root"), &home, &cwd);
}
