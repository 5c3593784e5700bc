//! Reading a binary DICOM SEG back onto the study it was made on.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use lumen_study::dicom::attrs::{first_item, get_str};

use super::{SEGMENTATION_STORAGE, dicom_lab_to_rgb};
use crate::export::{AlgorithmType, Code, ExportError, Result, Segment};
use lumen_study::geometry::{self, Mat4};
use lumen_study::{LabelVolume, Volume};

/// Read a DICOM SEG back onto `volume` (the study it was made on): label values are the segment
/// numbers mapped to the returned segments' labels; frames are placed by their source-image
/// reference, else by their plane position.
pub fn read_seg(path: &Path, volume: &Volume) -> Result<(LabelVolume, Vec<Segment>)> {
    // a SEG arrives from anywhere: the study's guards run before the parser allocates
    let file =
        lumen_study::dicom::open_guarded(path).map_err(|e| ExportError::read(path, e.reason()))?;
    let obj: &InMemDicomObject = &file;
    let (frames, data) = binary_frames(path, obj, volume)?;
    let segments = read_segments(path, obj)?;
    let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[]);
    if per_frame.len() != frames {
        return Err(ExportError::read(
            path,
            format!(
                "{} per-frame functional groups for {frames} frames",
                per_frame.len()
            ),
        ));
    }
    check_orientation(path, shared, per_frame, volume)?;
    let placer = Placer::new(path, volume)?;
    let mut out = LabelVolume {
        dims: volume.dims,
        labels: vec![0; volume.voxels.len()],
        patient_from_voxel: volume.patient_from_voxel,
    };
    let plane = volume.dims[0] * volume.dims[1];
    for (f, fg) in per_frame.iter().enumerate() {
        let label = frame_segment(path, f, fg, shared, &segments)?;
        let z = placer.slice_of(path, f, fg)?;
        let base = f * plane;
        let dst = &mut out.labels[z * plane..(z + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            let bit = base + i;
            if data[bit / 8] >> (bit % 8) & 1 == 1 {
                *d = label;
            }
        }
    }
    Ok((out, segments))
}

/// Checks that `obj` is a binary SEG whose frames have the study's size and that its pixel
/// data holds them all; the number of frames and the packed bits.
fn binary_frames(path: &Path, obj: &InMemDicomObject, volume: &Volume) -> Result<(usize, Vec<u8>)> {
    let sop_class = get_str(obj, tags::SOP_CLASS_UID).unwrap_or_default();
    if sop_class != SEGMENTATION_STORAGE {
        return Err(ExportError::read(
            path,
            format!("not a DICOM SEG (SOP Class {sop_class})"),
        ));
    }
    let seg_type = get_str(obj, tags::SEGMENTATION_TYPE).unwrap_or_default();
    if seg_type != "BINARY" {
        let max = obj
            .get(tags::MAXIMUM_FRACTIONAL_VALUE)
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
    let [nx, ny, _] = volume.dims;
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
    let data = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| ExportError::read(path, "no Pixel Data"))?;
    let needed = frames * nx * ny;
    if data.len() * 8 < needed {
        return Err(ExportError::read(
            path,
            format!(
                "Pixel Data holds {} bits, {frames} frames need {needed}",
                data.len() * 8
            ),
        ));
    }
    Ok((frames, data.into_owned()))
}

/// The Segment Sequence as segments labelled by their segment numbers.
fn read_segments(path: &Path, obj: &InMemDicomObject) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for item in obj
        .get(tags::SEGMENT_SEQUENCE)
        .and_then(|e| e.items())
        .unwrap_or(&[])
    {
        let number = item
            .get(tags::SEGMENT_NUMBER)
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(0);
        if number == 0 {
            return Err(ExportError::read(path, "segment without Segment Number"));
        }
        let name =
            get_str(item, tags::SEGMENT_LABEL).unwrap_or_else(|| format!("Segment {number}"));
        let mut seg = Segment::new(number, &name);
        if let Some(c) = read_code(item, tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE) {
            seg.category = c;
        }
        if let Some(c) = read_code(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE) {
            seg.property_type = c;
            seg.type_modifier = first_item(item, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE)
                .and_then(|t| read_code(t, tags::SEGMENTED_PROPERTY_TYPE_MODIFIER_CODE_SEQUENCE));
        }
        if let Some(lab) = item
            .get(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE)
            .and_then(|e| e.to_multi_int::<u16>().ok())
            && lab.len() == 3
        {
            seg.color = dicom_lab_to_rgb([lab[0], lab[1], lab[2]]);
        }
        seg.algorithm_type = AlgorithmType::from_dicom(
            &get_str(item, tags::SEGMENT_ALGORITHM_TYPE).unwrap_or_default(),
        );
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err(ExportError::read(path, "no segments in Segment Sequence"));
    }
    Ok(segments)
}

