//! Study input: DICOM series discovery, slice sorting, geometry, pixel decoding (HU), NIfTI
//! volumes, and windowing.
//!
//! Voxels are `f32` in `[z][y][x]` order (x = column, y = row, z = slice); `patient_from_voxel`
//! maps `(x, y, z, 1)` to DICOM patient coordinates (LPS, mm).

pub mod dicom;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod geometry;
pub mod modality;
pub mod nifti;
pub mod reformat;
pub mod window;

use std::path::{Path, PathBuf};

pub use dicom::{
    Discovery, FileProblem, SeriesInfo, discover, discover_cancellable, load_file, load_series,
    load_series_with,
};
pub use geometry::Mat4;
pub use modality::Modality;
pub use nifti::{load_nifti, load_nifti_labels};
pub use window::{PRESETS, Window, WindowPreset, preset, window_to_u8};

/// A failure to read or assemble a study; every message names the file (or folder) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The file could not be opened or parsed.
    #[error("{}: cannot read: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is readable but uses something Lumen cannot decode.
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The slices do not form a volume.
    #[error("{}: not a volume: {reason}", path.display())]
    NotAVolume {
        /// The series folder (or first file).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A required attribute is missing or malformed.
    #[error("{}: invalid: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The user cancelled the load.
    #[error("{}: loading cancelled", path.display())]
    Cancelled {
        /// The series folder.
        path: PathBuf,
    },
}

/// Progress and cancel of a study load, shared between the loader and the UI.
#[derive(Debug, Default)]
pub struct LoadControl {
    /// Discovery: files the folder walk has found, and how many of their headers were read.
    pub found: std::sync::atomic::AtomicUsize,
    pub read: std::sync::atomic::AtomicUsize,
    /// Images decoded so far, of `total` (0 until the series is known).
    pub decoded: std::sync::atomic::AtomicUsize,
    pub total: std::sync::atomic::AtomicUsize,
    /// Set to stop at the next image.
    pub cancel: std::sync::atomic::AtomicBool,
}

