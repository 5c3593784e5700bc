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
    let (low, high) = volume.value_range();
    let non_finite = volume.voxels.iter().filter(|v| !v.is_finite()).count();
    let non_finite = match non_finite {
        0 => String::new(),
        n => format!(" ({n} voxels not finite)"),
    };
    outln!(
        "volume   {nx}×{ny}×{nz} {}, spacing {sx:.3}×{sy:.3}×{sz:.3} mm, values {low}…{high}{non_finite}",
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
