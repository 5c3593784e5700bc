//! Writes onto a real full filesystem (a small tmpfs the test mounts; CI runs as root) fail with a
//! message that names the file and says the disk is full, and leave the earlier file byte for byte
//! as it was, with no temporary file behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_annotation::export::{self, SegOptions, Segment};
use lumen_study::{LabelVolume, Volume};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// A tmpfs of `bytes` mounted on a fresh folder, unmounted when dropped.
struct SmallDisk {
    mount: tempfile::TempDir,
}

impl SmallDisk {
    fn new(bytes: usize) -> Self {
        let mount = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(mount.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (CI has it)");
        Self { mount }
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Fills the disk but for about `leave` bytes.
    fn fill(&self, leave: u64) {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0xA5u8; 16 * 1024];
        while file.write_all(&block).is_ok() {}
        drop(file);
        let len = std::fs::metadata(&filler).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&filler)
            .unwrap();
        file.set_len(len.saturating_sub(leave)).unwrap();
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled sample CT with a liver-sized box on every slice as segment 1.
fn sample_with_a_segment() -> (Volume, LabelVolume, Vec<Segment>) {
    let dir = repo().join("assets/sample/totalsegmentator-ct");
    let series = &lumen_study::discover(&dir).unwrap().series[0];
    let volume = lumen_study::load_series(series).unwrap();
    let [nx, ny, nz] = volume.dims;
    let mut labels = vec![0u16; nx * ny * nz];
    for z in 0..nz {
        for y in 150..300 {
            for x in 100..260 {
                labels[(z * ny + y) * nx + x] = 1;
            }
        }
    }
    let labels = LabelVolume {
        dims: volume.dims,
        labels,
        patient_from_voxel: volume.patient_from_voxel,
    };
    (volume, labels, vec![Segment::new(1, "Liver")])
}

fn assert_full_disk_error(error: &str, file: &str) {
    assert!(error.contains(file), "names the file: {error}");
    assert!(
        error.contains("disk is full") || error.contains("No space left"),
        "says why: {error}"
    );
    assert!(
        !error.contains("Os {") && !error.contains("kind:"),
        "in words, not Rust debug text: {error}"
    );
}

#[test]
fn exports_on_a_full_disk_fail_and_keep_the_earlier_files() {
    let (volume, labels, segments) = sample_with_a_segment();
    // the uncompressed label map is 5.2 MB; the earlier exports fit, a second copy does not
    let disk = SmallDisk::new(12 << 20);
    let nii = disk.path().join("labels.nii");
    let gz = disk.path().join("labels.nii.gz");
    let seg = disk.path().join("liver-seg.dcm");
    export::write_nifti_labels(&nii, &labels, &segments).unwrap();
    export::write_nifti_labels(&gz, &labels, &segments).unwrap();
    export::write_seg(&seg, &volume, &labels, &segments, &SegOptions::default()).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = [&nii, &gz, &seg]
        .iter()
        .flat_map(|p| [p.to_path_buf(), export::sidecar_path(p)])
        .filter(|p| p.exists())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let listing = disk.entries();
    // some room, less than any of the files needs: the writers get part way and then fail
    disk.fill(64 * 1024);

    // a different annotation, so a write that wrongly succeeded would show
    let mut other = labels.clone();
    other.labels.iter_mut().step_by(7).for_each(|l| *l = 1);
    let e = export::write_nifti_labels(&nii, &other, &segments).unwrap_err();
    assert_full_disk_error(&e.to_string(), "labels.nii");
    let e = export::write_nifti_labels(&gz, &other, &segments).unwrap_err();
    assert_full_disk_error(&e.to_string(), "labels.nii.gz");
    let e =
        export::write_seg(&seg, &volume, &other, &segments, &SegOptions::default()).unwrap_err();
    assert_full_disk_error(&e.to_string(), "liver-seg.dcm");
    let png = disk.path().join("png");
    let e = export::write_png_masks(&png, &other, &segments).unwrap_err();
    assert_full_disk_error(&e.to_string(), "png");
    assert!(!png.exists(), "no partial PNG set");

    for (path, bytes) in &before {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{} changed",
            path.display()
        );
    }
    let mut expected = listing;
    expected.push("filler".into());
    expected.sort();
    assert_eq!(disk.entries(), expected, "no temporary file left behind");
}

#[test]
fn segment_on_a_full_disk_exits_non_zero_and_keeps_the_old_mask() {
    let disk = SmallDisk::new(1 << 20);
    let existing = disk.path().join("existing.png");
    std::fs::write(&existing, b"an earlier mask the user keeps").unwrap();
    disk.fill(0);
    let image = repo().join("../shared/data/sam_med2d_demo/data_demo/images/amos_0004_75.png");
    let out = Command::new(env!("CARGO_BIN_EXE_lumen"))
        .env("LUMEN_HOME", common::isolated_home())
        .args(["segment", "--image"])
        .arg(&image)
        .args(["--box", "100,100,200,200", "--out"])
        .arg(&existing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exit status on a full disk: {stderr}"
    );
    assert_full_disk_error(&stderr, "existing.png");
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        b"an earlier mask the user keeps"
    );
    assert_eq!(disk.entries(), ["existing.png", "filler"]);
}

#[test]
fn segment_refuses_a_device_node_as_its_output() {
    let image = repo().join("../shared/data/sam_med2d_demo/data_demo/images/amos_0004_75.png");
    let out = Command::new(env!("CARGO_BIN_EXE_lumen"))
        .env("LUMEN_HOME", common::isolated_home())
        .args(["segment", "--image"])
        .arg(&image)
        .args(["--box", "100,100,200,200", "--out", "/dev/full"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("/dev/full") && stderr.contains("not a regular file"),
        "{stderr}"
    );
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata("/dev/full").unwrap().file_type();
    assert!(kind.is_char_device(), "/dev/full is still the device");
}
