//! DICOM input: series discovery (recursive, DICOMDIR-aware), grouping and splitting, slice
//! sorting along the normal, geometry checks, and parallel pixel decoding to modality values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
};
use rayon::prelude::*;

use crate::geometry::{self, Mat4};
use crate::{Modality, Result, SliceSource, StudyError, StudyMeta, Volume, Window};

const PER_FRAME_FG: Tag = Tag(0x5200, 0x9230);
const SHARED_FG: Tag = Tag(0x5200, 0x9229);
const PLANE_POSITION_SEQ: Tag = Tag(0x0020, 0x9113);
const PLANE_ORIENTATION_SEQ: Tag = Tag(0x0020, 0x9116);
const PIXEL_MEASURES_SEQ: Tag = Tag(0x0028, 0x9110);
const PIXEL_VALUE_TRANSFORM_SEQ: Tag = Tag(0x0028, 0x9145);
const FRAME_VOI_LUT_SEQ: Tag = Tag(0x0028, 0x9132);
const FRAME_CONTENT_SEQ: Tag = Tag(0x0020, 0x9111);
const TEMPORAL_POSITION_INDEX: Tag = Tag(0x0020, 0x9128);
const STACK_ID: Tag = Tag(0x0020, 0x9056);
const GANTRY_TILT: Tag = Tag(0x0018, 0x1120);
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

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

// ---------------------------------------------------------------------------------------------
// attribute helpers

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| !v.is_empty() && v.iter().all(|x| x.is_finite()))
}

fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    get_f64s(obj, tag).and_then(|v| v.first().copied())
}

fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
}

fn arr3(v: &[f64]) -> Option<[f64; 3]> {
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

fn arr6(v: &[f64]) -> Option<[f64; 6]> {
    (v.len() >= 6).then(|| [v[0], v[1], v[2], v[3], v[4], v[5]])
}

fn arr2(v: &[f64]) -> Option<[f64; 2]> {
    (v.len() >= 2).then(|| [v[0], v[1]])
}

/// Look an attribute up in a functional group: per-frame item first, then shared, then top level.
fn group_attr<'a>(
    per_frame: Option<&'a InMemDicomObject>,
    shared: Option<&'a InMemDicomObject>,
    seq: Tag,
) -> Option<&'a InMemDicomObject> {
    per_frame
        .and_then(|f| first_item(f, seq))
        .or_else(|| shared.and_then(|s| first_item(s, seq)))
}

fn study_meta(obj: &InMemDicomObject) -> StudyMeta {
    let s = |t| get_str(obj, t).unwrap_or_default();
    StudyMeta {
        patient_name: s(tags::PATIENT_NAME),
        patient_id: s(tags::PATIENT_ID),
        patient_birth_date: s(tags::PATIENT_BIRTH_DATE),
        patient_sex: s(tags::PATIENT_SEX),
        study_instance_uid: s(tags::STUDY_INSTANCE_UID),
        study_date: s(tags::STUDY_DATE),
        study_time: s(tags::STUDY_TIME),
        study_id: s(tags::STUDY_ID),
        accession_number: s(tags::ACCESSION_NUMBER),
        referring_physician_name: s(tags::REFERRING_PHYSICIAN_NAME),
        study_description: s(tags::STUDY_DESCRIPTION),
        series_instance_uid: s(tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: s(tags::FRAME_OF_REFERENCE_UID),
    }
}

// ---------------------------------------------------------------------------------------------
// reading headers

/// Walk the element headers at the start of a DICOM stream (`head`, a prefix of a file of
/// `total_len` bytes) and refuse lengths that run past the end of the file: the parser would
/// otherwise try to allocate them (up to 4 GiB) before noticing the damage. Anything this simple
/// walker does not understand is left to the parser (no false alarms on valid files). A deflated
/// data set cannot be walked here: its offset in the file is returned, for [`check_deflated`].
fn check_declared_lengths(name: &Path, head: &[u8], total_len: u64) -> Result<Option<usize>> {
    let pos: usize = if head.len() >= 132 && &head[128..132] == b"DICM" {
        132
    } else if head.starts_with(b"DICM") {
        4
    } else {
        return Ok(None);
    };
    walk_lengths(name, head, total_len, pos, true)
}

/// The walk of [`check_declared_lengths`] from `pos`, in the file meta group (`in_meta`) or in an
/// inflated data set (explicit VR little endian).
fn walk_lengths(
    name: &Path,
    head: &[u8],
    total_len: u64,
    mut pos: usize,
    mut in_meta: bool,
) -> Result<Option<usize>> {
    const LONG_VRS: [&[u8; 2]; 13] = [
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
    ];
    const SHORT_VRS: [&[u8; 2]; 21] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    ];
    let rd16 = |b: &[u8], be: bool| {
        if be {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }
    };
    let rd32 = |b: &[u8], be: bool| {
        if be {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    let mut ts = String::new();
    let (mut explicit, mut be) = (true, false);
    let mut in_pixel_items = false;
    // The open sequences and items, by where they end (None: at a delimiter). The parser
    // recurses once per level, so a file nested deeply enough overflows its thread's stack.
    let mut open: Vec<Option<usize>> = Vec::new();
    loop {
        while let Some(Some(end)) = open.last()
            && pos >= *end
        {
            open.pop();
        }
        if open.len() > 2 * MAX_SEQUENCE_DEPTH {
            return Err(StudyError::invalid(
                name,
                format!("sequences nested more than {MAX_SEQUENCE_DEPTH} deep"),
            ));
        }
        if pos + 8 > head.len() {
            return Ok(None);
        }
        let group_le = u16::from_le_bytes([head[pos], head[pos + 1]]);
        if in_meta && group_le != 0x0002 {
            in_meta = false;
            match ts.as_str() {
                "1.2.840.10008.1.2" => explicit = false,
                "1.2.840.10008.1.2.2" => be = true,
                DEFLATED => return Ok(Some(pos)),
                _ => {}
            }
        }
        let (group, elem) = (rd16(&head[pos..], be), rd16(&head[pos + 2..], be));
        let remaining = |after: usize| total_len.saturating_sub(after as u64);
        if group == 0xFFFE {
            let len = rd32(&head[pos + 4..], be);
            pos += 8;
            match elem {
                0xE000 if len != u32::MAX => {
                    if u64::from(len) > remaining(pos) {
                        return Err(StudyError::read(
                            name,
                            format!(
                                "damaged file: an item declares {len} bytes, only {} remain",
                                remaining(pos)
                            ),
                        ));
                    }
                    if in_pixel_items {
                        pos += len as usize; // a compressed fragment
                    } else {
                        open.push(Some(pos + len as usize));
                    }
                }
                0xE000 => open.push(None),
                0xE00D => {
                    open.pop();
                }
                0xE0DD if in_pixel_items => in_pixel_items = false,
                0xE0DD => {
                    open.pop();
                }
                _ => {}
            }
            continue;
        }
        let (len, header) = if explicit {
            let vr = [head[pos + 4], head[pos + 5]];
            // an unknown VR is read like UN (2 reserved bytes, 32-bit length), as the parser does
            if LONG_VRS.contains(&&vr) || !SHORT_VRS.contains(&&vr) {
                if pos + 12 > head.len() {
                    return Ok(None);
                }
                if &vr == b"UN" && rd32(&head[pos + 8..], be) == u32::MAX {
                    return Ok(None); // implicit-VR content inside: leave it to the parser
                }
                (rd32(&head[pos + 8..], be), 12)
            } else {
                (u32::from(rd16(&head[pos + 6..], be)), 8)
            }
        } else {
            (rd32(&head[pos + 4..], be), 8)
        };
        pos += header;
        let is_sq = explicit && &head[pos - header + 4..pos - header + 6] == b"SQ";
        if len == u32::MAX {
            if (group, elem) == (0x7FE0, 0x0010) {
                in_pixel_items = true;
            } else {
                open.push(None);
            }
            continue; // undefined length: walk into it
        }
        if u64::from(len) > remaining(pos) {
            return Err(StudyError::read(
                name,
                format!(
                    "damaged file: element ({group:04X},{elem:04X}) declares {len} bytes, only {} remain",
                    remaining(pos)
                ),
            ));
        }
        if is_sq {
            open.push(Some(pos + len as usize));
        }
        if in_meta && (group, elem) == (0x0002, 0x0010) && pos + len as usize <= head.len() {
            ts = String::from_utf8_lossy(&head[pos..pos + len as usize])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        if !is_sq {
            pos = pos.saturating_add(len as usize);
        }
    }
}

fn check_file_lengths(path: &Path) -> Result<()> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| StudyError::read(path, e))?;
    let total = file
        .metadata()
        .map(|m| m.len())
        .map_err(|e| StudyError::read(path, e))?;
    let mut head = Vec::new();
    (&mut file)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| StudyError::read(path, e))?;
    if let Some(at) = check_declared_lengths(path, &head, total)? {
        file.seek(std::io::SeekFrom::Start(at as u64))
            .map_err(|e| StudyError::read(path, e))?;
        check_deflated(path, file)?;
    }
    Ok(())
}

