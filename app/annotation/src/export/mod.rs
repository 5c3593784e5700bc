//! Export of segmentations: DICOM SEG (for PACS), NIfTI label map + JSON sidecar (for research),
//! PNG masks and overlays, the segment statistics as CSV; and re-import of SEG / NIfTI onto a study.
//!
//! Every file is written atomically: a temporary file in the destination folder, then a rename.

pub mod csv;
pub mod nifti;
pub mod png;
pub mod seg;

use crate::organs;
use std::path::{Path, PathBuf};

pub use crate::organs::organ_codes;
pub use csv::write_statistics_csv;
pub use nifti::{read_sidecar, reimport_nifti, sidecar_path, write_nifti_labels};
pub use png::{write_png_masks, write_png_overlays};
pub use seg::{SegOptions, SegSummary, read_seg, write_seg};

/// A failure to write or re-import; every message names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("{}: cannot write: {reason}", path.display())]
    Write {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading (re-import) failed.
    #[error("{}: cannot read: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The input does not fit the study (grid, geometry, references).
    #[error("{}: does not match the study: {reason}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Nothing to write or invalid arguments.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<lumen_engine::fsio::WriteError> for ExportError {
    fn from(e: lumen_engine::fsio::WriteError) -> Self {
        Self::Write {
            reason: e.reason(),
            path: e.path,
        }
    }
}

impl ExportError {
    pub(crate) fn write(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn read(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn mismatch(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Mismatch {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn invalid(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Result alias for export.
pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// A coded concept (code value, coding scheme designator, code meaning).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Code {
    /// Code Value.
    pub value: String,
    /// Coding Scheme Designator (`SCT`, `DCM`, …).
    pub scheme: String,
    /// Code Meaning.
    pub meaning: String,
}

impl Code {
    /// A SNOMED-CT code.
    pub fn sct(value: &str, meaning: &str) -> Self {
        Self {
            value: value.into(),
            scheme: "SCT".into(),
            meaning: meaning.into(),
        }
    }
}

/// How a segment was made (DICOM Segment Algorithm Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AlgorithmType {
    /// Drawn by hand.
    Manual,
    /// Prompted model output, reviewed by a person (Lumen's normal case).
    Semiautomatic,
    /// Fully automatic.
    Automatic,
}

impl AlgorithmType {
    /// The DICOM code string.
    pub fn as_dicom(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::Semiautomatic => "SEMIAUTOMATIC",
            Self::Automatic => "AUTOMATIC",
        }
    }

    /// Parse the DICOM code string.
    pub fn from_dicom(s: &str) -> Self {
        match s.trim() {
            "MANUAL" => Self::Manual,
            "AUTOMATIC" => Self::Automatic,
            _ => Self::Semiautomatic,
        }
    }
}

/// Metadata of one segment (one label value).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Label value in the label map (1..).
    pub label: u16,
    /// Name shown to the user (Segment Label).
    pub name: String,
    /// Display colour (sRGB).
    pub color: [u8; 3],
    /// Segmented Property Category.
    pub category: Code,
    /// Segmented Property Type.
    pub property_type: Code,
    /// Laterality or other type modifier (e.g. SCT 24028007 Right).
    pub type_modifier: Option<Code>,
    /// How it was made.
    pub algorithm_type: AlgorithmType,
}

impl Segment {
    /// A segment for `name`, with SNOMED codes and colour when Lumen knows the organ, else a
    /// generic "Anatomical Structure / Organ" coding and a palette colour.
    pub fn new(label: u16, name: &str) -> Self {
        let color = organs::colour(name, label);
        let (category, property_type, type_modifier) = organ_codes(name).unwrap_or_else(|| {
            (
                organs::anatomical_structure(),
                Code::sct("91772007", "Organ"),
                None,
            )
        });
        Self {
            label,
            name: name.to_string(),
            color,
            category,
            property_type,
            type_modifier,
            algorithm_type: AlgorithmType::Semiautomatic,
        }
    }
}

/// A new DICOM UID under the UUID-derived root `2.25`.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// Writes a file all or nothing through the engine's one write path (`lumen_engine::fsio`):
/// `write` fills a temporary file that is flushed, fsynced and renamed over `path`.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    lumen_engine::fsio::write_file(path, write).map_err(ExportError::from)
}

/// An error with its causes, so a library's "could not write the data set" keeps the OS reason.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}

/// As `write_atomic`, for writers that open the file by path themselves (see `fsio::write_file_at`).
pub fn with_temp_path(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    lumen_engine::fsio::write_file_at(path, write).map_err(ExportError::from)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn organ_codes_cover_named_organs() {
        let (cat, ty, m) = organ_codes("Liver").unwrap();
        assert_eq!(cat.value, "91723000");
        assert_eq!(ty.value, "10200004");
        assert!(m.is_none());
        let (_, ty, m) = organ_codes("kidney_left").unwrap();
        assert_eq!(ty.value, "64033007");
        assert_eq!(m.unwrap().value, "7771000");
        assert_eq!(organ_codes("oesophagus").unwrap().1.value, "32849002");
        assert_eq!(organ_codes("IVC").unwrap().1.value, "64131007");
        assert_eq!(organ_codes("vertebrae_L3").unwrap().1.value, "51282000");
        assert_eq!(
            organ_codes("right adrenal").unwrap().2.unwrap().value,
            "24028007"
        );
        assert!(organ_codes("tumour blob").is_none());
        let s = Segment::new(3, "tumour blob");
        assert_eq!(s.property_type.value, "91772007");
        assert_eq!(s.color, crate::organs::PALETTE[2]);
    }

    #[test]
    fn atomic_write_replaces_or_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, |w| w.write_all(b"one")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let e = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("a.txt") && e.to_string().contains("boom"),
            "{e}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        assert!(new_uid().starts_with("2.25.") && new_uid().len() <= 64);
    }
}
