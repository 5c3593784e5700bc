//! Entry points of the fuzz targets (`app/study/fuzz/`) and of their regression replay
//! (`tests/tests/fuzz_regressions.rs`): arbitrary bytes in, Lumen's own reading path, and the
//! checks every answer must pass. Built only with the `fuzzing` feature.
//!
//! Each returns `Err` with what broke the rules: a volume whose voxels do not fill its size, or
//! an error that does not name the file. A panic or an abort is a finding too.

use crate::{LoadControl, Volume, discover_cancellable, load_nifti, load_nifti_labels};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// A file of `../shared/data` beside the repository (the real data the targets start from).
pub fn shared_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(relative)
}

/// The slice `discover_tree` copies: CHAOS CT's first.
pub static CHAOS_SLICE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let path = shared_data("chaos_ct_liver/Data_3D/DICOM_anon/i0000,0000b.dcm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
});

/// The bytes as one DICOM file, read from memory as the fuzzer gives them.
pub fn dicom_file(data: &[u8]) -> Result<(), String> {
    let name = Path::new("fuzz.dcm");
    check_volume(name, crate::dicom::load_bytes(name, data))
}

/// The bytes as a NIfTI file on disk (`.nii.gz` when they start as gzip), read as a volume and
/// as a label map.
pub fn nifti_file(data: &[u8]) -> Result<(), String> {
    let dir = scratch();
    let name = if data.starts_with(&[0x1f, 0x8b]) {
        "fuzz.nii.gz"
    } else {
        "fuzz.nii"
    };
    let path = dir.path().join(name);
    std::fs::write(&path, data).map_err(|e| e.to_string())?;
    check_volume(&path, load_nifti(&path))?;
    match load_nifti_labels(&path) {
        Ok(labels) if labels.labels.len() != labels.dims.iter().product::<usize>() => Err(format!(
            "{} labels for {:?}",
            labels.labels.len(),
            labels.dims
        )),
        Ok(_) => Ok(()),
        Err(e) => names(&path, &e.to_string()),
    }
}

/// The bytes as a recipe for a folder tree, discovered as the viewer discovers a study: two
/// bytes per step, the first choosing what to make (a folder, a file, a link, a step back up),
/// the second its name or target. Files are copies of [`CHAOS_SLICE`], cut at a length the
/// bytes choose, or named DICOMDIR; links point up, to the folder itself, to what was made, or
/// nowhere. Everything stays inside the input's own temporary folder. Discovery must end, list
/// no more slices than there are files, and give every file it leaves out a reason.
pub fn discover_tree(data: &[u8]) -> Result<(), String> {
    let slice = CHAOS_SLICE.as_slice();
    let dir = scratch();
    // one level down, so that a link to ".." stays inside what this input made
    let root = dir.path().join("study");
    std::fs::create_dir(&root).map_err(|e| e.to_string())?;
    let mut here = root.clone();
    let mut made: Vec<PathBuf> = vec![root.clone()];
    for (step, pair) in data.chunks(2).enumerate().take(64) {
        let (what, arg) = (pair[0], pair.get(1).copied().unwrap_or(0));
        let name = if arg % 7 == 0 {
            "DICOMDIR".to_string()
        } else {
            format!("n{step}_{arg}")
        };
        let path = here.join(&name);
        let made_ok = match what % 5 {
            0 => std::fs::create_dir(&path).is_ok(),
            1 => {
                let len = slice.len() * usize::from(arg) / 255;
                write_new(&path, &slice[..len.max(slice.len() / 2)])
            }
            2 => write_new(&path, slice),
            3 => {
                let target = match arg % 4 {
                    0 => PathBuf::from("."),
                    1 => PathBuf::from(".."),
                    2 => made[usize::from(arg) % made.len()].clone(),
                    _ => PathBuf::from("missing"),
                };
                std::os::unix::fs::symlink(target, &path).is_ok()
            }
            _ => {
                // only into folders made here, never through a link: nothing is written outside
                let to = &made[usize::from(arg) % made.len()];
                if to.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    here = to.clone();
                }
                false
            }
        };
        if made_ok {
            if path.is_dir() && what % 5 == 0 {
                here = path.clone();
            }
            made.push(path);
        }
    }
    let found = match discover_cancellable(&root, &LoadControl::default()) {
        Ok(found) => found,
        Err(e) => return names(&root, &e.to_string()),
    };
    let slices: usize = found.series.iter().map(|s| s.slice_count).sum();
    let written = made
        .iter()
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .count();
    if slices > written {
        let tree: Vec<String> = made.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("{slices} slices from {written} files in {tree:?}"));
    }
    match found.problems.iter().find(|p| p.reason.is_empty()) {
        Some(p) => Err(format!("{} left out without a reason", p.path.display())),
        None => Ok(()),
    }
}

/// Writes a file that was not there, never through a link of the same name.
fn write_new(path: &Path, data: &[u8]) -> bool {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .is_ok()
}

/// A fresh temporary folder (in memory where the system has one).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let made = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    };
    made.unwrap_or_else(|e| panic!("no temporary folder: {e}"))
}

fn check_volume(path: &Path, loaded: crate::Result<Volume>) -> Result<(), String> {
    match loaded {
        Ok(v) if v.voxels.len() != v.dims.iter().product::<usize>() => {
            Err(format!("{} voxels for {:?}", v.voxels.len(), v.dims))
        }
        Ok(_) => Ok(()),
        Err(e) => names(path, &e.to_string()),
    }
}

/// An error must name its file.
pub fn names(path: &Path, message: &str) -> Result<(), String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if message.contains(name.as_ref()) {
        Ok(())
    } else {
        Err(format!("the error does not name {name}: {message}"))
    }
}