/// Largest |row · column| of an orientation still taken as orthogonal (about 0.06°).
const ORTHOGONAL_TOLERANCE: f64 = 1e-3;
/// The deepest nesting of sequences accepted (real files nest a few levels; the parser has
/// been seen to overflow its stack at 2000).
const MAX_SEQUENCE_DEPTH: usize = 128;
/// How much of a file the length walk reads.
const HEAD_BYTES: u64 = 64 << 10;
/// Deflated Explicit VR Little Endian.
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
/// The most a deflated data set may inflate to (a 2 GiB image and its header).
const MAX_INFLATED: u64 = (2 << 30) + (64 << 20);

/// The length walk of a deflated data set (`deflated`, the file from the data set on): inflated
/// once to learn its size, without keeping more than its head, since the parser inflates it
/// again and would believe the same lengths.
fn check_deflated(name: &Path, deflated: impl std::io::Read) -> Result<()> {
    use std::io::Read;
    let mut inflated = flate2::read::DeflateDecoder::new(deflated).take(MAX_INFLATED + 1);
    let mut head = Vec::new();
    (&mut inflated)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| StudyError::read(name, format!("damaged deflated data set ({e})")))?;
    let rest = std::io::copy(&mut inflated, &mut std::io::sink())
        .map_err(|e| StudyError::read(name, format!("damaged deflated data set ({e})")))?;
    let total = head.len() as u64 + rest;
    if total > MAX_INFLATED {
        return Err(StudyError::invalid(
            name,
            format!(
                "the deflated data set inflates to more than {} MiB",
                MAX_INFLATED >> 20
            ),
        ));
    }
    walk_lengths(name, &head, total, 0, false).map(|_| ())
}

/// Run a third-party parser/decoder, turning a panic on damaged input into an error for `path`.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StudyError::read(
            path,
            "damaged file: the DICOM parser failed",
        ))
    })
}

fn open_header(path: &Path) -> Result<DefaultDicomObject> {
    check_file_lengths(path)?;
    guarded(path, || {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| StudyError::read(path, format!("not a readable DICOM file ({e})")))
    })
}

fn open_full(path: &Path) -> Result<DefaultDicomObject> {
    check_file_lengths(path)?;
    guarded(path, || {
        OpenFileOptions::new()
            .open_file(path)
            .map_err(|e| StudyError::read(path, format!("not a readable DICOM file ({e})")))
    })
}

/// [`open_full`] for decoding: the pixel data is checked against the header first.
fn open_image(path: &Path) -> Result<DefaultDicomObject> {
    let file = open_full(path)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    check_pixel_data(path, &file, len)?;
    Ok(file)
}

