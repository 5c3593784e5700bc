//! Frame headers: what each frame of a file says about its place, size and pixel encoding.

use super::FrameHeader;
use super::attrs::{
    arr2, arr3, arr6, first_item, get_f64, get_f64s, get_int, get_str, group_attr, study_meta,
    window_of,
};
use super::discovery::is_directory;
use super::guards::{check_pixel_data, check_plausible_size, check_values, open_header};
use crate::{Modality, Result, StudyError, StudyMeta};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::path::Path;

/// Frame headers of one opened file: one per frame (enhanced multi-frame objects carry per-frame
/// geometry in their functional groups).
pub(super) fn frame_headers(path: &Path, file: &DefaultDicomObject) -> Result<Vec<FrameHeader>> {
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
    let base = file_header(path, file, rows as u16, columns as u16);
    if frames == 1
        && obj
            .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .is_none()
    {
        check_values(path, &base)?;
        return Ok(vec![base]);
    }
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame: Option<&[InMemDicomObject]> = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items());
    let mut out = Vec::with_capacity(frames as usize);
    for f in 0..frames as usize {
        let mut h = base.clone();
        h.frame = Some(f as u32);
        apply_functional_groups(&mut h, per_frame.and_then(|items| items.get(f)), shared);
        check_values(path, &h)?;
        out.push(h);
    }
    Ok(out)
}

/// The header a file's own attributes give every frame (size already checked).
fn file_header(path: &Path, file: &DefaultDicomObject, rows: u16, columns: u16) -> FrameHeader {
    let obj: &InMemDicomObject = file;
    FrameHeader {
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
        rows,
        columns,
        instance_number: get_int(obj, tags::INSTANCE_NUMBER),
        slope: get_f64(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: get_f64(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        intercept_given: get_f64(obj, tags::RESCALE_INTERCEPT).is_some(),
        window: window_of(obj),
        echo: get_str(obj, tags::ECHO_NUMBERS).unwrap_or_default(),
        temporal: get_str(obj, tags::TEMPORAL_POSITION_IDENTIFIER).unwrap_or_default(),
        stack: String::new(),
        slice_thickness: get_f64(obj, tags::SLICE_THICKNESS),
        spacing_between_slices: get_f64(obj, tags::SPACING_BETWEEN_SLICES),
        gantry_tilt: get_f64(obj, tags::GANTRY_DETECTOR_TILT),
        transfer_syntax: file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
    }
}

/// What frame `pf`'s functional groups (or the shared ones) say over the file's attributes:
/// position, orientation, pixel measures, rescale, window, temporal position and stack.
fn apply_functional_groups(
    h: &mut FrameHeader,
    pf: Option<&InMemDicomObject>,
    shared: Option<&InMemDicomObject>,
) {
    if let Some(pos) = group_attr(pf, shared, tags::PLANE_POSITION_SEQUENCE)
        .and_then(|i| get_f64s(i, tags::IMAGE_POSITION_PATIENT))
        .and_then(|v| arr3(&v))
    {
        h.position = Some(pos);
    }
    if let Some(o) = group_attr(pf, shared, tags::PLANE_ORIENTATION_SEQUENCE)
        .and_then(|i| get_f64s(i, tags::IMAGE_ORIENTATION_PATIENT))
        .and_then(|v| arr6(&v))
    {
        h.orientation = Some(o);
    }
    if let Some(m) = group_attr(pf, shared, tags::PIXEL_MEASURES_SEQUENCE) {
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
    if let Some(t) = group_attr(pf, shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
        h.slope = get_f64(t, tags::RESCALE_SLOPE).unwrap_or(h.slope);
        if let Some(intercept) = get_f64(t, tags::RESCALE_INTERCEPT) {
            h.intercept = intercept;
            h.intercept_given = true;
        }
    }
    if let Some(w) = group_attr(pf, shared, tags::FRAME_VOILUT_SEQUENCE).and_then(window_of) {
        h.window = Some(w);
    }
    if let Some(c) = pf.and_then(|p| first_item(p, tags::FRAME_CONTENT_SEQUENCE)) {
        if let Some(t) = get_str(c, tags::TEMPORAL_POSITION_INDEX) {
            h.temporal = t;
        }
        if let Some(s) = get_str(c, tags::STACK_ID) {
            h.stack = s;
        }
    }
}

pub(super) type HeaderSummary = (Vec<FrameHeader>, StudyMeta, String, Modality, Option<i64>);

pub(super) fn read_header_summary(path: &Path) -> Result<HeaderSummary> {
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

pub(super) fn reason_of(e: &StudyError) -> String {
    match e {
        StudyError::Read { reason, .. }
        | StudyError::Unsupported { reason, .. }
        | StudyError::NotAVolume { reason, .. }
        | StudyError::Invalid { reason, .. } => reason.clone(),
        StudyError::Cancelled { .. } => "loading cancelled".into(),
    }
}
