//! Writing a binary DICOM SEG: which frames to write, then one function per module of the IOD.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::{
    EXPLICIT_VR_LE, IMPLEMENTATION_CLASS_UID, SEGMENTATION_STORAGE, SegOptions, SegSummary,
    code_item, dicom_now, ds, ds_multi, rgb_to_dicom_lab, s, seq,
};
use crate::export::{AlgorithmType, Code, ExportError, Result, Segment, new_uid, write_atomic};
use lumen_study::geometry;
use lumen_study::{LabelVolume, StudyMeta, Volume};

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
    let frames = Frames::plan(path, volume, labels, segments)?;
    let (study, warnings) = study_with_uids(&volume.study);
    let sop_uid = new_uid();
    let series_uid = new_uid();
    let mut o = InMemDicomObject::new_empty();
    put_general(&mut o, &study, options, &sop_uid, &series_uid);
    put_references(&mut o, volume, &study);
    put_dimensions(&mut o);
    put_image_pixel(&mut o, volume, frames.count());
    put_segments(&mut o, &frames, options);
    put_shared_groups(&mut o, volume);
    put_frames(&mut o, volume, labels, &frames);

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
            .map_err(|e| std::io::Error::other(crate::export::with_causes(&e)))
    })?;
    Ok(SegSummary {
        sop_instance_uid: sop_uid,
        series_instance_uid: series_uid,
        frames: frames.count(),
        segments: frames.numbered.iter().map(|&(_, l)| l).collect(),
        warnings,
    })
}

/// Which frames the SEG holds: one per segment and slice where the segment has voxels.
struct Frames<'a> {
    by_label: BTreeMap<u16, &'a Segment>,
    /// label → the slices holding it, ascending.
    present: BTreeMap<u16, Vec<usize>>,
    /// (segment number, label): numbers are 1..n in label order.
    numbered: Vec<(u16, u16)>,
}

impl<'a> Frames<'a> {
    /// Checks the inputs (a label map on the volume's grid, a DICOM source, distinct non-zero
    /// labels, something to write) and finds the frames.
    fn plan(
        path: &Path,
        volume: &Volume,
        labels: &LabelVolume,
        segments: &'a [Segment],
    ) -> Result<Self> {
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
        if volume.slices.len() != nz || volume.slices.iter().any(|s| s.sop_instance_uid.is_empty())
        {
            return Err(ExportError::invalid(
                path,
                "DICOM SEG needs a DICOM source series (a SOP instance for every slice)",
            ));
        }
        if nx > usize::from(u16::MAX) || ny > usize::from(u16::MAX) {
            return Err(ExportError::invalid(path, "image too large for DICOM"));
        }
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
        let plane = nx * ny;
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
        let numbered = present
            .keys()
            .enumerate()
            .map(|(i, &l)| ((i + 1) as u16, l))
            .collect();
        Ok(Self {
            by_label,
            present,
            numbered,
        })
    }

    fn count(&self) -> usize {
        self.present.values().map(Vec::len).sum()
    }

    /// (segment number, label, slice) of every frame, in frame order.
    fn each(&self) -> impl Iterator<Item = (u16, u16, usize)> + '_ {
        self.numbered.iter().flat_map(|&(number, label)| {
            let slices = self.present.get(&label).map(Vec::as_slice).unwrap_or(&[]);
            slices.iter().map(move |&z| (number, label, z))
        })
    }
}

/// The source's patient and study attributes, with new UIDs where the source has none.
fn study_with_uids(source: &StudyMeta) -> (StudyMeta, Vec<String>) {
    let mut study = source.clone();
    let mut warnings = Vec::new();
    if study.study_instance_uid.is_empty() {
        study.study_instance_uid = new_uid();
        warnings
            .push("the source has no Study Instance UID: the SEG was given a new one".to_string());
    }
    if study.series_instance_uid.is_empty() {
        study.series_instance_uid = new_uid();
        warnings.push(
            "the source has no Series Instance UID: the SEG references a new one".to_string(),
        );
    }
    (study, warnings)
}

