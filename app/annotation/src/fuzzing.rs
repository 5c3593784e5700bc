//! Entry points of the fuzz targets (`app/annotation/fuzz/`) and of their regression replay
//! (`tests/tests/fuzz_regressions.rs`): arbitrary bytes read back as an annotation of `volume`,
//! the study it would belong to. Built only with the `fuzzing` feature.

use crate::export::{self, Segment};
use lumen_study::fuzzing::{names, scratch, shared_data};
use lumen_study::{LabelVolume, Volume};
use std::sync::LazyLock;

/// The study the annotations belong to: pydicom's small CT slice (128×128).
pub static SMALL_CT: LazyLock<Volume> = LazyLock::new(|| {
    lumen_study::load_file(shared_data("pydicom_testfiles/CT_small.dcm"))
        .unwrap_or_else(|e| panic!("{e}"))
});

/// The bytes as a DICOM SEG of `volume`, read back as the app's import does.
pub fn seg_file(data: &[u8], volume: &Volume) -> Result<(), String> {
    read_back(data, "fuzz-seg.dcm", volume, export::read_seg)
}

/// The bytes as a NIfTI label map of `volume` (an autosave or an exported annotation).
pub fn labels_nifti(data: &[u8], volume: &Volume) -> Result<(), String> {
    let name = if data.starts_with(&[0x1f, 0x8b]) {
        "fuzz-labels.nii.gz"
    } else {
        "fuzz-labels.nii"
    };
    read_back(data, name, volume, export::reimport_nifti)
}

/// Whatever reads it back must give labels on the volume's own grid, each a segment's, or an
/// error naming the file.
fn read_back(
    data: &[u8],
    name: &str,
    volume: &Volume,
    read: impl Fn(&std::path::Path, &Volume) -> export::Result<(LabelVolume, Vec<Segment>)>,
) -> Result<(), String> {
    let dir = scratch();
    let path = dir.path().join(name);
    std::fs::write(&path, data).map_err(|e| e.to_string())?;
    let (labels, segments) = match read(&path, volume) {
        Ok(read) => read,
        Err(e) => return names(&path, &e.to_string()),
    };
    if labels.dims != volume.dims || labels.labels.len() != volume.voxels.len() {
        return Err(format!(
            "labels {:?} on a volume {:?}",
            labels.dims, volume.dims
        ));
    }
    match labels
        .labels
        .iter()
        .find(|l| **l != 0 && !segments.iter().any(|s| s.label == **l))
    {
        Some(stray) => Err(format!("label {stray} belongs to no segment")),
        None => Ok(()),
    }
}
