//! Reading attribute values out of a data set: trimmed strings, finite numbers, first items of
//! sequences, functional-group lookups, the patient and study attributes.

use crate::{StudyMeta, Window};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// SOP Class UID of a DICOMDIR (Media Storage Directory Storage).
pub(super) const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

/// A string attribute without its padding; None when absent or empty.
pub fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}

pub(super) fn get_f64s(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| !v.is_empty() && v.iter().all(|x| x.is_finite()))
}

pub(super) fn get_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    get_f64s(obj, tag).and_then(|v| v.first().copied())
}

pub(super) fn get_int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

/// The first item of a sequence attribute.
pub fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
}

pub(super) fn arr3(v: &[f64]) -> Option<[f64; 3]> {
    (v.len() >= 3).then(|| [v[0], v[1], v[2]])
}

pub(super) fn arr6(v: &[f64]) -> Option<[f64; 6]> {
    (v.len() >= 6).then(|| [v[0], v[1], v[2], v[3], v[4], v[5]])
}

pub(super) fn arr2(v: &[f64]) -> Option<[f64; 2]> {
    (v.len() >= 2).then(|| [v[0], v[1]])
}

/// Look an attribute up in a functional group: per-frame item first, then shared, then top level.
pub(super) fn group_attr<'a>(
    per_frame: Option<&'a InMemDicomObject>,
    shared: Option<&'a InMemDicomObject>,
    seq: Tag,
) -> Option<&'a InMemDicomObject> {
    per_frame
        .and_then(|f| first_item(f, seq))
        .or_else(|| shared.and_then(|s| first_item(s, seq)))
}

pub(super) fn study_meta(obj: &InMemDicomObject) -> StudyMeta {
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

pub(super) fn window_of(obj: &InMemDicomObject) -> Option<Window> {
    let c = get_f64(obj, tags::WINDOW_CENTER)?;
    let w = get_f64(obj, tags::WINDOW_WIDTH)?;
    (w > 0.0).then_some(Window::new(c, w))
}