impl StudyError {
    /// Why, without the file's name (for a caller whose own error names the file).
    pub fn reason(&self) -> &str {
        match self {
            Self::Read { reason, .. }
            | Self::Unsupported { reason, .. }
            | Self::NotAVolume { reason, .. }
            | Self::Invalid { reason, .. } => reason,
            Self::Cancelled { .. } => "loading cancelled",
        }
    }
    pub(crate) fn read(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn unsupported(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Unsupported {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn not_a_volume(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::NotAVolume {
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

/// Result alias for study I/O.
pub type Result<T, E = StudyError> = std::result::Result<T, E>;

/// Where one slice of a volume came from (needed to reference it from DICOM SEG).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SliceSource {
    /// The file.
    pub path: PathBuf,
    /// Frame number (0-based) inside a multi-frame file.
    pub frame: Option<u32>,
    /// SOP Instance UID of the source image.
    pub sop_instance_uid: String,
    /// SOP Class UID of the source image.
    pub sop_class_uid: String,
    /// Image Position (Patient) of this slice, LPS mm (the true position, even where spacing is uneven).
    pub position: [f64; 3],
}

/// Patient / study attributes copied into derived objects (DICOM SEG).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudyMeta {
    /// (0010,0010)
    pub patient_name: String,
    /// (0010,0020)
    pub patient_id: String,
    /// (0010,0030)
    pub patient_birth_date: String,
    /// (0010,0040)
    pub patient_sex: String,
    /// (0020,000D)
    pub study_instance_uid: String,
    /// (0008,0020)
    pub study_date: String,
    /// (0008,0030)
    pub study_time: String,
    /// (0020,0010)
    pub study_id: String,
    /// (0008,0050)
    pub accession_number: String,
    /// (0008,0090)
    pub referring_physician_name: String,
    /// (0008,1030)
    pub study_description: String,
    /// (0020,000E) of the source series
    pub series_instance_uid: String,
    /// (0020,0052)
    pub frame_of_reference_uid: String,
}

/// A loaded image volume.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    /// `[nx, ny, nz]` (columns, rows, slices).
    pub dims: [usize; 3],
    /// Voxel values in `[z][y][x]` order: modality values (HU for CT).
    pub voxels: Vec<f32>,
    /// Voxel spacing `[x, y, z]` in mm.
    pub spacing: [f64; 3],
    /// Voxel index → patient (LPS, mm).
    pub patient_from_voxel: Mat4,
    /// Modality: from the DICOM, inferred from the values for NIfTI.
    pub modality: Modality,
    /// Series description (or the file name for NIfTI).
    pub series_description: String,
    /// Visible warnings: uneven spacing, gantry tilt, missing slices, …
    pub warnings: Vec<String>,
    /// The DICOM's own window, when present.
    pub window: Option<Window>,
    /// MONOCHROME1: the lowest value is meant to be shown white. The voxels keep their stored
    /// (modality) values, which are physical; only the 8-bit images made from them are flipped.
    pub inverted: bool,
    /// Per-slice sources (empty for NIfTI).
    pub slices: Vec<SliceSource>,
    /// Patient / study attributes (default for NIfTI).
    pub study: StudyMeta,
}

impl Volume {
    /// Number of voxels in one slice.
    pub fn slice_len(&self) -> usize {
        self.dims[0] * self.dims[1]
    }

    /// The voxels of slice `z` (row-major, `[y][x]`), if it exists.
    pub fn slice(&self, z: usize) -> Option<&[f32]> {
        let n = self.slice_len();
        self.voxels.get(z * n..(z + 1) * n)
    }

    /// Value at `(x, y, z)`.
    pub fn get(&self, x: usize, y: usize, z: usize) -> Option<f32> {
        if x >= self.dims[0] || y >= self.dims[1] || z >= self.dims[2] {
            return None;
        }
        self.voxels
            .get((z * self.dims[1] + y) * self.dims[0] + x)
            .copied()
    }

    /// `values` (taken from this volume) through `window` as 8-bit grey, white where the image is
    /// meant to be white.
    pub fn to_grey(&self, values: &[f32], window: Window) -> Vec<u8> {
        let mut grey = window_to_u8(values, window);
        self.apply_polarity(grey.iter_mut());
        grey
    }

    /// Turns 8-bit grey made from stored values into brightness: the one place where the
    /// photometric interpretation is honoured, so the display and the model cannot disagree.
    pub fn apply_polarity<'a>(&self, grey: impl Iterator<Item = &'a mut u8>) {
        if self.inverted {
            grey.for_each(|g| *g = 255 - *g);
        }
    }

    /// Minimum and maximum finite values.
    pub fn value_range(&self) -> (f32, f32) {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &v in &self.voxels {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }

    /// The window to show first: the DICOM's own, else a modality default, else the value range.
    pub fn default_window(&self) -> Window {
        if let Some(w) = self.window {
            return w;
        }
        if self.modality == Modality::Ct {
            return Window::new(40.0, 400.0);
        }
        let (lo, hi) = self.value_range();
        if lo.is_finite() && hi > lo {
            Window::new(f64::from(lo + hi) / 2.0, f64::from(hi - lo))
        } else {
            Window::new(0.0, 1.0)
        }
    }
}

/// A label map on a volume's grid: one label per voxel (`0` = background), `[z][y][x]` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelVolume {
    /// `[nx, ny, nz]`.
    pub dims: [usize; 3],
    /// Labels, `[z][y][x]`.
    pub labels: Vec<u16>,
    /// Voxel index → patient (LPS, mm).
    pub patient_from_voxel: Mat4,
}

impl LabelVolume {
    /// An empty label map on the grid of `volume`.
    pub fn empty_like(volume: &Volume) -> Self {
        Self {
            dims: volume.dims,
            labels: vec![0; volume.voxels.len()],
            patient_from_voxel: volume.patient_from_voxel,
        }
    }

    /// Label at `(x, y, z)`.
    pub fn get(&self, x: usize, y: usize, z: usize) -> Option<u16> {
        if x >= self.dims[0] || y >= self.dims[1] || z >= self.dims[2] {
            return None;
        }
        self.labels
            .get((z * self.dims[1] + y) * self.dims[0] + x)
            .copied()
    }

    /// Distinct non-zero labels present, ascending.
    pub fn present_labels(&self) -> Vec<u16> {
        let mut seen = vec![false; usize::from(u16::MAX) + 1];
        for &l in &self.labels {
            seen[usize::from(l)] = true;
        }
        (1..seen.len())
            .filter(|&i| seen[i])
            .map(|i| i as u16)
            .collect()
    }
}
