//! DICOM Segmentation (binary, multi-segment, bit-packed frames) writer and reader.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};

use super::{AlgorithmType, Code, ExportError, Result, Segment, new_uid, write_atomic};
use lumen_study::geometry;
use lumen_study::{LabelVolume, Volume};

/// SOP Class UID of Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLEMENTATION_CLASS_UID: &str = "2.25.223842964716394712871293645791620374461";

const SEGMENT_SEQUENCE: Tag = Tag(0x0062, 0x0002);
const SEGMENT_NUMBER: Tag = Tag(0x0062, 0x0004);
const SEGMENT_LABEL: Tag = Tag(0x0062, 0x0005);
const SEGMENT_ALGORITHM_TYPE: Tag = Tag(0x0062, 0x0008);
const SEGMENT_ALGORITHM_NAME: Tag = Tag(0x0062, 0x0009);
const SEGMENTATION_ALGORITHM_ID_SEQ: Tag = Tag(0x0062, 0x0007);
const SEGMENT_IDENTIFICATION_SEQ: Tag = Tag(0x0062, 0x000A);
const REFERENCED_SEGMENT_NUMBER: Tag = Tag(0x0062, 0x000B);
const RECOMMENDED_CIELAB: Tag = Tag(0x0062, 0x000D);
const CATEGORY_CODE_SEQ: Tag = Tag(0x0062, 0x0003);
const TYPE_CODE_SEQ: Tag = Tag(0x0062, 0x000F);
const TYPE_MODIFIER_CODE_SEQ: Tag = Tag(0x0062, 0x0011);
const SEGMENTATION_TYPE: Tag = Tag(0x0062, 0x0001);
const MAX_FRACTIONAL_VALUE: Tag = Tag(0x0062, 0x000E);
const ALGORITHM_FAMILY_CODE_SEQ: Tag = Tag(0x0066, 0x002F);
const ALGORITHM_NAME: Tag = Tag(0x0066, 0x0036);
const ALGORITHM_VERSION: Tag = Tag(0x0066, 0x0031);
const PER_FRAME_FG: Tag = Tag(0x5200, 0x9230);
const SHARED_FG: Tag = Tag(0x5200, 0x9229);
const PLANE_POSITION_SEQ: Tag = Tag(0x0020, 0x9113);
const PLANE_ORIENTATION_SEQ: Tag = Tag(0x0020, 0x9116);
const PIXEL_MEASURES_SEQ: Tag = Tag(0x0028, 0x9110);
const FRAME_CONTENT_SEQ: Tag = Tag(0x0020, 0x9111);
const DIMENSION_INDEX_VALUES: Tag = Tag(0x0020, 0x9157);
const DIMENSION_ORGANIZATION_SEQ: Tag = Tag(0x0020, 0x9221);
const DIMENSION_ORGANIZATION_UID: Tag = Tag(0x0020, 0x9164);
const DIMENSION_INDEX_SEQ: Tag = Tag(0x0020, 0x9222);
const DIMENSION_INDEX_POINTER: Tag = Tag(0x0020, 0x9165);
const FUNCTIONAL_GROUP_POINTER: Tag = Tag(0x0020, 0x9167);
const DIMENSION_DESCRIPTION_LABEL: Tag = Tag(0x0020, 0x9421);
const DIMENSION_ORGANIZATION_TYPE: Tag = Tag(0x0020, 0x9311);
const DERIVATION_IMAGE_SEQ: Tag = Tag(0x0008, 0x9124);
const SOURCE_IMAGE_SEQ: Tag = Tag(0x0008, 0x2112);
const DERIVATION_CODE_SEQ: Tag = Tag(0x0008, 0x9215);
const PURPOSE_OF_REFERENCE_CODE_SEQ: Tag = Tag(0x0040, 0xA170);
const REFERENCED_SERIES_SEQ: Tag = Tag(0x0008, 0x1115);
const REFERENCED_INSTANCE_SEQ: Tag = Tag(0x0008, 0x114A);

