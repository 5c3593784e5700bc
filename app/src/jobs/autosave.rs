//! Where a series' annotation is autosaved, and how it finds its way back to that series alone.
//!
//! An autosave is named after the identity of what was annotated: the patient, the study and
//! series UIDs, the grid and its place in patient space, and, where a UID is missing (anonymized
//! exports, NIfTI, the bundled sample), a hash of the voxels themselves. Two series share an
//! autosave only if all of that matches, so a UID-less series never receives another patient's
//! annotation.

use lumen_study::Volume;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where autosaves live by default: the user's local data dir.
pub fn autosave_folder() -> Option<PathBuf> {
    crate::paths::user_dirs().map(|d| d.data_local_dir().join("autosave"))
}

/// Who and what a loaded series is, for its autosave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesIdentity {
    /// The hash naming the autosave file.
    key: String,
    /// The patient and series in words, for the notes shown to the user.
    pub described: String,
}

impl SeriesIdentity {
    /// The identity of `volume`. Hashes the voxels when a UID is missing (about a second per
    /// 100 M voxels), so it is made on the loader's thread, once per opened series.
    pub fn of(volume: &Volume) -> Self {
        let meta = &volume.study;
        let mut digest = Sha256::new();
        let mut field = |value: &[u8]| {
            digest.update((value.len() as u64).to_le_bytes());
            digest.update(value);
        };
        field(b"lumen autosave identity 1");
        // as the DICOM says it: a NIfTI's modality, inferred since, was hashed as unknown ("")
        let modality = if volume.slices.is_empty() {
            ""
        } else {
            volume.modality.code()
        };
        for text in [
            meta.patient_name.as_str(),
            &meta.patient_id,
            &meta.patient_birth_date,
            &meta.study_instance_uid,
            &meta.series_instance_uid,
            &meta.frame_of_reference_uid,
            modality,
            &volume.series_description,
        ] {
            field(text.as_bytes());
        }
        for n in volume.dims {
            field(&(n as u64).to_le_bytes());
        }
        for value in volume.patient_from_voxel.iter().flatten() {
            field(&value.to_le_bytes());
        }
        let uids_missing =
            meta.study_instance_uid.trim().is_empty() || meta.series_instance_uid.trim().is_empty();
        if uids_missing {
            field(&(volume.voxels.len() as u64).to_le_bytes());
            // in pieces: a copy of a large volume's bytes would double its memory
            let mut piece = Vec::with_capacity(4 * 65536);
            for values in volume.voxels.chunks(65536) {
                piece.clear();
                piece.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                digest.update(&piece);
            }
        }
        let key = hex::encode(&digest.finalize()[..16]);
        Self {
            key,
            described: describe(volume),
        }
    }

    /// The autosave file of this series in `folder`.
    pub fn autosave_path(&self, folder: &Path) -> PathBuf {
        folder.join(format!("{}.nii.gz", self.key))
    }
}

/// "patient NAME (ID), series DESCRIPTION", leaving out what the series does not say.
fn describe(volume: &Volume) -> String {
    let meta = &volume.study;
    let name = meta.patient_name.replace('^', " ");
    let patient = match (name.trim(), meta.patient_id.trim()) {
        ("", "") => "an unnamed patient".to_string(),
        (name, "") => format!("patient {name}"),
        ("", id) => format!("patient ID {id}"),
        (name, id) => format!("patient {name} (ID {id})"),
    };
    let series = match volume.series_description.trim() {
        "" => "an undescribed series".to_string(),
        description => format!("series \"{description}\""),
    };
    format!("{patient}, {series}")
}

/// Moves an autosave that could not be restored (and its sidecar) aside, so the next autosave
/// of the series does not replace what the user may still want. Returns the new name.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().trim_end_matches(".nii.gz").to_string())
        .unwrap_or_default();
    let aside = path.with_file_name(format!("{name}.unrestored-{stamp}.nii.gz"));
    std::fs::rename(path, &aside)?;
    let sidecar = lumen_annotation::export::sidecar_path(path);
    if sidecar.exists() {
        std::fs::rename(&sidecar, lumen_annotation::export::sidecar_path(&aside))?;
    }
    Ok(aside)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> Volume {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/totalsegmentator-ct");
        lumen_study::load_series(&lumen_study::discover(&dir).unwrap().series[0]).unwrap()
    }

    #[test]
    fn two_uid_less_series_on_one_grid_never_share_an_autosave() {
        let first = sample();
        assert!(
            first.study.series_instance_uid.is_empty(),
            "the bundled sample has no Series Instance UID"
        );
        // Another patient's images on the very same grid, also without UIDs.
        let mut second = first.clone();
        let plane = second.slice_len();
        second.voxels = second
            .voxels
            .chunks(plane)
            .rev()
            .flatten()
            .copied()
            .collect();
        let folder = Path::new("/autosaves");
        let first_id = SeriesIdentity::of(&first);
        assert_eq!(first_id, SeriesIdentity::of(&first.clone()), "stable");
        assert_ne!(
            first_id.autosave_path(folder),
            SeriesIdentity::of(&second).autosave_path(folder)
        );
        // Same pixels, another patient: apart as well.
        let mut renamed = first.clone();
        renamed.study.patient_id = "OTHER-42".into();
        assert_ne!(first_id, SeriesIdentity::of(&renamed));
        assert!(SeriesIdentity::of(&renamed).described.contains("OTHER-42"));
    }

    #[test]
    fn an_unrestorable_autosave_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.nii.gz");
        std::fs::write(&path, b"not a nifti").unwrap();
        std::fs::write(lumen_annotation::export::sidecar_path(&path), b"{}").unwrap();
        let aside = set_aside(&path).unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read(&aside).unwrap(), b"not a nifti");
        assert!(lumen_annotation::export::sidecar_path(&aside).exists());
    }
}