/// Frame headers of one opened file: one per frame (enhanced multi-frame objects carry per-frame
/// geometry in their functional groups).
fn frame_headers(path: &Path, file: &DefaultDicomObject) -> Result<Vec<FrameHeader>> {
    let ts = file
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let obj: &InMemDicomObject = file;
    let rows = get_int(obj, tags::ROWS).unwrap_or(0);
    let columns = get_int(obj, tags::COLUMNS).unwrap_or(0);
    if rows <= 0 || columns <= 0 || rows > i64::from(u16::MAX) || columns > i64::from(u16::MAX) {
        return Err(StudyError::invalid(
            path,
            "no image: Rows/Columns missing or invalid",
        ));
    }
    let frames = get_int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    if frames > 100_000 {
        return Err(StudyError::invalid(
            path,
            format!("implausible Number of Frames {frames}"),
        ));
    }
    // an unreadable rescale would silently become the default (slope 1, intercept 0)
    for (tag, attribute) in [
        (tags::RESCALE_SLOPE, "Rescale Slope (0028,1053)"),
        (tags::RESCALE_INTERCEPT, "Rescale Intercept (0028,1052)"),
    ] {
        if let Some(text) = get_str(obj, tag)
            && get_f64(obj, tag).is_none()
        {
            return Err(StudyError::invalid(
                path,
                format!("{attribute} {text:?} is unusable"),
            ));
        }
    }
    let base = FrameHeader {
        path: path.to_path_buf(),
        frame: None,
        // anonymisers sometimes blank these; the file meta keeps a copy
        sop_instance_uid: get_str(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| {
            file.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0')
                .to_string()
        }),
        sop_class_uid: get_str(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| {
            file.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string()
        }),
        series_instance_uid: get_str(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        position: get_f64s(obj, tags::IMAGE_POSITION_PATIENT).and_then(|v| arr3(&v)),
        orientation: get_f64s(obj, tags::IMAGE_ORIENTATION_PATIENT).and_then(|v| arr6(&v)),
        pixel_spacing: get_f64s(obj, tags::PIXEL_SPACING).and_then(|v| arr2(&v)),
        rows: rows as u16,
        columns: columns as u16,
        instance_number: get_int(obj, tags::INSTANCE_NUMBER),
        slope: get_f64(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: get_f64(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        window: window_of(obj),
        echo: get_str(obj, tags::ECHO_NUMBERS).unwrap_or_default(),
        temporal: get_str(obj, tags::TEMPORAL_POSITION_IDENTIFIER).unwrap_or_default(),
        stack: String::new(),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS),
        spacing_between_slices: get_f64(obj, tags::SPACING_BETWEEN_SLICES),
        gantry_tilt: get_f64(obj, GANTRY_TILT),
        transfer_syntax: ts,
    };
    if frames == 1 && obj.get(PER_FRAME_FG).is_none() {
        check_values(path, &base)?;
        return Ok(vec![base]);
    }
    let shared = first_item(obj, SHARED_FG);
    let per_frame: Option<&[InMemDicomObject]> = obj.get(PER_FRAME_FG).and_then(|e| e.items());
    let mut out = Vec::with_capacity(frames as usize);
    for f in 0..frames as usize {
        let pf = per_frame.and_then(|items| items.get(f));
        let mut h = base.clone();
        h.frame = Some(f as u32);
        if let Some(pos) = group_attr(pf, shared, PLANE_POSITION_SEQ)
            .and_then(|i| get_f64s(i, tags::IMAGE_POSITION_PATIENT))
            .and_then(|v| arr3(&v))
        {
            h.position = Some(pos);
        }
        if let Some(o) = group_attr(pf, shared, PLANE_ORIENTATION_SEQ)
            .and_then(|i| get_f64s(i, tags::IMAGE_ORIENTATION_PATIENT))
            .and_then(|v| arr6(&v))
        {
            h.orientation = Some(o);
        }
        if let Some(m) = group_attr(pf, shared, PIXEL_MEASURES_SEQ) {
            if let Some(ps) = get_f64s(m, tags::PIXEL_SPACING).and_then(|v| arr2(&v)) {
                h.pixel_spacing = Some(ps);
            }
            if let Some(t) = get_f64(m, tags::SLICE_THICKNESS) {
                h.slice_thickness = Some(t);
            }
            if let Some(t) = get_f64(m, tags::SPACING_BETWEEN_SLICES) {
                h.spacing_between_slices = Some(t);
            }
        }
        if let Some(t) = group_attr(pf, shared, PIXEL_VALUE_TRANSFORM_SEQ) {
            h.slope = get_f64(t, tags::RESCALE_SLOPE).unwrap_or(h.slope);
            h.intercept = get_f64(t, tags::RESCALE_INTERCEPT).unwrap_or(h.intercept);
        }
        if let Some(w) = group_attr(pf, shared, FRAME_VOI_LUT_SEQ).and_then(window_of) {
            h.window = Some(w);
        }
        if let Some(c) = pf.and_then(|p| first_item(p, FRAME_CONTENT_SEQ)) {
            if let Some(t) = get_str(c, TEMPORAL_POSITION_INDEX) {
                h.temporal = t;
            }
            if let Some(s) = get_str(c, STACK_ID) {
                h.stack = s;
            }
        }
        check_values(path, &h)?;
        out.push(h);
    }
    Ok(out)
}

/// Refuses values no scanner writes and that would silently make a wrong image: a rescale
/// slope of 0 (every voxel the intercept), rescaled values beyond f32, a position or pixel
/// size beyond any body. Names the attribute.
fn check_values(path: &Path, h: &FrameHeader) -> Result<()> {
    let refuse = |what: String| Err(StudyError::invalid(path, what));
    if !h.slope.is_finite() || h.slope == 0.0 || h.slope.abs() > MAX_RESCALE {
        return refuse(format!("Rescale Slope (0028,1053) {} is unusable", h.slope));
    }
    if !h.intercept.is_finite() || h.intercept.abs() > MAX_RESCALE {
        return refuse(format!(
            "Rescale Intercept (0028,1052) {} is unusable",
            h.intercept
        ));
    }
    if let Some(p) = h.position
        && p.iter()
            .any(|v| !v.is_finite() || v.abs() > MAX_POSITION_MM)
    {
        return refuse(format!(
            "Image Position (Patient) (0020,0032) {p:?} mm is beyond any body"
        ));
    }
    if let Some(s) = h.pixel_spacing
        && s.iter()
            .any(|v| !v.is_finite() || *v <= 0.0 || *v > MAX_PIXEL_MM)
    {
        return refuse(format!(
            "Pixel Spacing (0028,0030) {s:?} mm is not a pixel size"
        ));
    }
    Ok(())
}

/// The largest rescale slope or intercept accepted (PET's are far smaller).
const MAX_RESCALE: f64 = 1e6;
/// How far from the scanner's origin a slice may be, in mm (10 m).
const MAX_POSITION_MM: f64 = 1e4;
/// The largest pixel accepted, in mm.
const MAX_PIXEL_MM: f64 = 1000.0;

fn window_of(obj: &InMemDicomObject) -> Option<Window> {
    let c = get_f64(obj, tags::WINDOW_CENTER)?;
    let w = get_f64(obj, tags::WINDOW_WIDTH)?;
    (w > 0.0).then_some(Window::new(c, w))
}

/// Whether `file` is a DICOMDIR (a Media Storage Directory), whatever its name.
fn is_directory(file: &DefaultDicomObject) -> bool {
    file.meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        == MEDIA_STORAGE_DIRECTORY
}

/// Files referenced by a DICOMDIR (paths resolved against its folder); None when the file is
/// named DICOMDIR but is something else (an image, say), to be read as such.
fn dicomdir_files(path: &Path) -> Result<Option<Vec<PathBuf>>> {
    let obj = open_full(path)?;
    if !is_directory(&obj) {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    if let Some(records) = obj
        .get(tags::DIRECTORY_RECORD_SEQUENCE)
        .and_then(|e| e.items())
    {
        for rec in records {
            let Some(parts) = rec
                .get(tags::REFERENCED_FILE_ID)
                .and_then(|e| e.to_multi_str().ok())
            else {
                continue;
            };
            let mut p = dir.to_path_buf();
            for part in parts.iter() {
                let part = part.trim();
                if part.is_empty() || part == ".." || part == "." {
                    continue;
                }
                p.push(part);
            }
            out.push(resolve_case_insensitive(&p).unwrap_or(p));
        }
    }
    Ok(Some(out))
}

/// DICOMDIR file ids are upper case; on case-sensitive file systems find the real name.
fn resolve_case_insensitive(p: &Path) -> Option<PathBuf> {
    if p.exists() {
        return Some(p.to_path_buf());
    }
    let parent = p.parent()?;
    let parent = resolve_case_insensitive(parent)?;
    let name = p.file_name()?.to_string_lossy().to_lowercase();
    std::fs::read_dir(&parent)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().to_lowercase() == name)
        .map(|e| e.path())
}

/// What the folder walk has seen: folders and files by (device, inode), so a link back up the
/// tree (`a -> .`) or a second way to the same file is followed once, and the files found.
struct Walk<'a> {
    /// Set by the user to stop: the walk ends at the next entry.
    cancel: &'a std::sync::atomic::AtomicBool,
    seen: std::collections::HashSet<(u64, u64)>,
    files: Vec<PathBuf>,
    problems: Vec<FileProblem>,
    /// Whether `MAX_FILES` was reached (and said).
    full: bool,
}

/// The most files one study folder may hold (a link to `/` would otherwise list the disk).
const MAX_FILES: usize = 200_000;

impl<'a> Walk<'a> {
    fn new(cancel: &'a std::sync::atomic::AtomicBool) -> Self {
        Self {
            cancel,
            seen: Default::default(),
            files: Vec::new(),
            problems: Vec::new(),
            full: false,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `meta`'s folder or file is new to the walk.
    fn first_visit(&mut self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.seen.insert((meta.dev(), meta.ino()))
    }

    fn folder(&mut self, dir: &Path, depth: usize) {
        if depth > 64 {
            self.problems.push(FileProblem {
                path: dir.to_path_buf(),
                reason: "folder nesting too deep".into(),
            });
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.problems.push(FileProblem {
                    path: dir.to_path_buf(),
                    reason: format!("cannot list folder: {e}"),
                });
                return;
            }
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if self.cancelled() {
                return;
            }
            if self.files.len() >= MAX_FILES {
                if !self.full {
                    self.full = true;
                    self.problems.push(FileProblem {
                        path: dir.to_path_buf(),
                        reason: format!("more than {MAX_FILES} files: the rest were not read"),
                    });
                }
                return;
            }
            match std::fs::metadata(&p) {
                Ok(m) if !self.first_visit(&m) => {}
                Ok(m) if m.is_dir() => self.folder(&p, depth + 1),
                Ok(m) if m.is_file() => self.files.push(p),
                Ok(_) => {}
                Err(e) => self.problems.push(FileProblem {
                    path: p,
                    reason: format!("cannot stat: {e}"),
                }),
            }
        }
    }
}

/// Cheap check: DICM magic at offset 128, or a plausible group 0002/0008 tag at offset 0.
fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = [0u8; 132];
    let n = f.read(&mut buf).unwrap_or(0);
    if n >= 132 && &buf[128..132] == b"DICM" {
        return true;
    }
    n >= 4 && matches!(u16::from_le_bytes([buf[0], buf[1]]), 0x0002 | 0x0008)
}

/// Scan a folder tree for DICOM series. Unreadable files are listed as problems, not errors.
pub fn discover(folder: impl AsRef<Path>) -> Result<Discovery> {
    discover_cancellable(folder, &std::sync::atomic::AtomicBool::new(false))
}

/// [`discover`] that stops, with [`StudyError::Cancelled`], once `cancel` is set.
pub fn discover_cancellable(
    folder: impl AsRef<Path>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<Discovery> {
    let folder = folder.as_ref();
    if !folder.is_dir() {
        return Err(StudyError::read(folder, "not a folder"));
    }
    let mut walk = Walk::new(cancel);
    if let Ok(meta) = std::fs::metadata(folder) {
        walk.first_visit(&meta);
    }
    walk.folder(folder, 0);
    let cancelled = || cancel.load(std::sync::atomic::Ordering::Relaxed);
    if cancelled() {
        return Err(StudyError::Cancelled {
            path: folder.to_path_buf(),
        });
    }
    let Walk {
        files,
        mut problems,
        ..
    } = walk;

    // DICOMDIR: add the files it references (their on-disk names may differ in case).
    let mut set: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dicomdirs = Vec::new();
    for f in files {
        let is_dir_file = f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case("DICOMDIR"));
        if is_dir_file {
            dicomdirs.push(f);
        } else {
            set.insert(f);
        }
    }
    for d in &dicomdirs {
        match dicomdir_files(d) {
            Ok(Some(list)) => set.extend(list.into_iter().filter(|p| p.is_file())),
            Ok(None) => {
                set.insert(d.clone());
            }
            Err(e) => problems.push(FileProblem {
                path: d.clone(),
                reason: e.to_string(),
            }),
        }
    }

    let results: Vec<(PathBuf, Result<HeaderSummary>)> = set
        .into_par_iter()
        .map(|p| {
            // after a cancel the rest of the headers are not read
            let r = if cancelled() {
                Err(StudyError::Cancelled { path: p.clone() })
            } else {
                read_header_summary(&p)
            };
            (p, r)
        })
        .collect();
    if cancelled() {
        return Err(StudyError::Cancelled {
            path: folder.to_path_buf(),
        });
    }

    // group
    type Key = (String, String, u16, u16, String, String, String);
    struct Group {
        frames: Vec<FrameHeader>,
        meta: StudyMeta,
        description: String,
        modality: Modality,
        number: Option<i64>,
    }
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for (path, r) in results {
        match r {
            Ok((frames, meta, description, modality, number)) => {
                for fh in frames {
                    let key = (
                        meta.study_instance_uid.clone(),
                        fh.series_instance_uid.clone(),
                        fh.rows,
                        fh.columns,
                        fh.echo.clone(),
                        fh.temporal.clone(),
                        fh.stack.clone(),
                    );
                    groups
                        .entry(key)
                        .or_insert_with(|| Group {
                            frames: Vec::new(),
                            meta: meta.clone(),
                            description: description.clone(),
                            modality: modality.clone(),
                            number,
                        })
                        .frames
                        .push(fh);
                }
            }
            Err(e) => {
                if looks_like_dicom(&path) {
                    problems.push(FileProblem {
                        path,
                        reason: reason_of(&e),
                    });
                } else {
                    problems.push(FileProblem {
                        path,
                        reason: "not a DICOM file".into(),
                    });
                }
            }
        }
    }

    // split each group by orientation
    let mut series: Vec<SeriesInfo> = Vec::new();
    let mut parts_per_uid: BTreeMap<String, usize> = BTreeMap::new();
    let mut pieces: Vec<(Group, Vec<FrameHeader>, &'static str)> = Vec::new();
    for (_, g) in groups {
        let mut clusters: Vec<([f64; 6], Vec<FrameHeader>)> = Vec::new();
        for fh in &g.frames {
            let o = fh.orientation.unwrap_or([0.0; 6]);
            match clusters.iter_mut().find(|(c, _)| {
                c.iter()
                    .zip(o.iter())
                    .all(|(a, b)| (a - b).abs() < ORIENTATION_TOLERANCE)
            }) {
                Some((_, v)) => v.push(fh.clone()),
                None => clusters.push((o, vec![fh.clone()])),
            }
        }
        let why = if clusters.len() > 1 {
            "orientation"
        } else {
            ""
        };
        for (_, frames) in clusters {
            *parts_per_uid
                .entry(frames[0].series_instance_uid.clone())
                .or_default() += 1;
            pieces.push((
                Group {
                    frames: Vec::new(),
                    meta: g.meta.clone(),
                    description: g.description.clone(),
                    modality: g.modality.clone(),
                    number: g.number,
                },
                frames,
                why,
            ));
        }
    }
    let mut part_index: BTreeMap<String, usize> = BTreeMap::new();
    for (g, frames, why) in pieces {
        let uid = frames[0].series_instance_uid.clone();
        let total = parts_per_uid.get(&uid).copied().unwrap_or(1);
        let idx = part_index.entry(uid.clone()).or_default();
        *idx += 1;
        let mut warnings = Vec::new();
        let mut description = g.description.clone();
        if total > 1 {
            description = format!("{description} (part {idx} of {total})");
            let reason = if why.is_empty() {
                "image size, echo or temporal position"
            } else {
                "mixed orientations"
            };
            warnings.push(format!(
                "series {uid} was split into {total} parts because of {reason}; this is part {idx}"
            ));
        }
        let folder = frames[0]
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match plan_geometry(&frames, &folder) {
            Ok(plan) => warnings.extend(plan.warnings),
            Err(e) => warnings.push(format!("cannot be loaded as a volume: {}", reason_of(&e))),
        }
        series.push(SeriesInfo {
            series_instance_uid: uid,
            description,
            modality: g.modality,
            series_number: g.number,
            rows: frames[0].rows,
            columns: frames[0].columns,
            slice_count: frames.len(),
            warnings,
            study: g.meta,
            frames,
            folder,
        });
    }
    series.sort_by(|a, b| {
        (
            &a.study.study_instance_uid,
            a.series_number,
            &a.description,
            &a.series_instance_uid,
        )
            .cmp(&(
                &b.study.study_instance_uid,
                b.series_number,
                &b.description,
                &b.series_instance_uid,
            ))
    });
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Discovery { series, problems })
}

type HeaderSummary = (Vec<FrameHeader>, StudyMeta, String, Modality, Option<i64>);

fn read_header_summary(path: &Path) -> Result<HeaderSummary> {
    let file = open_header(path)?;
    if is_directory(&file) {
        return Err(StudyError::invalid(path, "a DICOMDIR, not an image"));
    }
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
    check_pixel_data(path, &file, len)?;
    let frames = frame_headers(path, &file)?;
    check_plausible_size(path, &frames, len)?;
    let obj: &InMemDicomObject = &file;
    Ok((
        frames,
        study_meta(obj),
        get_str(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        Modality::from_dicom(&get_str(obj, tags::MODALITY).unwrap_or_default()),
        get_int(obj, tags::SERIES_NUMBER),
    ))
}

fn reason_of(e: &StudyError) -> String {
    match e {
        StudyError::Read { reason, .. }
        | StudyError::Unsupported { reason, .. }
        | StudyError::NotAVolume { reason, .. }
        | StudyError::Invalid { reason, .. } => reason.clone(),
        StudyError::Cancelled { .. } => "loading cancelled".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// geometry

/// How the frames of a series form a volume.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Frame indices in slice order.
    pub order: Vec<usize>,
    pub patient_from_voxel: Mat4,
    pub spacing: [f64; 3],
    pub warnings: Vec<String>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return 0.0;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Sort frames along the slice normal and derive `patient_from_voxel`, with warnings for uneven
/// spacing, missing slices and gantry tilt; refuse what is not a volume.
pub(crate) fn plan_geometry(frames: &[FrameHeader], where_: &Path) -> Result<Plan> {
    let n = frames.len();
    if n == 0 {
        return Err(StudyError::not_a_volume(where_, "no images"));
    }
    let (rows, cols) = (frames[0].rows, frames[0].columns);
    if frames.iter().any(|f| f.rows != rows || f.columns != cols) {
        return Err(StudyError::not_a_volume(
            where_,
            "images of different sizes",
        ));
    }
    let mut warnings = Vec::new();
    let ps = frames[0].pixel_spacing.filter(|p| p[0] > 0.0 && p[1] > 0.0);
    let ps = ps.unwrap_or_else(|| {
        warnings.push("no Pixel Spacing: 1 mm assumed".to_string());
        [1.0, 1.0]
    });
    let fallback_dz = frames[0]
        .spacing_between_slices
        .or(frames[0].slice_thickness)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);

    let all_geo = frames
        .iter()
        .all(|f| f.position.is_some() && f.orientation.is_some());
    if !all_geo {
        // No patient geometry: keep file / frame / instance order.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| {
            (
                frames[i].instance_number,
                frames[i].path.clone(),
                frames[i].frame,
            )
        });
        warnings.push(
            "no patient geometry (Image Position/Orientation missing): slices kept in instance order, \
             positions are not in patient space"
                .to_string(),
        );
        let pfv = geometry::from_columns(
            [ps[1], 0.0, 0.0],
            [0.0, ps[0], 0.0],
            [0.0, 0.0, fallback_dz],
            [0.0; 3],
        );
        return Ok(Plan {
            order,
            patient_from_voxel: pfv,
            spacing: [ps[1], ps[0], fallback_dz],
            warnings,
        });
    }

    let o0 = frames[0]
        .orientation
        .unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    for f in frames {
        let o = f.orientation.unwrap_or(o0);
        if o.iter()
            .zip(o0.iter())
            .any(|(a, b)| (a - b).abs() >= ORIENTATION_TOLERANCE)
        {
            return Err(StudyError::not_a_volume(
                where_,
                "mixed image orientations in one stack",
            ));
        }
    }
    let row = geometry::normalize([o0[0], o0[1], o0[2]]);
    let col = geometry::normalize([o0[3], o0[4], o0[5]]);
    let normal = geometry::normalize(geometry::cross(row, col));
    if geometry::norm(normal) < 0.5 {
        return Err(StudyError::invalid(
            where_,
            "degenerate Image Orientation (Patient)",
        ));
    }
    // rows and columns at an angle other than 90°: the grid Lumen builds is square, so
    // measurements and overlays on it are off by the skew
    let skew = geometry::dot(row, col);
    if skew.abs() > ORTHOGONAL_TOLERANCE {
        warnings.push(format!(
            "Image Orientation (Patient) is not orthogonal: rows and columns meet at {:.1}°; \
             distances and the exported geometry are approximate",
            skew.clamp(-1.0, 1.0).acos().to_degrees()
        ));
    }
    let pos = |i: usize| frames[i].position.unwrap_or([0.0; 3]);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        geometry::dot(pos(a), normal)
            .total_cmp(&geometry::dot(pos(b), normal))
            .then(frames[a].instance_number.cmp(&frames[b].instance_number))
    });

    // duplicates
    let mut kept: Vec<usize> = Vec::with_capacity(n);
    let mut dropped = 0usize;
    for &i in &order {
        if let Some(&last) = kept.last() {
            let d = geometry::dot(pos(i), normal) - geometry::dot(pos(last), normal);
            if d.abs() < POSITION_TOLERANCE_MM {
                let same = frames[i].sop_instance_uid == frames[last].sop_instance_uid
                    && frames[i].frame == frames[last].frame;
                if same {
                    dropped += 1;
                    continue;
                }
                let distinct: BTreeSet<i64> = order
                    .iter()
                    .map(|&k| (geometry::dot(pos(k), normal) * 100.0).round() as i64)
                    .collect();
                if distinct.len() == 1 {
                    return Err(StudyError::not_a_volume(
                        where_,
                        format!(
                            "all {n} images lie at the same position ({:.2} mm along the slice normal)",
                            geometry::dot(pos(i), normal)
                        ),
                    ));
                }
                return Err(StudyError::not_a_volume(
                    where_,
                    format!(
                        "duplicate slice positions ({} and {} both at {:.2} mm): several acquisitions or \
                         time points in one series",
                        frames[i].path.display(),
                        frames[last].path.display(),
                        geometry::dot(pos(i), normal)
                    ),
                ));
            }
        }
        kept.push(i);
    }
    if dropped > 0 {
        warnings.push(format!(
            "{dropped} duplicate image(s) of the same instance ignored"
        ));
    }
    let order = kept;
    let n = order.len();
    let first = pos(order[0]);
    let cx = geometry::scale(row, ps[1]);
    let cy = geometry::scale(col, ps[0]);
    if n == 1 {
        let cz = geometry::scale(normal, fallback_dz);
        return Ok(Plan {
            order,
            patient_from_voxel: geometry::from_columns(cx, cy, cz, first),
            spacing: [ps[1], ps[0], fallback_dz],
            warnings,
        });
    }
    let last = pos(order[n - 1]);
    let dists: Vec<f64> = order
        .iter()
        .map(|&i| geometry::dot(pos(i), normal))
        .collect();
    let steps: Vec<f64> = dists.windows(2).map(|w| w[1] - w[0]).collect();
    let med = median(&steps);
    let (min_s, max_s) = steps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let tol = (0.01 * med).max(POSITION_TOLERANCE_MM);
    if max_s - min_s > tol {
        let missing: usize = steps
            .iter()
            .map(|&s| {
                let r = s / med;
                if r > 1.5 && (r - r.round()).abs() < 0.1 {
                    r.round() as usize - 1
                } else {
                    0
                }
            })
            .sum();
        if missing > 0 {
            warnings.push(format!(
                "{missing} slice(s) appear to be missing (steps {min_s:.2}–{max_s:.2} mm, usual {med:.2} mm); \
                 the volume uses an even step, so positions near the gap are approximate"
            ));
        } else {
            warnings.push(format!(
                "uneven slice spacing: steps from {min_s:.2} to {max_s:.2} mm (median {med:.2} mm); the \
                 volume uses the mean step, so positions between slices are approximate"
            ));
        }
    }
    let span = geometry::sub(last, first);
    let cz = geometry::scale(span, 1.0 / (n as f64 - 1.0));
    let along = geometry::dot(geometry::normalize(span), normal).clamp(-1.0, 1.0);
    let tilt_deg = along.abs().acos().to_degrees();
    if tilt_deg > 0.05 {
        warnings.push(format!(
            "gantry tilt of {tilt_deg:.1}°: slices are sheared; the geometry is kept exact with a sheared \
             transform (a NIfTI qform can only approximate it)"
        ));
    }
    let dz = geometry::dot(cz, normal).abs();
    Ok(Plan {
        order,
        patient_from_voxel: geometry::from_columns(cx, cy, cz, first),
        spacing: [ps[1], ps[0], dz],
        warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// pixel decoding

fn transfer_syntax_name(uid: &str) -> String {
    let name = match uid {
        "1.2.840.10008.1.2" => "Implicit VR Little Endian",
        "1.2.840.10008.1.2.1" => "Explicit VR Little Endian",
        "1.2.840.10008.1.2.1.99" => "Deflated Explicit VR Little Endian",
        "1.2.840.10008.1.2.2" => "Explicit VR Big Endian",
        "1.2.840.10008.1.2.4.50" => "JPEG Baseline (8-bit)",
        "1.2.840.10008.1.2.4.51" => "JPEG Extended (12-bit)",
        "1.2.840.10008.1.2.4.57" => "JPEG Lossless",
        "1.2.840.10008.1.2.4.70" => "JPEG Lossless SV1",
        "1.2.840.10008.1.2.4.80" => "JPEG-LS Lossless",
        "1.2.840.10008.1.2.4.81" => "JPEG-LS Near-Lossless",
        "1.2.840.10008.1.2.4.90" => "JPEG 2000 Lossless",
        "1.2.840.10008.1.2.4.91" => "JPEG 2000",
        "1.2.840.10008.1.2.5" => "RLE Lossless",
        _ => return uid.to_string(),
    };
    format!("{name} ({uid})")
}

fn decode_error(path: &Path, ts: &str, e: impl std::fmt::Display) -> StudyError {
    let msg = e.to_string();
    let lower = msg.to_lowercase();
    let reason = format!(
        "cannot decode pixel data in {}: {msg}",
        transfer_syntax_name(ts)
    );
    if lower.contains("unsupported")
        || lower.contains("not supported")
        || lower.contains("precision")
    {
        StudyError::unsupported(path, reason)
    } else {
        StudyError::read(path, reason)
    }
}

/// Convert one decoded frame into modality values (`raw * slope + intercept`).
fn convert_frame(
    px: &DecodedPixelData<'_>,
    frame: u32,
    out: &mut [f32],
    slope: f64,
    intercept: f64,
    path: &Path,
) -> Result<()> {
    let n = out.len();
    if px.rows() as usize * px.columns() as usize != n {
        return Err(StudyError::invalid(
            path,
            format!(
                "decoded frame is {}×{}, expected {n} pixels",
                px.columns(),
                px.rows()
            ),
        ));
    }
    let data = px
        .frame_data(frame)
        .map_err(|e| StudyError::read(path, format!("frame {frame}: {e}")))?;
    let spp = usize::from(px.samples_per_pixel());
    let ba = px.bits_allocated();
    let bs = px.bits_stored().clamp(1, ba.max(1));
    let signed = px.pixel_representation() == PixelRepresentation::Signed;
    let bytes = usize::from(ba.div_ceil(8));
    if !(spp == 1 || spp == 3) {
        return Err(StudyError::unsupported(
            path,
            format!("{spp} samples per pixel"),
        ));
    }
    if !matches!(ba, 8 | 16 | 32) {
        return Err(StudyError::unsupported(
            path,
            format!("{ba} bits allocated"),
        ));
    }
    if data.len() < n * spp * bytes {
        return Err(StudyError::read(
            path,
            format!(
                "pixel data too short: {} bytes for {n} pixels × {spp} × {bytes}",
                data.len()
            ),
        ));
    }
    // bits above Bits Stored are not the sample's (overlays were once kept there)
    let mask8 = u8::MAX >> (8 - bs.min(8));
    let mask16 = u16::MAX >> (16 - bs.min(16));
    let mask32 = u32::MAX >> (32 - u32::from(bs.min(32)));
    let raw = |idx: usize| -> f64 {
        let o = idx * bytes;
        match ba {
            8 => {
                let v = data[o];
                if signed {
                    f64::from(v as i8)
                } else {
                    f64::from(v & mask8)
                }
            }
            16 => {
                let v = u16::from_le_bytes([data[o], data[o + 1]]);
                if signed {
                    let sh = 16 - bs.min(16);
                    f64::from(((v << sh) as i16) >> sh)
                } else {
                    f64::from(v & mask16)
                }
            }
            _ => {
                let v = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                if signed {
                    let sh = 32 - u32::from(bs.min(32));
                    f64::from(((v << sh) as i32) >> sh)
                } else {
                    f64::from(v & mask32)
                }
            }
        }
    };
    if spp == 1 && ba == 16 {
        // fast path (CT/MR): f32 arithmetic is exact for 16-bit samples with integral rescale
        let (k, c) = (slope as f32, intercept as f32);
        let sh = 16 - bs.min(16);
        let src = data[..n * 2].chunks_exact(2);
        if signed {
            for (o, b) in out.iter_mut().zip(src) {
                let v = ((u16::from_le_bytes([b[0], b[1]]) << sh) as i16) >> sh;
                *o = f32::from(v) * k + c;
            }
        } else {
            for (o, b) in out.iter_mut().zip(src) {
                *o = f32::from(u16::from_le_bytes([b[0], b[1]]) & mask16) * k + c;
            }
        }
    } else if spp == 1 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = (raw(i) * slope + intercept) as f32;
        }
    } else {
        let planar = px.planar_configuration() != dicom_pixeldata::PlanarConfiguration::Standard;
        let ybr = matches!(
            px.photometric_interpretation(),
            PhotometricInterpretation::YbrFull
                | PhotometricInterpretation::YbrFull422
                | PhotometricInterpretation::YbrIct
                | PhotometricInterpretation::YbrRct
        );
        let at = |i: usize, s: usize| {
            if planar {
                raw(s * n + i)
            } else {
                raw(i * 3 + s)
            }
        };
        for (i, o) in out.iter_mut().enumerate() {
            let v = if ybr {
                at(i, 0)
            } else {
                0.299 * at(i, 0) + 0.587 * at(i, 1) + 0.114 * at(i, 2)
            };
            *o = v as f32;
        }
    }
    Ok(())
}

