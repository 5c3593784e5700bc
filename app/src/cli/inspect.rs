//! `lumen inspect PATH`: opens a study as the viewer would and says what it found, without a
//! window: the volume's size, spacing, modality and value range, and every note the viewer would
//! show; or the error, naming the file and the reason. For support ("why does this CD not
//! open?") and for the crafted-input tests, which run it on each damaged study.

use crate::jobs::study_loader;
use lumen_study::Volume;
use std::path::Path;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let (volume, notes) = open(path).map_err(anyhow::Error::msg)?;
    let [nx, ny, nz] = volume.dims;
    let [sx, sy, sz] = volume.spacing;
    let (low, high) = value_range(&volume);
    outln!(
        "volume   {nx}×{ny}×{nz} {}, spacing {sx:.3}×{sy:.3}×{sz:.3} mm, values {low}…{high}",
        volume.modality
    )?;
    outln!("series   {}", volume.series_description)?;
    for note in &notes {
        outln!("note     {note}")?;
    }
    Ok(())
}

/// A folder as the viewer opens it (discovery, the largest series, its warnings and the files
/// left out); a NIfTI file as `lumen eval` reads volumes; any other file as one DICOM.
fn open(path: &Path) -> Result<(Volume, Vec<String>), String> {
    if path.is_dir() {
        let study = study_loader::load_now(path)?;
        return Ok((study.volume, study.notes));
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    let volume = if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        lumen_study::load_nifti(path)
    } else {
        lumen_study::load_file(path)
    }
    .map_err(|e| e.to_string())?;
    let notes = volume.warnings.clone();
    Ok((volume, notes))
}

/// The lowest and highest voxel values (NaN and infinities are reported as they are).
fn value_range(volume: &Volume) -> (f32, f32) {
    let mut range = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in &volume.voxels {
        if v.is_nan() {
            return (f32::NAN, f32::NAN);
        }
        range = (range.0.min(v), range.1.max(v));
    }
    range
}
