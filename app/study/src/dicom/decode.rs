//! Pixel decoding to modality values (parallel, panics caught) and assembling the volume.

use super::FrameHeader;
use super::attrs::{get_int, get_str};
use super::guards::{open_header, open_image};
use super::plan::plan_geometry;
use crate::{Modality, Result, SliceSource, StudyError, StudyMeta, Volume, geometry};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::{
    DecodedPixelData, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

pub(super) fn transfer_syntax_name(uid: &str) -> String {
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

pub(super) fn decode_error(path: &Path, ts: &str, e: impl std::fmt::Display) -> StudyError {
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
pub(super) fn convert_frame(
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
    let samples = Samples {
        allocated: ba,
        stored: bs,
        signed,
    };
    if spp == 1 && ba == 16 {
        rescale_16bit(&data[..n * 2], samples, slope, intercept, out);
    } else if spp == 1 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = (samples.get(data, i) * slope + intercept) as f32;
        }
    } else {
        colour_to_grey(px, data, samples, out);
    }
    Ok(())
}

/// How a frame's samples are stored (little endian).
#[derive(Debug, Clone, Copy)]
struct Samples {
    /// Bits Allocated: 8, 16 or 32.
    allocated: u16,
    /// Bits Stored, 1..=allocated.
    stored: u16,
    signed: bool,
}

impl Samples {
    /// Sample `idx` of `data`. Bits above Bits Stored are not the sample's (overlays were once
    /// kept there): masked off, or replaced by the sign of a signed sample.
    fn get(self, data: &[u8], idx: usize) -> f64 {
        let bs = self.stored;
        match self.allocated {
            8 => {
                let v = data[idx];
                if self.signed {
                    f64::from(v as i8)
                } else {
                    f64::from(v & (u8::MAX >> (8 - bs.min(8))))
                }
            }
            16 => {
                let o = idx * 2;
                let v = u16::from_le_bytes([data[o], data[o + 1]]);
                let sh = 16 - bs.min(16);
                if self.signed {
                    f64::from(((v << sh) as i16) >> sh)
                } else {
                    f64::from(v & (u16::MAX >> sh))
                }
            }
            _ => {
                let o = idx * 4;
                let v = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                let sh = 32 - u32::from(bs.min(32));
                if self.signed {
                    f64::from(((v << sh) as i32) >> sh)
                } else {
                    f64::from(v & (u32::MAX >> sh))
                }
            }
        }
    }
}

/// The fast path of CT and MR (one 16-bit sample a pixel): f32 arithmetic is exact for 16-bit
/// samples with an integral rescale.
fn rescale_16bit(data: &[u8], samples: Samples, slope: f64, intercept: f64, out: &mut [f32]) {
    let (k, c) = (slope as f32, intercept as f32);
    let sh = 16 - samples.stored.min(16);
    let src = data.chunks_exact(2);
    if samples.signed {
        for (o, b) in out.iter_mut().zip(src) {
            let v = ((u16::from_le_bytes([b[0], b[1]]) << sh) as i16) >> sh;
            *o = f32::from(v) * k + c;
        }
    } else {
        let mask = u16::MAX >> sh;
        for (o, b) in out.iter_mut().zip(src) {
            *o = f32::from(u16::from_le_bytes([b[0], b[1]]) & mask) * k + c;
        }
    }
}

/// A three-sample frame as grey: luma of RGB, the Y of YBR.
fn colour_to_grey(px: &DecodedPixelData<'_>, data: &[u8], samples: Samples, out: &mut [f32]) {
    let n = out.len();
    let planar = px.planar_configuration() != dicom_pixeldata::PlanarConfiguration::Standard;
    let ybr = matches!(
        px.photometric_interpretation(),
        PhotometricInterpretation::YbrFull
            | PhotometricInterpretation::YbrFull422
            | PhotometricInterpretation::YbrIct
            | PhotometricInterpretation::YbrRct
    );
    let at = |i: usize, s: usize| samples.get(data, if planar { s * n + i } else { i * 3 + s });
    for (i, o) in out.iter_mut().enumerate() {
        let v = if ybr {
            at(i, 0)
        } else {
            0.299 * at(i, 0) + 0.587 * at(i, 1) + 0.114 * at(i, 2)
        };
        *o = v as f32;
    }
}

pub(super) fn decode_into(
    file: &DefaultDicomObject,
    h: &FrameHeader,
    out: &mut [f32],
) -> Result<()> {
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

/// The note on a series whose pixels are not plain grey levels, as its first file says.
pub(super) fn colour_warning(file: Option<&DefaultDicomObject>) -> Option<String> {
    let obj: &InMemDicomObject = file?;
    let spp = get_int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let pi = get_str(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    match pi.as_str() {
        _ if spp == 3 => Some(format!("colour image ({pi}) converted to grey levels")),
        "PALETTE COLOR" => Some("palette colour image shown as grey palette indices".to_string()),
        "MONOCHROME1" | "MONOCHROME2" | "" => None,
        // a colour model on one sample has no meaning: the one value is all there is
        _ => Some(format!(
            "Photometric Interpretation (0028,0004) {pi} on one sample per pixel: shown as grey"
        )),
    }
}

/// Build a volume from frames (sorted here) and their series attributes.
#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    frames: &[FrameHeader],
    study: StudyMeta,
    description: String,
    modality: Modality,
    where_: &Path,
    extra_warnings: Vec<String>,
    preloaded: Option<DefaultDicomObject>,
    control: &crate::LoadControl,
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
    // one (multi-frame) file is opened once and its frames decoded in parallel
    let single_file = match (distinct_files.len(), preloaded) {
        (1, Some(file)) => Some(file),
        (1, None) => Some(open_image(&first.path)?),
        _ => None,
    };
    voxels
        .par_chunks_mut(plane)
        .zip(ordered.par_iter())
        .try_for_each(|(chunk, h)| {
            step()?;
            match &single_file {
                Some(file) => decode_into(file, h, chunk)?,
                None => decode_into(&open_image(&h.path)?, h, chunk)?,
            }
            done();
            Ok(())
        })?;
    let probe = single_file.or_else(|| open_header(&first.path).ok());
    let warnings = series_warnings(
        extra_warnings,
        plan.warnings,
        probe.as_ref(),
        &modality,
        &ordered,
    );
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

/// The notes on a series: the caller's, the geometry plan's (each once), the colour model's, and
/// a CT image's missing Rescale Intercept.
fn series_warnings(
    mut warnings: Vec<String>,
    plan_warnings: Vec<String>,
    probe: Option<&DefaultDicomObject>,
    modality: &Modality,
    ordered: &[&FrameHeader],
) -> Vec<String> {
    for w in plan_warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if let Some(w) = colour_warning(probe) {
        warnings.push(w);
    }
    if *modality == Modality::Ct && ordered.iter().any(|h| !h.intercept_given) {
        // Type 1 in a CT image: without it the stored values are shown as if they were HU
        warnings.push(
            "no Rescale Intercept (0028,1052) on a CT image: its stored values are shown as \
             HU, which they may not be"
                .to_string(),
        );
    }
    warnings
}