fn decode_into(file: &DefaultDicomObject, h: &FrameHeader, out: &mut [f32]) -> Result<()> {
    let frame = h.frame.unwrap_or(0);
    // third-party codecs can panic on damaged data; turn that into a per-file error
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.decode_pixel_data_frame(frame)
    }))
    .map_err(|_| {
        StudyError::read(
            &h.path,
            format!(
                "damaged pixel data: the {} decoder failed",
                transfer_syntax_name(&h.transfer_syntax)
            ),
        )
    })?;
    let px = decoded.map_err(|e| {
        let obj: &InMemDicomObject = file;
        let bits = get_int(obj, tags::BITS_STORED).unwrap_or(0);
        if h.transfer_syntax == "1.2.840.10008.1.2.4.51" && bits > 8 {
            StudyError::unsupported(
                &h.path,
                format!(
                    "{bits}-bit JPEG Extended (1.2.840.10008.1.2.4.51) cannot be decoded ({e})"
                ),
            )
        } else {
            decode_error(&h.path, &h.transfer_syntax, e)
        }
    })?;
    convert_frame(&px, 0, out, h.slope, h.intercept, &h.path)
}

fn colour_warning(frames: &[FrameHeader], file: Option<&DefaultDicomObject>) -> Option<String> {
    let obj: &InMemDicomObject = file?;
    let spp = get_int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let pi = get_str(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let _ = frames;
    if spp == 3 {
        Some(format!("colour image ({pi}) converted to grey levels"))
    } else if pi == "PALETTE COLOR" {
        Some("palette colour image shown as grey palette indices".to_string())
    } else {
        None
    }
}

/// Build a volume from frames (sorted here) and their series attributes.
#[allow(clippy::too_many_arguments)]
fn assemble(
    frames: &[FrameHeader],
    study: StudyMeta,
    description: String,
    modality: Modality,
    where_: &Path,
    extra_warnings: Vec<String>,
    preloaded: Option<DefaultDicomObject>,
    control: &super::LoadControl,
) -> Result<Volume> {
    use std::sync::atomic::Ordering;
    // Checked before each image: a cancelled load stops within one decode per thread.
    let step = || {
        if control.cancel.load(Ordering::Relaxed) {
            Err(StudyError::Cancelled {
                path: where_.to_path_buf(),
            })
        } else {
            Ok(())
        }
    };
    let done = || {
        control.decoded.fetch_add(1, Ordering::Relaxed);
    };
    let plan = plan_geometry(frames, where_)?;
    let ordered: Vec<&FrameHeader> = plan.order.iter().map(|&i| &frames[i]).collect();
    let first = ordered
        .first()
        .ok_or_else(|| StudyError::not_a_volume(where_, "no images"))?;
    let (nx, ny, nz) = (
        usize::from(first.columns),
        usize::from(first.rows),
        ordered.len(),
    );
    let plane = nx * ny;
    let total = plane
        .checked_mul(nz)
        .filter(|t| *t <= 2_000_000_000)
        .ok_or_else(|| StudyError::invalid(where_, "volume too large"))?;
    let mut voxels = vec![0f32; total];

    let distinct_files: BTreeSet<&Path> = ordered.iter().map(|h| h.path.as_path()).collect();
    let mut probe: Option<DefaultDicomObject> = None;
    if distinct_files.len() == 1 {
        // one (multi-frame) file: open once, decode frames in parallel
        let file = match preloaded {
            Some(f) => f,
            None => open_image(&first.path)?,
        };
        voxels
            .par_chunks_mut(plane)
            .zip(ordered.par_iter())
            .try_for_each(|(chunk, h)| {
                step()?;
                decode_into(&file, h, chunk)?;
                done();
                Ok(())
            })?;
        probe = Some(file);
    } else {
        voxels
            .par_chunks_mut(plane)
            .zip(ordered.par_iter())
            .try_for_each(|(chunk, h)| {
                step()?;
                let file = open_image(&h.path)?;
                decode_into(&file, h, chunk)?;
                done();
                Ok(())
            })?;
    }
    if probe.is_none() {
        probe = open_header(&first.path).ok();
    }
    let mut warnings = extra_warnings;
    for w in plan.warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if let Some(w) = colour_warning(frames, probe.as_ref()) {
        warnings.push(w);
    }
    let inverted = probe.as_ref().is_some_and(|file| {
        let obj: &InMemDicomObject = file;
        get_str(obj, tags::PHOTOMETRIC_INTERPRETATION).as_deref() == Some("MONOCHROME1")
    });
    let slices = ordered
        .iter()
        .map(|h| SliceSource {
            path: h.path.clone(),
            frame: h.frame,
            sop_instance_uid: h.sop_instance_uid.clone(),
            sop_class_uid: h.sop_class_uid.clone(),
            position: h
                .position
                .unwrap_or_else(|| geometry::apply(&plan.patient_from_voxel, [0.0, 0.0, 0.0])),
        })
        .collect();
    Ok(Volume {
        dims: [nx, ny, nz],
        voxels,
        spacing: plan.spacing,
        patient_from_voxel: plan.patient_from_voxel,
        modality,
        series_description: description,
        warnings,
        window: first.window,
        inverted,
        slices,
        study,
    })
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

/// Refuse headers that declare far more pixels than the file could hold (even compressed), before
/// anything is allocated for them.
fn check_plausible_size(path: &Path, frames: &[FrameHeader], file_len: u64) -> Result<()> {
    const MAX_RATIO: u64 = 256;
    let Some(f) = frames.first() else {
        return Ok(());
    };
    let pixels = u64::from(f.rows) * u64::from(f.columns) * frames.len() as u64;
    if pixels > MAX_RATIO.saturating_mul(file_len.max(1)) {
        return Err(StudyError::invalid(
            path,
            format!(
                "declares {}×{}×{} pixels, implausible for a file of {file_len} bytes",
                f.columns,
                f.rows,
                frames.len()
            ),
        ));
    }
    Ok(())
}

/// The most pixel data Lumen reads from one file, all frames as stored (2 GiB): far more than any
/// CT or MR file holds, far less than would exhaust a workstation.
const MAX_PIXEL_BYTES: u64 = 2 << 30;

/// Refuse pixel data that the header makes absurd, or that contradicts the header, before any
/// decoder allocates for it: Rows × Columns × frames × samples × bits at most [`MAX_PIXEL_BYTES`];
/// native (uncompressed) pixel data at least that long (`file_len` bounds it where the header was
/// read without the pixel data); and every JPEG, JPEG-LS or JPEG 2000 codestream no larger than
/// the header says, since the codecs allocate for the size in their own header (a 6 KiB file can
/// ask for 8 GiB).
fn check_pixel_data(path: &Path, file: &DefaultDicomObject, file_len: u64) -> Result<()> {
    let obj: &InMemDicomObject = file;
    let dim = |tag, default| {
        get_int(obj, tag)
            .or(default)
            .map(|v| u64::try_from(v).unwrap_or(0))
    };
    let (Some(rows), Some(columns)) = (dim(tags::ROWS, None), dim(tags::COLUMNS, None)) else {
        return Ok(()); // no image: frame_headers says so
    };
    let frames = dim(tags::NUMBER_OF_FRAMES, Some(1)).unwrap_or(1).max(1);
    let samples = dim(tags::SAMPLES_PER_PIXEL, Some(1)).unwrap_or(1).max(1);
    let bits = dim(tags::BITS_ALLOCATED, None);
    let shape = format!(
        "{columns}×{rows} pixels × {frames} frames × {samples} samples × {} bits",
        bits.map_or("?".to_string(), |b| b.to_string())
    );
    let declared = bits.map(|b| {
        rows.saturating_mul(columns)
            .saturating_mul(frames)
            .saturating_mul(samples)
            .saturating_mul(b)
            .div_ceil(8)
    });
    if let Some(declared) = declared
        && declared > MAX_PIXEL_BYTES
    {
        return Err(StudyError::invalid(
            path,
            format!(
                "declares {shape} = {} MiB of pixel data; Lumen reads at most {} MiB from one file",
                declared >> 20,
                MAX_PIXEL_BYTES >> 20
            ),
        ));
    }
    let ts = file.meta().transfer_syntax().trim_end_matches('\0');
    let native = matches!(
        ts,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | DEFLATED
    );
    let value = obj.get(tags::PIXEL_DATA).map(|e| e.value());
    if let (true, Some(declared)) = (native, declared) {
        let in_element = value.and_then(|v| v.primitive());
        let (held, what) = match in_element {
            Some(p) => (p.calculate_byte_len() as u64, "Pixel Data holds"),
            // read without the pixel data: the file size bounds it (a deflated one inflates)
            None if ts != DEFLATED => (file_len, "the whole file has"),
            None => return Ok(()),
        };
        if held < declared {
            return Err(StudyError::read(
                path,
                format!(
                    "damaged file: {what} {held} bytes, the header declares {shape} = {declared} bytes"
                ),
            ));
        }
        // much more data than the header's size: Rows or Columns are wrong, and the image
        // would be read garbled or in part (an odd length's pad byte is fine)
        if in_element.is_some() && held > declared + declared / 16 + 2 {
            return Err(StudyError::invalid(
                path,
                format!(
                    "Pixel Data holds {held} bytes, but Rows (0028,0010) and Columns (0028,0011) \
                     declare {shape} = {declared} bytes"
                ),
            ));
        }
    }
    for (k, fragment) in value
        .and_then(|v| v.fragments())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some((w, h, components)) = codestream_size(fragment) else {
            continue;
        };
        // JPEG allows a height of 0, given later by a DNL marker
        if u64::from(w) != columns
            || (h != 0 && u64::from(h) != rows)
            || u64::from(components) > samples
        {
            return Err(StudyError::read(
                path,
                format!(
                    "damaged file: the {} codestream in fragment {k} is {w}×{h} × {components} components, the header declares {columns}×{rows} × {samples}",
                    transfer_syntax_name(ts)
                ),
            ));
        }
    }
    Ok(())
}

/// Width, height and component count from the header of a JPEG or JPEG-LS (SOFn) or JPEG 2000
/// (SIZ) codestream at the start of `fragment`; None for anything else (a continuation fragment,
/// RLE, a header this reader does not follow).
fn codestream_size(fragment: &[u8]) -> Option<(u32, u32, u32)> {
    let u16_at = |i: usize| {
        Some(u16::from_be_bytes([
            *fragment.get(i)?,
            *fragment.get(i + 1)?,
        ]))
    };
    let u32_at = |i: usize| {
        Some(u32::from_be_bytes([
            *fragment.get(i)?,
            *fragment.get(i + 1)?,
            *fragment.get(i + 2)?,
            *fragment.get(i + 3)?,
        ]))
    };
    if fragment.starts_with(&[0xFF, 0xD8]) {
        let mut pos = 2;
        loop {
            while fragment.get(pos + 1) == Some(&0xFF) {
                pos += 1; // fill bytes
            }
            if fragment.get(pos) != Some(&0xFF) {
                return None;
            }
            let marker = *fragment.get(pos + 1)?;
            match marker {
                // SOF0..SOF15 (not DHT, JPG, DAC) and JPEG-LS SOF55: P, Y, X, Nf
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {}
                0xF7 => {}
                0xD0..=0xD7 | 0x01 => {
                    pos += 2;
                    continue;
                }
                0xDA | 0xD9 => return None, // scan or end before any frame header
                _ => {
                    pos += 2 + usize::from(u16_at(pos + 2)?);
                    continue;
                }
            }
            let h = u16_at(pos + 5)?;
            let w = u16_at(pos + 7)?;
            let nf = *fragment.get(pos + 9)?;
            return Some((u32::from(w), u32::from(h), u32::from(nf)));
        }
    }
    // a raw codestream, or one in a JP2 file (signature box first)
    let soc = if fragment.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        0
    } else if fragment.starts_with(&[0, 0, 0, 0x0C, b'j', b'P', b' ', b' ']) {
        fragment
            .get(..fragment.len().min(4096))?
            .windows(4)
            .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?
    } else {
        return None;
    };
    let siz = soc + 4; // Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, 4 tile fields, Csiz
    let (x, y) = (u32_at(siz + 4)?, u32_at(siz + 8)?);
    let (x0, y0) = (u32_at(siz + 12)?, u32_at(siz + 16)?);
    let components = u16_at(siz + 36)?;
    Some((
        x.saturating_sub(x0),
        y.saturating_sub(y0),
        u32::from(components),
    ))
}