/// What to record about how the segmentation was made.
#[derive(Debug, Clone, PartialEq)]
pub struct SegOptions {
    /// Algorithm name (Segment Algorithm Name), e.g. "Lumen SAM".
    pub algorithm_name: String,
    /// Algorithm version: the model (name + precision), e.g. "lumen-starter int8".
    pub algorithm_version: String,
    /// Series Description of the new SEG series.
    pub series_description: String,
    /// Series Number of the new SEG series.
    pub series_number: i32,
    /// Content Creator's Name (the radiologist), may be empty.
    pub content_creator: String,
}

impl Default for SegOptions {
    fn default() -> Self {
        Self {
            algorithm_name: "Lumen SAM".into(),
            algorithm_version: "unknown model".into(),
            series_description: "Lumen segmentation".into(),
            series_number: 901,
            content_creator: String::new(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SegSummary {
    /// SOP Instance UID of the SEG object.
    pub sop_instance_uid: String,
    /// Series Instance UID of the new SEG series.
    pub series_instance_uid: String,
    /// Number of frames (one per segment and slice holding that segment).
    pub frames: usize,
    /// Segments written (segments with no voxels are left out).
    pub segments: Vec<u16>,
    /// Things the user should know (missing source UIDs replaced, …).
    pub warnings: Vec<String>,
}

fn s(obj: &mut InMemDicomObject, tag: Tag, vr: VR, v: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

fn seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A decimal string of at most 16 characters.
fn ds(v: f64) -> String {
    let v = if v.abs() < 1e-12 { 0.0 } else { v };
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    for prec in (0..=15).rev() {
        let t = format!("{v:.prec$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        if t.len() <= 16 {
            return t;
        }
    }
    format!("{v:.6e}")
}

fn ds_multi(v: &[f64]) -> String {
    v.iter().map(|&x| ds(x)).collect::<Vec<_>>().join("\\")
}

fn code_item(c: &Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    s(&mut o, tags::CODE_VALUE, VR::SH, &c.value);
    s(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, &c.scheme);
    s(&mut o, tags::CODE_MEANING, VR::LO, &c.meaning);
    o
}

/// sRGB (0..255) → DICOM scaled CIELab (0..65535), D65.
pub fn rgb_to_dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(rgb[0]), lin(rgb[1]), lin(rgb[2]));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let l = 116.0 * f(y) - 16.0;
    let a = 500.0 * (f(x) - f(y));
    let bb = 200.0 * (f(y) - f(z));
    [
        (l / 100.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((a + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((bb + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
    ]
}

/// DICOM scaled CIELab → sRGB.
pub fn dicom_lab_to_rgb(lab: [u16; 3]) -> [u8; 3] {
    let l = f64::from(lab[0]) / 65535.0 * 100.0;
    let a = f64::from(lab[1]) / 65535.0 * 255.0 - 128.0;
    let b = f64::from(lab[2]) / 65535.0 * 255.0 - 128.0;
    let fy = (l + 16.0) / 116.0;
    let fx = fy + a / 500.0;
    let fz = fy - b / 200.0;
    let inv = |t: f64| {
        if t.powi(3) > 0.008856 {
            t.powi(3)
        } else {
            (t - 16.0 / 116.0) / 7.787
        }
    };
    let (x, y, z) = (inv(fx) * 0.95047, inv(fy), inv(fz) * 1.08883);
    let r = 3.2406 * x - 1.5372 * y - 0.4986 * z;
    let g = -0.9689 * x + 1.8758 * y + 0.0415 * z;
    let bl = 0.0557 * x - 0.2040 * y + 1.0570 * z;
    let gamma = |c: f64| {
        let c = c.clamp(0.0, 1.0);
        let v = if c <= 0.0031308 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (v * 255.0).round().clamp(0.0, 255.0) as u8
    };
    [gamma(r), gamma(g), gamma(bl)]
}

fn dicom_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, (rem % 3600) / 60, rem % 60),
    )
}

/// Write a binary DICOM SEG of `labels` (on the grid of `volume`, a DICOM series) to `path`.
///
/// One frame per segment and slice that holds it; bits packed LSB-first across frames; per-frame
/// plane position and source-image reference; shared orientation and spacing; patient/study copied
/// from the source; new series and SOP instance UIDs.
pub fn write_seg(
    path: &Path,
    volume: &Volume,
    labels: &LabelVolume,
    segments: &[Segment],
    options: &SegOptions,
) -> Result<SegSummary> {
    if labels.dims != volume.dims || labels.labels.len() != volume.voxels.len() {
        return Err(ExportError::mismatch(
            path,
            format!(
                "label map {:?} is not on the volume grid {:?}",
                labels.dims, volume.dims
            ),
        ));
    }
    let [nx, ny, nz] = volume.dims;
    if volume.slices.len() != nz || volume.slices.iter().any(|s| s.sop_instance_uid.is_empty()) {
        return Err(ExportError::invalid(
            path,
            "DICOM SEG needs a DICOM source series (a SOP instance for every slice)",
        ));
    }
    let mut warnings = Vec::new();
    let mut st = volume.study.clone();
    if st.study_instance_uid.is_empty() {
        st.study_instance_uid = new_uid();
        warnings
            .push("the source has no Study Instance UID: the SEG was given a new one".to_string());
    }
    if st.series_instance_uid.is_empty() {
        st.series_instance_uid = new_uid();
        warnings.push(
            "the source has no Series Instance UID: the SEG references a new one".to_string(),
        );
    }
    let st = &st;
    if nx > usize::from(u16::MAX) || ny > usize::from(u16::MAX) {
        return Err(ExportError::invalid(path, "image too large for DICOM"));
    }
    let plane = nx * ny;

    // which (segment, slice) pairs hold voxels
    let mut by_label: BTreeMap<u16, &Segment> = BTreeMap::new();
    for seg in segments {
        if seg.label == 0 {
            return Err(ExportError::invalid(
                path,
                format!("segment '{}' has label 0 (background)", seg.name),
            ));
        }
        if by_label.insert(seg.label, seg).is_some() {
            return Err(ExportError::invalid(
                path,
                format!("label {} is used by two segments", seg.label),
            ));
        }
    }
    let mut present: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for z in 0..nz {
        let mut seen: Vec<u16> = labels.labels[z * plane..(z + 1) * plane].to_vec();
        seen.sort_unstable();
        seen.dedup();
        for l in seen.into_iter().filter(|&l| l != 0) {
            if by_label.contains_key(&l) {
                present.entry(l).or_default().push(z);
            }
        }
    }
    if present.is_empty() {
        return Err(ExportError::invalid(
            path,
            "nothing to export: no segment has any voxel",
        ));
    }
    // segment numbers are 1..n in label order
    let numbered: Vec<(u16, u16)> = present
        .keys()
        .enumerate()
        .map(|(i, &l)| ((i + 1) as u16, l))
        .collect();

    let sop_uid = new_uid();
    let series_uid = new_uid();
    let (date, time) = dicom_now();
    let mut o = InMemDicomObject::new_empty();
    s(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    s(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    s(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    s(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    s(&mut o, tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE);
    s(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
    s(&mut o, tags::STUDY_DATE, VR::DA, &st.study_date);
    s(&mut o, tags::SERIES_DATE, VR::DA, &date);
    s(&mut o, tags::CONTENT_DATE, VR::DA, &date);
    s(&mut o, tags::STUDY_TIME, VR::TM, &st.study_time);
    s(&mut o, tags::SERIES_TIME, VR::TM, &time);
    s(&mut o, tags::CONTENT_TIME, VR::TM, &time);
    s(&mut o, tags::ACCESSION_NUMBER, VR::SH, &st.accession_number);
    s(&mut o, tags::MODALITY, VR::CS, "SEG");
    s(&mut o, tags::MANUFACTURER, VR::LO, "Lumen");
    s(
        &mut o,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &st.referring_physician_name,
    );
    s(
        &mut o,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        &st.study_description,
    );
    s(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &options.series_description,
    );
    s(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, "Lumen");
    // Referenced Series Sequence: the source instances
    {
        let mut instances = Vec::with_capacity(nz);
        for sl in &volume.slices {
            let mut i = InMemDicomObject::new_empty();
            s(
                &mut i,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                &sl.sop_class_uid,
            );
            s(
                &mut i,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                &sl.sop_instance_uid,
            );
            instances.push(i);
        }
        instances.dedup_by(|a, b| {
            a.get(tags::REFERENCED_SOP_INSTANCE_UID)
                .and_then(|e| e.to_str().ok())
                == b.get(tags::REFERENCED_SOP_INSTANCE_UID)
                    .and_then(|e| e.to_str().ok())
        });
        let mut series_item = InMemDicomObject::new_empty();
        seq(&mut series_item, REFERENCED_INSTANCE_SEQ, instances);
        s(
            &mut series_item,
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            &st.series_instance_uid,
        );
        seq(&mut o, REFERENCED_SERIES_SEQ, vec![series_item]);
    }
    s(&mut o, tags::PATIENT_NAME, VR::PN, &st.patient_name);
    s(&mut o, tags::PATIENT_ID, VR::LO, &st.patient_id);
    s(
        &mut o,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &st.patient_birth_date,
    );
    s(&mut o, tags::PATIENT_SEX, VR::CS, &st.patient_sex);
    s(&mut o, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    s(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    s(
        &mut o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &st.study_instance_uid,
    );
    s(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
    s(&mut o, tags::STUDY_ID, VR::SH, &st.study_id);
    s(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        &options.series_number.to_string(),
    );
    s(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    let frame_of_ref = if st.frame_of_reference_uid.is_empty() {
        new_uid()
    } else {
        st.frame_of_reference_uid.clone()
    };
    s(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_ref);
    s(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    // Dimensions: segment number, then plane position
    let dim_org_uid = new_uid();
    {
        let mut org = InMemDicomObject::new_empty();
        s(&mut org, DIMENSION_ORGANIZATION_UID, VR::UI, &dim_org_uid);
        seq(&mut o, DIMENSION_ORGANIZATION_SEQ, vec![org]);
        s(&mut o, DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D");
        let mut d1 = InMemDicomObject::new_empty();
        s(&mut d1, DIMENSION_ORGANIZATION_UID, VR::UI, &dim_org_uid);
        d1.put(DataElement::new(
            DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::from(REFERENCED_SEGMENT_NUMBER),
        ));
        d1.put(DataElement::new(
            FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::from(SEGMENT_IDENTIFICATION_SEQ),
        ));
        s(
            &mut d1,
            DIMENSION_DESCRIPTION_LABEL,
            VR::LO,
            "ReferencedSegmentNumber",
        );
        let mut d2 = InMemDicomObject::new_empty();
        s(&mut d2, DIMENSION_ORGANIZATION_UID, VR::UI, &dim_org_uid);
        d2.put(DataElement::new(
            DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::from(tags::IMAGE_POSITION_PATIENT),
        ));
        d2.put(DataElement::new(
            FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::from(PLANE_POSITION_SEQ),
        ));
        s(
            &mut d2,
            DIMENSION_DESCRIPTION_LABEL,
            VR::LO,
            "ImagePositionPatient",
        );
        seq(&mut o, DIMENSION_INDEX_SEQ, vec![d1, d2]);
    }
    o.put(DataElement::new(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    s(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    let total_frames: usize = present.values().map(Vec::len).sum();
    s(
        &mut o,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        &total_frames.to_string(),
    );
    o.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(ny as u16),
    ));
    o.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(nx as u16),
    ));
    o.put(DataElement::new(
        tags::BITS_ALLOCATED,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    o.put(DataElement::new(
        tags::BITS_STORED,
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    o.put(DataElement::new(
        tags::HIGH_BIT,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    o.put(DataElement::new(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    s(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    s(&mut o, tags::CONTENT_LABEL, VR::CS, "LUMEN");
    s(
        &mut o,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "Segmentation made with Lumen",
    );
    s(
        &mut o,
        tags::CONTENT_CREATOR_NAME,
        VR::PN,
        &options.content_creator,
    );
    s(&mut o, SEGMENTATION_TYPE, VR::CS, "BINARY");

    // Segment Sequence
    let mut seg_items = Vec::new();
    for &(number, label) in &numbered {
        let Some(seg) = by_label.get(&label) else {
            continue;
        };
        let mut it = InMemDicomObject::new_empty();
        seq(&mut it, CATEGORY_CODE_SEQ, vec![code_item(&seg.category)]);
        it.put(DataElement::new(
            SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::from(number),
        ));
        s(&mut it, SEGMENT_LABEL, VR::LO, &seg.name);
        s(
            &mut it,
            SEGMENT_ALGORITHM_TYPE,
            VR::CS,
            seg.algorithm_type.as_dicom(),
        );
        if seg.algorithm_type != AlgorithmType::Manual {
            s(
                &mut it,
                SEGMENT_ALGORITHM_NAME,
                VR::LO,
                &options.algorithm_name,
            );
            let mut alg = InMemDicomObject::new_empty();
            seq(
                &mut alg,
                ALGORITHM_FAMILY_CODE_SEQ,
                vec![code_item(&Code {
                    value: "123110".into(),
                    scheme: "DCM".into(),
                    meaning: "Artificial Intelligence".into(),
                })],
            );
            s(
                &mut alg,
                ALGORITHM_VERSION,
                VR::LO,
                &options.algorithm_version,
            );
            // (0024,0202) LO; (0066,0032) is Algorithm Parameters, an LT
            s(&mut alg, tags::ALGORITHM_SOURCE, VR::LO, "Lumen");
            s(&mut alg, ALGORITHM_NAME, VR::LO, &options.algorithm_name);
            seq(&mut it, SEGMENTATION_ALGORITHM_ID_SEQ, vec![alg]);
        }
        let lab = rgb_to_dicom_lab(seg.color);
        it.put(DataElement::new(
            RECOMMENDED_CIELAB,
            VR::US,
            PrimitiveValue::from(lab),
        ));
        let mut ty = code_item(&seg.property_type);
        if let Some(m) = &seg.type_modifier {
            seq(&mut ty, TYPE_MODIFIER_CODE_SEQ, vec![code_item(m)]);
        }
        seq(&mut it, TYPE_CODE_SEQ, vec![ty]);
        seg_items.push(it);
    }
    seq(&mut o, SEGMENT_SEQUENCE, seg_items);

    // Shared functional groups: orientation + spacing
    let m = &volume.patient_from_voxel;
    let row_dir = geometry::normalize(geometry::column(m, 0));
    let col_dir = geometry::normalize(geometry::column(m, 1));
    {
        let mut shared = InMemDicomObject::new_empty();
        let mut orient = InMemDicomObject::new_empty();
        s(
            &mut orient,
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            &ds_multi(&[
                row_dir[0], row_dir[1], row_dir[2], col_dir[0], col_dir[1], col_dir[2],
            ]),
        );
        seq(&mut shared, PLANE_ORIENTATION_SEQ, vec![orient]);
        let mut meas = InMemDicomObject::new_empty();
        s(
            &mut meas,
            tags::SLICE_THICKNESS,
            VR::DS,
            &ds(volume.spacing[2]),
        );
        s(
            &mut meas,
            tags::SPACING_BETWEEN_SLICES,
            VR::DS,
            &ds(volume.spacing[2]),
        );
        s(
            &mut meas,
            tags::PIXEL_SPACING,
            VR::DS,
            &ds_multi(&[volume.spacing[1], volume.spacing[0]]),
        );
        seq(&mut shared, PIXEL_MEASURES_SEQ, vec![meas]);
        seq(&mut o, SHARED_FG, vec![shared]);
    }

    // Per-frame functional groups + pixel data
    let total_bits = total_frames * plane;
    let mut bits = vec![0u8; total_bits.div_ceil(8) + usize::from(total_bits.div_ceil(8) % 2 == 1)];
    let mut per_frame = Vec::with_capacity(total_frames);
    let mut frame_idx = 0usize;
    for &(number, label) in &numbered {
        for &z in present.get(&label).map(Vec::as_slice).unwrap_or(&[]) {
            let sl = &volume.slices[z];
            let mut fg = InMemDicomObject::new_empty();
            // derivation: source image
            let mut src = InMemDicomObject::new_empty();
            s(
                &mut src,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                &sl.sop_class_uid,
            );
            s(
                &mut src,
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                &sl.sop_instance_uid,
            );
            if let Some(f) = sl.frame {
                s(
                    &mut src,
                    tags::REFERENCED_FRAME_NUMBER,
                    VR::IS,
                    &(f + 1).to_string(),
                );
            }
            seq(
                &mut src,
                PURPOSE_OF_REFERENCE_CODE_SEQ,
                vec![code_item(&Code {
                    value: "121322".into(),
                    scheme: "DCM".into(),
                    meaning: "Source image for image processing operation".into(),
                })],
            );
            let mut deriv = InMemDicomObject::new_empty();
            seq(
                &mut deriv,
                DERIVATION_CODE_SEQ,
                vec![code_item(&Code {
                    value: "113076".into(),
                    scheme: "DCM".into(),
                    meaning: "Segmentation".into(),
                })],
            );
            seq(&mut deriv, SOURCE_IMAGE_SEQ, vec![src]);
            seq(&mut fg, DERIVATION_IMAGE_SEQ, vec![deriv]);
            let mut content = InMemDicomObject::new_empty();
            content.put(DataElement::new(
                DIMENSION_INDEX_VALUES,
                VR::UL,
                PrimitiveValue::from([u32::from(number), (z + 1) as u32]),
            ));
            seq(&mut fg, FRAME_CONTENT_SEQ, vec![content]);
            let mut pos = InMemDicomObject::new_empty();
            s(
                &mut pos,
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                &ds_multi(&sl.position),
            );
            seq(&mut fg, PLANE_POSITION_SEQ, vec![pos]);
            let mut ident = InMemDicomObject::new_empty();
            ident.put(DataElement::new(
                REFERENCED_SEGMENT_NUMBER,
                VR::US,
                PrimitiveValue::from(number),
            ));
            seq(&mut fg, SEGMENT_IDENTIFICATION_SEQ, vec![ident]);
            per_frame.push(fg);
            // pack bits
            let base = frame_idx * plane;
            for (i, &l) in labels.labels[z * plane..(z + 1) * plane].iter().enumerate() {
                if l == label {
                    let bit = base + i;
                    bits[bit / 8] |= 1 << (bit % 8);
                }
            }
            frame_idx += 1;
        }
    }
    seq(&mut o, PER_FRAME_FG, per_frame);
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(bits),
    ));

    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(SEGMENTATION_STORAGE)
        .media_storage_sop_instance_uid(sop_uid.as_str())
        .transfer_syntax(EXPLICIT_VR_LE)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name("LUMEN_0_1")
        .build()
        .map_err(|e| ExportError::write(path, format!("file meta: {e}")))?;
    let file = o.with_exact_meta(meta);
    write_atomic(path, |w| {
        file.write_all(w)
            .map_err(|e| std::io::Error::other(super::with_causes(&e)))
    })?;
    Ok(SegSummary {
        sop_instance_uid: sop_uid,
        series_instance_uid: series_uid,
        frames: total_frames,
        segments: numbered.iter().map(|&(_, l)| l).collect(),
        warnings,
    })
}

// ---------------------------------------------------------------------------------------------
// reading

fn get_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

fn first_item(obj: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    obj.get(tag).and_then(|e| e.items()).and_then(|i| i.first())
}

fn read_code(obj: &InMemDicomObject, tag: Tag) -> Option<Code> {
    let item = first_item(obj, tag)?;
    Some(Code {
        value: get_str(item, tags::CODE_VALUE).unwrap_or_default(),
        scheme: get_str(item, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        meaning: get_str(item, tags::CODE_MEANING).unwrap_or_default(),
    })
}

/// Read a DICOM SEG back onto `volume` (the study it was made on): label values are the segment
/// numbers mapped to the returned segments' labels; frames are placed by their source-image
/// reference, else by their plane position.
pub fn read_seg(path: &Path, volume: &Volume) -> Result<(LabelVolume, Vec<Segment>)> {
    let file = OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| ExportError::read(path, format!("not a readable DICOM file ({e})")))?;
    let obj: &InMemDicomObject = &file;
    let sop_class = get_str(obj, tags::SOP_CLASS_UID).unwrap_or_default();
    if sop_class != SEGMENTATION_STORAGE {
        return Err(ExportError::read(
            path,
            format!("not a DICOM SEG (SOP Class {sop_class})"),
        ));
    }
    let seg_type = get_str(obj, SEGMENTATION_TYPE).unwrap_or_default();
    if seg_type != "BINARY" {
        let max = obj
            .get(MAX_FRACTIONAL_VALUE)
            .and_then(|e| e.to_int::<u32>().ok());
        return Err(ExportError::read(
            path,
            format!(
                "Segmentation Type '{seg_type}' (max fractional value {max:?}) is not supported; only BINARY"
            ),
        ));
    }
    let int = |t: Tag| obj.get(t).and_then(|e| e.to_int::<i64>().ok());
    let rows = int(tags::ROWS).unwrap_or(0) as usize;
    let cols = int(tags::COLUMNS).unwrap_or(0) as usize;
    let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
    let [nx, ny, nz] = volume.dims;
    if rows != ny || cols != nx {
        return Err(ExportError::mismatch(
            path,
            format!("SEG frames are {cols}×{rows}, the study slices {nx}×{ny}"),
        ));
    }
    if int(tags::BITS_ALLOCATED) != Some(1) {
        return Err(ExportError::read(
            path,
            "binary SEG must have Bits Allocated = 1",
        ));
    }
    let plane = nx * ny;
    let data = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| ExportError::read(path, "no Pixel Data"))?;
    if data.len() * 8 < frames * plane {
        return Err(ExportError::read(
            path,
            format!(
                "Pixel Data holds {} bits, {frames} frames need {}",
                data.len() * 8,
                frames * plane
            ),
        ));
    }

    // segments
    let mut segments = Vec::new();
    let mut number_to_label: BTreeMap<u16, u16> = BTreeMap::new();
    for item in obj
        .get(SEGMENT_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[])
    {
        let number = item
            .get(SEGMENT_NUMBER)
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(0);
        if number == 0 {
            return Err(ExportError::read(path, "segment without Segment Number"));
        }
        let name = get_str(item, SEGMENT_LABEL).unwrap_or_else(|| format!("Segment {number}"));
        let mut seg = Segment::new(number, &name);
        if let Some(c) = read_code(item, CATEGORY_CODE_SEQ) {
            seg.category = c;
        }
        if let Some(c) = read_code(item, TYPE_CODE_SEQ) {
            seg.property_type = c;
            seg.type_modifier =
                first_item(item, TYPE_CODE_SEQ).and_then(|t| read_code(t, TYPE_MODIFIER_CODE_SEQ));
        }
        if let Some(lab) = item
            .get(RECOMMENDED_CIELAB)
            .and_then(|e| e.to_multi_int::<u16>().ok())
            && lab.len() == 3
        {
            seg.color = dicom_lab_to_rgb([lab[0], lab[1], lab[2]]);
        }
        seg.algorithm_type =
            AlgorithmType::from_dicom(&get_str(item, SEGMENT_ALGORITHM_TYPE).unwrap_or_default());
        number_to_label.insert(number, number);
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err(ExportError::read(path, "no segments in Segment Sequence"));
    }

    // frame placement
    let by_uid: BTreeMap<(&str, Option<u32>), usize> = volume
        .slices
        .iter()
        .enumerate()
        .map(|(z, s)| ((s.sop_instance_uid.as_str(), s.frame), z))
        .collect();
    let inv = geometry::inverse(&volume.patient_from_voxel)
        .ok_or_else(|| ExportError::mismatch(path, "the study geometry is singular"))?;
    let shared = first_item(obj, SHARED_FG);
    let per_frame = obj.get(PER_FRAME_FG).and_then(|e| e.items()).unwrap_or(&[]);
    if per_frame.len() != frames {
        return Err(ExportError::read(
            path,
            format!(
                "{} per-frame functional groups for {frames} frames",
                per_frame.len()
            ),
        ));
    }
    // orientation check
    let orient = shared
        .and_then(|s| first_item(s, PLANE_ORIENTATION_SEQ))
        .or_else(|| {
            per_frame
                .first()
                .and_then(|f| first_item(f, PLANE_ORIENTATION_SEQ))
        })
        .and_then(|o| o.get(tags::IMAGE_ORIENTATION_PATIENT))
        .and_then(|e| e.to_multi_float64().ok());
    if let Some(o) = orient {
        let m = &volume.patient_from_voxel;
        let r = geometry::normalize(geometry::column(m, 0));
        let c = geometry::normalize(geometry::column(m, 1));
        let want = [r[0], r[1], r[2], c[0], c[1], c[2]];
        if o.len() != 6 || o.iter().zip(want.iter()).any(|(a, b)| (a - b).abs() > 1e-3) {
            return Err(ExportError::mismatch(
                path,
                format!("SEG orientation {o:?} differs from the study {want:?}"),
            ));
        }
    }
    let mut out = LabelVolume {
        dims: volume.dims,
        labels: vec![0; volume.voxels.len()],
        patient_from_voxel: volume.patient_from_voxel,
    };
    let mut overlaps = 0usize;
    for (f, fg) in per_frame.iter().enumerate() {
        let number = first_item(fg, SEGMENT_IDENTIFICATION_SEQ)
            .or_else(|| shared.and_then(|s| first_item(s, SEGMENT_IDENTIFICATION_SEQ)))
            .and_then(|i| i.get(REFERENCED_SEGMENT_NUMBER))
            .and_then(|e| e.to_int::<u16>().ok())
            .ok_or_else(|| {
                ExportError::read(
                    path,
                    format!("frame {} has no Referenced Segment Number", f + 1),
                )
            })?;
        let label = *number_to_label.get(&number).ok_or_else(|| {
            ExportError::read(
                path,
                format!("frame {} refers to unknown segment {number}", f + 1),
            )
        })?;
        // by source image reference
        let src =
            first_item(fg, DERIVATION_IMAGE_SEQ).and_then(|d| first_item(d, SOURCE_IMAGE_SEQ));
        let mut z = src.and_then(|s| {
            let uid = get_str(s, tags::REFERENCED_SOP_INSTANCE_UID)?;
            let frame = s
                .get(tags::REFERENCED_FRAME_NUMBER)
                .and_then(|e| e.to_int::<u32>().ok())
                .map(|n| n.saturating_sub(1));
            by_uid.get(&(uid.as_str(), frame)).copied()
        });
        // else by plane position
        if z.is_none() {
            let pos = first_item(fg, PLANE_POSITION_SEQ)
                .and_then(|p| p.get(tags::IMAGE_POSITION_PATIENT))
                .and_then(|e| e.to_multi_float64().ok())
                .filter(|v| v.len() == 3)
                .ok_or_else(|| {
                    ExportError::read(
                        path,
                        format!("frame {} has no position or source reference", f + 1),
                    )
                })?;
            let idx = geometry::apply(&inv, [pos[0], pos[1], pos[2]]);
            let zr = idx[2].round();
            if idx[0].abs() > 1e-2
                || idx[1].abs() > 1e-2
                || (idx[2] - zr).abs() > 0.05
                || zr < 0.0
                || zr >= nz as f64
            {
                return Err(ExportError::mismatch(
                    path,
                    format!(
                        "frame {} at {pos:?} does not lie on a slice of the study",
                        f + 1
                    ),
                ));
            }
            z = Some(zr as usize);
        }
        let z = z.unwrap_or(0);
        let base = f * plane;
        let dst = &mut out.labels[z * plane..(z + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            let bit = base + i;
            if data[bit / 8] >> (bit % 8) & 1 == 1 {
                if *d != 0 && *d != label {
                    overlaps += 1;
                }
                *d = label;
            }
        }
    }
    let _ = overlaps;
    Ok((out, segments))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_16_chars() {
        assert_eq!(ds(0.5), "0.5");
        assert_eq!(ds(-249.51171875), "-249.51171875");
        let t = ds(-0.26723837607830001);
        assert!(
            t.len() <= 16 && (t.parse::<f64>().unwrap() + 0.267238376078).abs() < 1e-10,
            "{t}"
        );
        assert!(ds(1.0e-20) == "0");
    }

    #[test]
    fn colours_round_trip_through_cielab() {
        for c in [
            [221u8, 130, 101],
            [0, 151, 206],
            [255, 255, 255],
            [0, 0, 0],
            [244, 214, 49],
        ] {
            let back = dicom_lab_to_rgb(rgb_to_dicom_lab(c));
            for k in 0..3 {
                assert!(
                    (i32::from(back[k]) - i32::from(c[k])).abs() <= 1,
                    "{c:?} -> {back:?}"
                );
            }
        }
    }
}
