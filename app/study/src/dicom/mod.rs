//! DICOM input: series discovery (recursive, DICOMDIR-aware), grouping and splitting, slice
//! sorting along the normal, geometry checks, and parallel pixel decoding to modality values.

pub mod attrs;
mod decode;
mod discovery;
mod fixture;
mod guards;
mod headers;
mod plan;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use crate::{Modality, Result, StudyError, StudyMeta, Volume, Window};
use attrs::{get_str, study_meta};
use decode::assemble;
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
pub use discovery::{discover, discover_cancellable};
pub use fixture::write_slice_copy;
use guards::{
    check_declared_lengths, check_deflated, check_pixel_data, check_plausible_size, guarded,
};
use headers::{frame_headers, read_header_summary};
use std::path::{Path, PathBuf};

/// Distance below which two slice positions count as the same (mm).
const POSITION_TOLERANCE_MM: f64 = 0.01;
/// Orientation cosines closer than this are the same orientation.
const ORIENTATION_TOLERANCE: f64 = 1e-3;

/// A file that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FileProblem {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Header of one image frame (one slice) as read during discovery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameHeader {
    /// The file.
    pub path: PathBuf,
    /// Frame index inside a multi-frame file.
    pub frame: Option<u32>,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Image Position (Patient).
    pub position: Option<[f64; 3]>,
    /// Image Orientation (Patient): row cosines then column cosines.
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing: `[between rows, between columns]`.
    pub pixel_spacing: Option<[f64; 2]>,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub columns: u16,
    /// Instance Number.
    pub instance_number: Option<i64>,
    /// Rescale slope.
    pub slope: f64,
    /// Rescale intercept.
    pub intercept: f64,
    /// Whether the file (or its functional groups) gave a Rescale Intercept.
    pub intercept_given: bool,
    /// First window centre/width.
    pub window: Option<Window>,
    /// Echo Numbers.
    pub echo: String,
    /// Temporal position (identifier or index).
    pub temporal: String,
    /// Stack ID (enhanced objects).
    pub stack: String,
    /// Slice Thickness.
    pub slice_thickness: Option<f64>,
    /// Spacing Between Slices.
    pub spacing_between_slices: Option<f64>,
    /// Gantry/Detector Tilt (degrees) when recorded.
    pub gantry_tilt: Option<f64>,
    /// Transfer syntax UID.
    pub transfer_syntax: String,
}

/// One series as listed in the browser.
#[derive(Debug, Clone, Default)]
pub struct SeriesInfo {
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Series Description (with a part suffix where a series was split).
    pub description: String,
    /// Modality.
    pub modality: Modality,
    /// Series Number.
    pub series_number: Option<i64>,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub columns: u16,
    /// Number of images (frames).
    pub slice_count: usize,
    /// Warnings known before loading (split series, tilt, uneven spacing, not a volume …).
    pub warnings: Vec<String>,
    /// Patient / study attributes.
    pub study: StudyMeta,
    /// The frames (unsorted; `load_series` sorts them along the slice normal).
    pub frames: Vec<FrameHeader>,
    /// The folder holding the first file.
    pub folder: PathBuf,
}

/// The result of scanning a folder.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The series found, ordered by study, series number and description.
    pub series: Vec<SeriesInfo>,
    /// Files that were skipped, each with its reason.
    pub problems: Vec<FileProblem>,
}

/// Load a discovered series: sort along the slice normal, decode in parallel, apply rescale.
pub fn load_series(series: &SeriesInfo) -> Result<Volume> {
    load_series_with(series, &super::LoadControl::default())
}

/// `load_series` that counts decoded images into `control` and stops when it is cancelled.
pub fn load_series_with(series: &SeriesInfo, control: &super::LoadControl) -> Result<Volume> {
    let split_warnings: Vec<String> = series
        .warnings
        .iter()
        .filter(|w| w.contains("was split"))
        .cloned()
        .collect();
    assemble(
        &series.frames,
        series.study.clone(),
        series.description.clone(),
        series.modality.clone(),
        &series.folder,
        split_warnings,
        None,
        control,
    )
}

/// Load a single DICOM file (all its frames) as a volume.
pub fn load_file(path: impl AsRef<Path>) -> Result<Volume> {
    let path = path.as_ref();
    let (frames, meta, description, modality, _) = read_header_summary(path)?;
    assemble(
        &frames,
        meta,
        description,
        modality,
        path,
        Vec::new(),
        None,
        &super::LoadControl::default(),
    )
}

/// Open a whole DICOM file of any kind (a SEG as well as an image) behind the guards a study's
/// slices pass: declared lengths, sequence nesting and the inflated size are checked before the
/// parser allocates, and a parser panic becomes an error naming the file.
pub fn open_guarded(path: &Path) -> Result<dicom_object::DefaultDicomObject> {
    guards::open_full(path)
}

/// Load a single DICOM file held in memory (with or without the 128-byte preamble); `name` is
/// used in messages. This is the entry point the fuzz target exercises.
pub fn load_bytes(name: &Path, bytes: &[u8]) -> Result<Volume> {
    if let Some(at) = check_declared_lengths(name, bytes, bytes.len() as u64)? {
        check_deflated(name, bytes.get(at..).unwrap_or_default())?;
    }
    let file = guarded(name, || {
        OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Auto)
            .from_reader(bytes)
            .map_err(|e| StudyError::read(name, format!("not a readable DICOM file ({e})")))
    })?;
    check_pixel_data(name, &file, bytes.len() as u64)?;
    let frames = frame_headers(name, &file)?;
    check_plausible_size(name, &frames, bytes.len() as u64)?;
    let obj: &InMemDicomObject = &file;
    let meta = study_meta(obj);
    let description = get_str(obj, tags::SERIES_DESCRIPTION).unwrap_or_default();
    let modality = Modality::from_dicom(&get_str(obj, tags::MODALITY).unwrap_or_default());
    assemble(
        &frames,
        meta,
        description,
        modality,
        name,
        Vec::new(),
        Some(file),
        &super::LoadControl::default(),
    )
}