/// Write a copy of the DICOM file `src` to `dst` as another slice of a series: new Image Position
/// (Patient), SOP Instance UID, Series Instance UID and Instance Number; pixels unchanged.
/// Used to build large test and benchmark series from real slices.
pub fn write_slice_copy(
    src: &Path,
    dst: &Path,
    position: [f64; 3],
    sop_instance_uid: &str,
    series_instance_uid: &str,
    instance_number: i64,
) -> Result<()> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let mut obj = open_full(src)?;
    let pos = format!("{}\\{}\\{}", position[0], position[1], position[2]);
    obj.put(DataElement::new(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::from(pos),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(sop_instance_uid),
    ));
    obj.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(series_instance_uid),
    ));
    obj.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from(instance_number.to_string()),
    ));
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop_instance_uid.to_string());
    obj.write_to_file(dst)
        .map_err(|e| StudyError::read(dst, format!("cannot write: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fh(pos: [f64; 3], uid: &str) -> FrameHeader {
        FrameHeader {
            path: PathBuf::from(format!("{uid}.dcm")),
            sop_instance_uid: uid.into(),
            position: Some(pos),
            orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: Some([0.5, 0.7]),
            rows: 4,
            columns: 3,
            slope: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn sorts_by_position_not_instance_number() {
        let mut frames = vec![
            fh([0.0, 0.0, 10.0], "a"),
            fh([0.0, 0.0, 0.0], "b"),
            fh([0.0, 0.0, 5.0], "c"),
        ];
        frames[0].instance_number = Some(1);
        frames[1].instance_number = Some(3);
        frames[2].instance_number = Some(2);
        let plan = plan_geometry(&frames, Path::new("x")).unwrap();
        assert_eq!(plan.order, vec![1, 2, 0]);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        // x uses the column spacing (second PixelSpacing value), y the row spacing
        assert_eq!(plan.spacing, [0.7, 0.5, 5.0]);
        assert!((plan.patient_from_voxel[0][0] - 0.7).abs() < 1e-12);
        assert!((plan.patient_from_voxel[1][1] - 0.5).abs() < 1e-12);
        assert!((plan.patient_from_voxel[2][2] - 5.0).abs() < 1e-12);
    }

    #[test]
    fn detects_missing_uneven_duplicate_and_same_position() {
        let frames = vec![
            fh([0.0, 0.0, 0.0], "a"),
            fh([0.0, 0.0, 5.0], "b"),
            fh([0.0, 0.0, 10.0], "c"),
            fh([0.0, 0.0, 20.0], "d"),
        ];
        let plan = plan_geometry(&frames, Path::new("x")).unwrap();
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("1 slice(s) appear to be missing")),
            "{:?}",
            plan.warnings
        );

        let frames = vec![
            fh([0.0, 0.0, 0.0], "a"),
            fh([0.0, 0.0, 4.2], "b"),
            fh([0.0, 0.0, 5.3], "c"),
        ];
        let plan = plan_geometry(&frames, Path::new("x")).unwrap();
        assert!(plan.warnings.iter().any(|w| w.contains("uneven")));

        let frames = vec![
            fh([0.0, 0.0, 0.0], "a"),
            fh([0.0, 0.0, 0.0], "b"),
            fh([0.0, 0.0, 0.0], "c"),
        ];
        let e = plan_geometry(&frames, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("same position"), "{e}");

        let frames = vec![
            fh([0.0, 0.0, 0.0], "a"),
            fh([0.0, 0.0, 0.0], "b"),
            fh([0.0, 0.0, 3.0], "c"),
        ];
        let e = plan_geometry(&frames, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate slice positions"), "{e}");
    }

    #[test]
    fn detects_gantry_tilt() {
        let c = 20f64.to_radians().cos();
        let s = 20f64.to_radians().sin();
        let mut frames: Vec<FrameHeader> = (0..3)
            .map(|i| fh([0.0, 0.0, f64::from(i) * 5.0], "t"))
            .collect();
        for (i, f) in frames.iter_mut().enumerate() {
            f.orientation = Some([1.0, 0.0, 0.0, 0.0, c, -s]);
            f.sop_instance_uid = format!("t{i}");
        }
        let plan = plan_geometry(&frames, Path::new("x")).unwrap();
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("gantry tilt of 20.0°")),
            "{:?}",
            plan.warnings
        );
        // the sheared column keeps slice positions exact
        let p = geometry::apply(&plan.patient_from_voxel, [0.0, 0.0, 2.0]);
        assert!((p[2] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn dicomdir_is_read_and_not_listed_as_an_image() {
        use dicom_core::value::DataSetSequence;
        use dicom_core::{DataElement, PrimitiveValue, VR};
        use dicom_object::FileMetaTableBuilder;
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/dicom2nifti_tests/tests/data/anatomical/001");
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut records = Vec::new();
        for (i, f) in names.iter().enumerate() {
            std::fs::copy(f, images.join(format!("im{i}"))).unwrap();
            let mut rec = InMemDicomObject::new_empty();
            rec.put(DataElement::new(
                tags::DIRECTORY_RECORD_TYPE,
                VR::CS,
                PrimitiveValue::from("IMAGE"),
            ));
            // DICOMDIR file ids are upper case; the files on disk are not
            rec.put(DataElement::new(
                tags::REFERENCED_FILE_ID,
                VR::CS,
                PrimitiveValue::from(format!("IMAGES\\IM{i}")),
            ));
            records.push(rec);
        }
        let mut dd = InMemDicomObject::new_empty();
        dd.put(DataElement::new(
            tags::FILE_SET_ID,
            VR::CS,
            PrimitiveValue::from("LUMEN"),
        ));
        dd.put(DataElement::new(
            tags::DIRECTORY_RECORD_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(records),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(MEDIA_STORAGE_DIRECTORY)
            .media_storage_sop_instance_uid("2.25.1")
            .transfer_syntax("1.2.840.10008.1.2.1");
        dd.with_meta(meta)
            .unwrap()
            .write_to_file(dir.path().join("DICOMDIR"))
            .unwrap();
        let listed = dicomdir_files(&dir.path().join("DICOMDIR"))
            .unwrap()
            .unwrap();
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|p| p.exists()), "{listed:?}");
        let d = discover(dir.path()).unwrap();
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        assert_eq!(d.series.len(), 1);
        assert_eq!(
            d.series[0].slice_count, 4,
            "files found twice (walk + DICOMDIR)"
        );
        assert_eq!(load_series(&d.series[0]).unwrap().dims, [256, 256, 4]);
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("lumen-study-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("junk.dcm");
        std::fs::write(&p, b"this is not dicom").unwrap();
        let e = load_file(&p).unwrap_err().to_string();
        assert!(e.contains("junk.dcm") && e.contains("cannot read"), "{e}");
        let d = discover(&dir).unwrap();
        assert!(d.series.is_empty());
        assert_eq!(d.problems.len(), 1);
        assert_eq!(d.problems[0].reason, "not a DICOM file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
