//! Benchmark and test fixtures made from real slices.

use super::guards::open_full;
use crate::{Result, StudyError};
use dicom_dictionary_std::tags;
use std::path::Path;

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