/// SOP common, patient, general study, series and equipment, frame of reference.
fn put_general(
    o: &mut InMemDicomObject,
    st: &StudyMeta,
    options: &SegOptions,
    sop_uid: &str,
    series_uid: &str,
) {
    let (date, time) = dicom_now();
    let frame_of_ref = if st.frame_of_reference_uid.is_empty() {
        new_uid()
    } else {
        st.frame_of_reference_uid.clone()
    };
    let series_number = options.series_number.to_string();
    let strings: &[(dicom_core::Tag, VR, &str)] = &[
        (tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        (tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        (tags::INSTANCE_CREATION_DATE, VR::DA, &date),
        (tags::INSTANCE_CREATION_TIME, VR::TM, &time),
        (tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE),
        (tags::SOP_INSTANCE_UID, VR::UI, sop_uid),
        (tags::STUDY_DATE, VR::DA, &st.study_date),
        (tags::SERIES_DATE, VR::DA, &date),
        (tags::CONTENT_DATE, VR::DA, &date),
        (tags::STUDY_TIME, VR::TM, &st.study_time),
        (tags::SERIES_TIME, VR::TM, &time),
        (tags::CONTENT_TIME, VR::TM, &time),
        (tags::ACCESSION_NUMBER, VR::SH, &st.accession_number),
        (tags::MODALITY, VR::CS, "SEG"),
        (tags::MANUFACTURER, VR::LO, "Lumen"),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &st.referring_physician_name,
        ),
        (tags::STUDY_DESCRIPTION, VR::LO, &st.study_description),
        (
            tags::SERIES_DESCRIPTION,
            VR::LO,
            &options.series_description,
        ),
        (tags::MANUFACTURER_MODEL_NAME, VR::LO, "Lumen"),
        (tags::PATIENT_NAME, VR::PN, &st.patient_name),
        (tags::PATIENT_ID, VR::LO, &st.patient_id),
        (tags::PATIENT_BIRTH_DATE, VR::DA, &st.patient_birth_date),
        (tags::PATIENT_SEX, VR::CS, &st.patient_sex),
        (tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"),
        (tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        (tags::STUDY_INSTANCE_UID, VR::UI, &st.study_instance_uid),
        (tags::SERIES_INSTANCE_UID, VR::UI, series_uid),
        (tags::STUDY_ID, VR::SH, &st.study_id),
        (tags::SERIES_NUMBER, VR::IS, &series_number),
        (tags::INSTANCE_NUMBER, VR::IS, "1"),
        (tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_ref),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        (tags::CONTENT_CREATOR_NAME, VR::PN, &options.content_creator),
    ];
    for &(tag, vr, value) in strings {
        s(o, tag, vr, value);
    }
}

/// Referenced Series Sequence: the source instances, each once.
fn put_references(o: &mut InMemDicomObject, volume: &Volume, st: &StudyMeta) {
    let mut instances: Vec<InMemDicomObject> = Vec::with_capacity(volume.slices.len());
    let mut last_uid: Option<&str> = None;
    for sl in &volume.slices {
        // multi-frame sources list their instance once per frame: consecutive repeats go
        if last_uid == Some(sl.sop_instance_uid.as_str()) {
            continue;
        }
        last_uid = Some(&sl.sop_instance_uid);
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
    let mut series_item = InMemDicomObject::new_empty();
    seq(
        &mut series_item,
        tags::REFERENCED_INSTANCE_SEQUENCE,
        instances,
    );
    s(
        &mut series_item,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &st.series_instance_uid,
    );
    seq(o, tags::REFERENCED_SERIES_SEQUENCE, vec![series_item]);
}

/// Multi-frame dimensions: segment number, then plane position.
fn put_dimensions(o: &mut InMemDicomObject) {
    let dim_org_uid = new_uid();
    let mut org = InMemDicomObject::new_empty();
    s(
        &mut org,
        tags::DIMENSION_ORGANIZATION_UID,
        VR::UI,
        &dim_org_uid,
    );
    seq(o, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org]);
    s(o, tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D");
    let dimension = |index, group, label: &str| {
        let mut d = InMemDicomObject::new_empty();
        s(
            &mut d,
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            &dim_org_uid,
        );
        d.put(DataElement::new(
            tags::DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::from(index),
        ));
        d.put(DataElement::new(
            tags::FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::from(group),
        ));
        s(&mut d, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        d
    };
    let by_segment = dimension(
        tags::REFERENCED_SEGMENT_NUMBER,
        tags::SEGMENT_IDENTIFICATION_SEQUENCE,
        "ReferencedSegmentNumber",
    );
    let by_position = dimension(
        tags::IMAGE_POSITION_PATIENT,
        tags::PLANE_POSITION_SEQUENCE,
        "ImagePositionPatient",
    );
    seq(
        o,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![by_segment, by_position],
    );
}

/// Image pixel and segmentation image modules: 1-bit frames of the slices' size.
fn put_image_pixel(o: &mut InMemDicomObject, volume: &Volume, frames: usize) {
    let [nx, ny, _] = volume.dims;
    let us = [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, ny as u16),
        (tags::COLUMNS, nx as u16),
        (tags::BITS_ALLOCATED, 1),
        (tags::BITS_STORED, 1),
        (tags::HIGH_BIT, 0),
        (tags::PIXEL_REPRESENTATION, 0),
    ];
    for (tag, value) in us {
        o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    s(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    s(o, tags::NUMBER_OF_FRAMES, VR::IS, &frames.to_string());
    s(o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    s(o, tags::CONTENT_LABEL, VR::CS, "LUMEN");
    s(
        o,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "Segmentation made with Lumen",
    );
    s(o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
}

/// Segment Sequence: one item per written segment, with its codes, colour and algorithm.
fn put_segments(o: &mut InMemDicomObject, frames: &Frames, options: &SegOptions) {
    let mut items = Vec::new();
    for &(number, label) in &frames.numbered {
        let Some(seg) = frames.by_label.get(&label) else {
            continue;
        };
        let mut it = InMemDicomObject::new_empty();
        seq(
            &mut it,
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![code_item(&seg.category)],
        );
        it.put(DataElement::new(
            tags::SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::from(number),
        ));
        s(&mut it, tags::SEGMENT_LABEL, VR::LO, &seg.name);
        s(
            &mut it,
            tags::SEGMENT_ALGORITHM_TYPE,
            VR::CS,
            seg.algorithm_type.as_dicom(),
        );
        if seg.algorithm_type != AlgorithmType::Manual {
            put_algorithm(&mut it, options);
        }
        it.put(DataElement::new(
            tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
            VR::US,
            PrimitiveValue::from(rgb_to_dicom_lab(seg.color)),
        ));
        let mut ty = code_item(&seg.property_type);
        if let Some(m) = &seg.type_modifier {
            seq(
                &mut ty,
                tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE,
                vec![code_item(m)],
            );
        }
        seq(
            &mut it,
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![ty],
        );
        items.push(it);
    }
    seq(o, tags::SEGMENT_SEQUENCE, items);
}

/// The model that made a segment: its name, family (AI) and version.
fn put_algorithm(segment: &mut InMemDicomObject, options: &SegOptions) {
    s(
        segment,
        tags::SEGMENT_ALGORITHM_NAME,
        VR::LO,
        &options.algorithm_name,
    );
    let mut alg = InMemDicomObject::new_empty();
    seq(
        &mut alg,
        tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
        vec![code_item(&Code {
            value: "123110".into(),
            scheme: "DCM".into(),
            meaning: "Artificial Intelligence".into(),
        })],
    );
    s(
        &mut alg,
        tags::ALGORITHM_VERSION,
        VR::LO,
        &options.algorithm_version,
    );
    // (0024,0202) LO; (0066,0032) is Algorithm Parameters, an LT
    s(&mut alg, tags::ALGORITHM_SOURCE, VR::LO, "Lumen");
    s(
        &mut alg,
        tags::ALGORITHM_NAME,
        VR::LO,
        &options.algorithm_name,
    );
    seq(
        segment,
        tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
        vec![alg],
    );
}

/// Shared functional groups: the study's orientation and spacing.
fn put_shared_groups(o: &mut InMemDicomObject, volume: &Volume) {
    let m = &volume.patient_from_voxel;
    let row = geometry::normalize(geometry::column(m, 0));
    let col = geometry::normalize(geometry::column(m, 1));
    let mut orient = InMemDicomObject::new_empty();
    s(
        &mut orient,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &ds_multi(&[row[0], row[1], row[2], col[0], col[1], col[2]]),
    );
    let mut meas = InMemDicomObject::new_empty();
    let [sx, sy, sz] = volume.spacing;
    s(&mut meas, tags::SLICE_THICKNESS, VR::DS, &ds(sz));
    s(&mut meas, tags::SPACING_BETWEEN_SLICES, VR::DS, &ds(sz));
    s(&mut meas, tags::PIXEL_SPACING, VR::DS, &ds_multi(&[sy, sx]));
    let mut shared = InMemDicomObject::new_empty();
    seq(&mut shared, tags::PLANE_ORIENTATION_SEQUENCE, vec![orient]);
    seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![meas]);
    seq(o, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]);
}

/// Per-frame functional groups and the bit-packed pixel data.
fn put_frames(o: &mut InMemDicomObject, volume: &Volume, labels: &LabelVolume, frames: &Frames) {
    let plane = volume.dims[0] * volume.dims[1];
    let total_bits = frames.count() * plane;
    let bytes = total_bits.div_ceil(8);
    // Pixel Data has an even length
    let mut bits = vec![0u8; bytes + bytes % 2];
    let mut per_frame = Vec::with_capacity(frames.count());
    for (frame, (number, label, z)) in frames.each().enumerate() {
        per_frame.push(frame_groups(volume, number, z));
        let base = frame * plane;
        for (i, &l) in labels.labels[z * plane..(z + 1) * plane].iter().enumerate() {
            if l == label {
                let bit = base + i;
                bits[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    seq(o, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame);
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(bits),
    ));
}

/// One frame's functional groups: its source image, dimension index, position and segment.
fn frame_groups(volume: &Volume, number: u16, z: usize) -> InMemDicomObject {
    let sl = &volume.slices[z];
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
    // the frame is on the source slice's own grid: readers (highdicom) index by source slice
    // only when this says so
    s(&mut src, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
    let code = |value: &str, meaning: &str| {
        code_item(&Code {
            value: value.into(),
            scheme: "DCM".into(),
            meaning: meaning.into(),
        })
    };
    seq(
        &mut src,
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        vec![code(
            "121322",
            "Source image for image processing operation",
        )],
    );
    let mut deriv = InMemDicomObject::new_empty();
    seq(
        &mut deriv,
        tags::DERIVATION_CODE_SEQUENCE,
        vec![code("113076", "Segmentation")],
    );
    seq(&mut deriv, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
    let mut content = InMemDicomObject::new_empty();
    content.put(DataElement::new(
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::from([u32::from(number), (z + 1) as u32]),
    ));
    let mut pos = InMemDicomObject::new_empty();
    s(
        &mut pos,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &ds_multi(&sl.position),
    );
    let mut ident = InMemDicomObject::new_empty();
    ident.put(DataElement::new(
        tags::REFERENCED_SEGMENT_NUMBER,
        VR::US,
        PrimitiveValue::from(number),
    ));
    let mut fg = InMemDicomObject::new_empty();
    seq(&mut fg, tags::DERIVATION_IMAGE_SEQUENCE, vec![deriv]);
    seq(&mut fg, tags::FRAME_CONTENT_SEQUENCE, vec![content]);
    seq(&mut fg, tags::PLANE_POSITION_SEQUENCE, vec![pos]);
    seq(&mut fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![ident]);
    fg
}