fn read_code(obj: &InMemDicomObject, tag: Tag) -> Option<Code> {
    let item = first_item(obj, tag)?;
    Some(Code {
        value: get_str(item, tags::CODE_VALUE).unwrap_or_default(),
        scheme: get_str(item, tags::CODING_SCHEME_DESIGNATOR).unwrap_or_default(),
        meaning: get_str(item, tags::CODE_MEANING).unwrap_or_default(),
    })
}

/// Refuses a SEG whose orientation is not the study's.
fn check_orientation(
    path: &Path,
    shared: Option<&InMemDicomObject>,
    per_frame: &[InMemDicomObject],
    volume: &Volume,
) -> Result<()> {
    let orient = shared
        .and_then(|s| first_item(s, tags::PLANE_ORIENTATION_SEQUENCE))
        .or_else(|| {
            per_frame
                .first()
                .and_then(|f| first_item(f, tags::PLANE_ORIENTATION_SEQUENCE))
        })
        .and_then(|o| o.get(tags::IMAGE_ORIENTATION_PATIENT))
        .and_then(|e| e.to_multi_float64().ok());
    let Some(o) = orient else { return Ok(()) };
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
    Ok(())
}

/// The label of the segment a frame belongs to (segment numbers are the labels).
fn frame_segment(
    path: &Path,
    f: usize,
    fg: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    segments: &[Segment],
) -> Result<u16> {
    let number = first_item(fg, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
        .or_else(|| shared.and_then(|s| first_item(s, tags::SEGMENT_IDENTIFICATION_SEQUENCE)))
        .and_then(|i| i.get(tags::REFERENCED_SEGMENT_NUMBER))
        .and_then(|e| e.to_int::<u16>().ok())
        .ok_or_else(|| {
            ExportError::read(
                path,
                format!("frame {} has no Referenced Segment Number", f + 1),
            )
        })?;
    if !segments.iter().any(|s| s.label == number) {
        return Err(ExportError::read(
            path,
            format!("frame {} refers to unknown segment {number}", f + 1),
        ));
    }
    Ok(number)
}

/// Finds the study slice a frame lies on: by its source-image reference, else by its position.
struct Placer<'a> {
    by_uid: BTreeMap<(&'a str, Option<u32>), usize>,
    voxel_from_patient: Mat4,
    depth: usize,
}

impl<'a> Placer<'a> {
    fn new(path: &Path, volume: &'a Volume) -> Result<Self> {
        let by_uid = volume
            .slices
            .iter()
            .enumerate()
            .map(|(z, s)| ((s.sop_instance_uid.as_str(), s.frame), z))
            .collect();
        let voxel_from_patient = geometry::inverse(&volume.patient_from_voxel)
            .ok_or_else(|| ExportError::mismatch(path, "the study geometry is singular"))?;
        Ok(Self {
            by_uid,
            voxel_from_patient,
            depth: volume.dims[2],
        })
    }

    fn slice_of(&self, path: &Path, f: usize, fg: &InMemDicomObject) -> Result<usize> {
        let src = first_item(fg, tags::DERIVATION_IMAGE_SEQUENCE)
            .and_then(|d| first_item(d, tags::SOURCE_IMAGE_SEQUENCE));
        let referenced = src.and_then(|s| {
            let uid = get_str(s, tags::REFERENCED_SOP_INSTANCE_UID)?;
            let frame = s
                .get(tags::REFERENCED_FRAME_NUMBER)
                .and_then(|e| e.to_int::<u32>().ok())
                .map(|n| n.saturating_sub(1));
            self.by_uid.get(&(uid.as_str(), frame)).copied()
        });
        if let Some(z) = referenced {
            return Ok(z);
        }
        let pos = first_item(fg, tags::PLANE_POSITION_SEQUENCE)
            .and_then(|p| p.get(tags::IMAGE_POSITION_PATIENT))
            .and_then(|e| e.to_multi_float64().ok())
            .filter(|v| v.len() == 3)
            .ok_or_else(|| {
                ExportError::read(
                    path,
                    format!("frame {} has no position or source reference", f + 1),
                )
            })?;
        let idx = geometry::apply(&self.voxel_from_patient, [pos[0], pos[1], pos[2]]);
        let zr = idx[2].round();
        if idx[0].abs() > 1e-2
            || idx[1].abs() > 1e-2
            || (idx[2] - zr).abs() > 0.05
            || zr < 0.0
            || zr >= self.depth as f64
        {
            return Err(ExportError::mismatch(
                path,
                format!(
                    "frame {} at {pos:?} does not lie on a slice of the study",
                    f + 1
                ),
            ));
        }
        Ok(zr as usize)
    }
}
