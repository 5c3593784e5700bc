//! NIfTI-1 input (`.nii`, `.nii.gz`): image volumes and label maps.
//!
//! NIfTI stores RAS world coordinates; Lumen's `patient_from_voxel` is LPS, so the sform (or
//! qform) is flipped in x and y. NIfTI data is x-fastest, which is exactly `[z][y][x]` order.

use std::path::Path;

use nifti::{Endianness, NiftiHeader, NiftiObject, ReaderOptions};

use crate::geometry::{self, Mat4};
use crate::{LabelVolume, Modality, Result, StudyError, StudyMeta, Volume};

/// A NIfTI file decoded to `f64` values with its LPS geometry.
pub(crate) struct RawNifti {
    pub dims: [usize; 3],
    pub values: Vec<f64>,
    pub patient_from_voxel: Mat4,
    pub warnings: Vec<String>,
}

/// The RAS affine of a NIfTI header: sform if set, else qform, else pixdim scaling.
pub fn ras_affine(h: &NiftiHeader) -> Mat4 {
    if h.sform_code > 0 {
        let r = |row: [f32; 4]| row.map(f64::from);
        return [r(h.srow_x), r(h.srow_y), r(h.srow_z), [0.0, 0.0, 0.0, 1.0]];
    }
    let px = [
        f64::from(h.pixdim[1]),
        f64::from(h.pixdim[2]),
        f64::from(h.pixdim[3]),
    ]
    .map(|p| if p.is_finite() && p > 0.0 { p } else { 1.0 });
    if h.qform_code > 0 {
        return geometry::from_quaternion(
            [
                f64::from(h.quatern_b),
                f64::from(h.quatern_c),
                f64::from(h.quatern_d),
            ],
            f64::from(h.pixdim[0]),
            px,
            [
                f64::from(h.quatern_x),
                f64::from(h.quatern_y),
                f64::from(h.quatern_z),
            ],
        );
    }
    geometry::from_columns(
        [px[0], 0.0, 0.0],
        [0.0, px[1], 0.0],
        [0.0, 0.0, px[2]],
        [0.0; 3],
    )
}

fn decode_values(path: &Path, h: &NiftiHeader, raw: &[u8], count: usize) -> Result<Vec<f64>> {
    let little = h.endianness == Endianness::Little;
    let size = match h.datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        64 | 1024 | 1280 => 8,
        other => {
            return Err(StudyError::unsupported(
                path,
                format!("NIfTI datatype {other}"),
            ));
        }
    };
    if raw.len() < count * size {
        return Err(StudyError::read(
            path,
            format!(
                "NIfTI data too short: {} bytes for {count} voxels of {size} bytes",
                raw.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let b = &raw[i * size..(i + 1) * size];
        let mut a = [0u8; 8];
        a[..size].copy_from_slice(b);
        if !little {
            a[..size].reverse();
        }
        let v = match h.datatype {
            2 => f64::from(a[0]),
            256 => f64::from(a[0] as i8),
            4 => f64::from(i16::from_le_bytes([a[0], a[1]])),
            512 => f64::from(u16::from_le_bytes([a[0], a[1]])),
            8 => f64::from(i32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            768 => f64::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            16 => f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            64 => f64::from_le_bytes(a),
            1024 => i64::from_le_bytes(a) as f64,
            _ => u64::from_le_bytes(a) as f64,
        };
        out.push(v);
    }
    Ok(out)
}

/// Why `path` could not be read, in words: the nifti crate shows its I/O errors in Rust's debug
/// form (`Io(Os { code: 2, … })`), so those are given by their own message.
fn unreadable(path: &Path, error: nifti::NiftiError) -> StudyError {
    let reason = match error {
        nifti::NiftiError::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    StudyError::read(path, format!("not a readable NIfTI file ({reason})"))
}

/// The most voxel data a NIfTI file may declare, all its volumes together. The reader inflates
/// and keeps all of it, so a small `.nii.gz` declaring a huge volume would take gigabytes.
const MAX_NIFTI_BYTES: u64 = 1 << 30;

/// Refuses a file whose header declares more voxel data than `MAX_NIFTI_BYTES`, reading only
/// the header (a 348-byte prefix, inflated as far as that).
fn check_declared_size(path: &Path) -> Result<()> {
    let header = NiftiHeader::from_file(path).map_err(|e| unreadable(path, e))?;
    let ndim = usize::from(header.dim[0]).clamp(1, 7);
    let dims = &header.dim[1..=ndim];
    let voxels = dims
        .iter()
        .try_fold(1u64, |n, d| n.checked_mul(u64::from(*d).max(1)));
    // the reader sizes its buffer by bitpix / 8, a negative bitpix becoming 2^64 − |bitpix|
    let bits = header.bitpix;
    if bits <= 0 || bits % 8 != 0 {
        return Err(StudyError::invalid(
            path,
            format!("the header declares {bits} bits per voxel, not a whole number of bytes"),
        ));
    }
    let bytes = voxels.and_then(|v| v.checked_mul(u64::from(bits.unsigned_abs() / 8)));
    let shape = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let declares = format!(
        "the header declares {} voxels of {bits} bits",
        shape.join("×")
    );
    let Some(bytes) = bytes.filter(|b| *b <= MAX_NIFTI_BYTES) else {
        return Err(StudyError::invalid(
            path,
            format!(
                "{declares} ({}), more than the {} MiB Lumen opens",
                bytes.map_or("beyond 2^64 bytes".into(), |b| format!("{} MiB", b >> 20)),
                MAX_NIFTI_BYTES >> 20
            ),
        ));
    };
    let gzip = is_gzip(path);
    check_data_offset(path, &header, gzip)?;
    let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
    let data_start = u64::from(header.vox_offset.max(HEADER_AND_EXTENDER as f32) as u32);
    if !gzip && header.magic == *SINGLE_FILE && data_start.saturating_add(bytes) > file_len {
        // the reader would reserve the declared size before finding the file short
        return Err(StudyError::read(
            path,
            format!(
                "truncated: {declares} ({bytes} bytes from byte {data_start}), the file has {file_len} bytes"
            ),
        ));
    }
    if gzip && bytes > BOMB_FLOOR_BYTES && bytes / file_len.max(1) > MAX_GZIP_RATIO {
        return Err(StudyError::invalid(
            path,
            format!(
                "{declares} ({} MiB) in {} kB of gzip, more than {MAX_GZIP_RATIO}-fold: a \
                 decompression bomb, not a scan",
                bytes >> 20,
                file_len >> 10
            ),
        ));
    }
    Ok(())
}

/// A single-file NIfTI's voxel data must start where the reader takes it from: right after the
/// 352 bytes of header and extender, or, where the extender announces extensions, after them
/// at `vox_offset`. The reader ignores a `vox_offset` without extensions and would read the
/// image shifted by the difference; one inside the header has no meaning.
fn check_data_offset(path: &Path, header: &NiftiHeader, gzip: bool) -> Result<()> {
    if &header.magic != SINGLE_FILE {
        return Ok(());
    }
    let (offset, data_start) = (header.vox_offset, HEADER_AND_EXTENDER as f32);
    // the extender's first byte says whether extensions follow the header
    let fits = if first_bytes(path, HEADER_AND_EXTENDER, gzip)?.get(348) == Some(&0) {
        offset == data_start || offset == 0.0
    } else {
        offset >= data_start
    };
    if fits {
        return Ok(());
    }
    Err(StudyError::invalid(
        path,
        format!(
            "the header puts the voxel data at byte {offset} (vox_offset), but no extensions \
             fill the bytes from 352 to there"
        ),
    ))
}

/// The magic of a NIfTI-1 header and its data in one file (`.nii`, not `.hdr` + `.img`).
const SINGLE_FILE: &[u8; 4] = b"n+1\0";
/// The header (348 bytes) and the extender (4).
const HEADER_AND_EXTENDER: usize = 352;

/// The first `n` bytes of the file, inflated if it is `gzip`; fewer if it is shorter.
fn first_bytes(path: &Path, n: usize, gzip: bool) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| StudyError::read(path, e))?;
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut bytes = Vec::with_capacity(n);
    (&mut reader)
        .take(n as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| StudyError::read(path, format!("not a readable NIfTI file ({e})")))?;
    Ok(bytes)
}

/// Scans compress a few-fold and label maps up to a few hundred; a large volume that inflates
/// further is made of nothing (zeros), and would take gigabytes for no image.
const MAX_GZIP_RATIO: u64 = 200;
/// Below this, a volume is small enough to open whatever its compression.
const BOMB_FLOOR_BYTES: u64 = 256 << 20;

/// Whether the file starts with gzip's magic number.
fn is_gzip(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

pub(crate) fn read_nifti(path: &Path) -> Result<RawNifti> {
    check_declared_size(path)?;
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| unreadable(path, e))?;
    let header = obj.header().clone();
    let ndim = usize::from(header.dim[0]);
    if !(1..=7).contains(&ndim) {
        return Err(StudyError::invalid(path, format!("NIfTI dim[0] = {ndim}")));
    }
    let d = |i: usize| {
        if i <= ndim {
            usize::from(header.dim[i]).max(1)
        } else {
            1
        }
    };
    let dims = [d(1), d(2), d(3)];
    let mut warnings = Vec::new();
    let extra: usize = (4..=ndim).map(d).product();
    if extra > 1 {
        warnings.push(format!(
            "{ndim}-D NIfTI: only the first of {extra} volumes is shown"
        ));
    }
    let count = dims[0]
        .checked_mul(dims[1])
        .and_then(|v| v.checked_mul(dims[2]))
        .filter(|v| *v <= 2_000_000_000)
        .ok_or_else(|| StudyError::invalid(path, "NIfTI volume too large"))?;
    let volume = obj.into_volume();
    let mut values = decode_values(path, &header, volume.raw_data(), count)?;
    let slope = f64::from(header.scl_slope);
    let inter = f64::from(header.scl_inter);
    if slope.is_finite() && slope != 0.0 && (slope != 1.0 || (inter.is_finite() && inter != 0.0)) {
        let inter = if inter.is_finite() { inter } else { 0.0 };
        for v in &mut values {
            *v = *v * slope + inter;
        }
    }
    let ras = ras_affine(&header);
    if header.sform_code <= 0 && header.qform_code <= 0 {
        warnings.push("NIfTI has neither sform nor qform: orientation unknown".to_string());
    }
    let patient_from_voxel = geometry::mul(&geometry::RAS_FROM_LPS, &ras);
    if geometry::inverse(&patient_from_voxel).is_none() {
        return Err(StudyError::invalid(path, "NIfTI affine is singular"));
    }
    Ok(RawNifti {
        dims,
        values,
        patient_from_voxel,
        warnings,
    })
}

/// Load a NIfTI image as a volume (values after `scl_slope`/`scl_inter`).
pub fn load_nifti(path: impl AsRef<Path>) -> Result<Volume> {
    let path = path.as_ref();
    let raw = read_nifti(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let voxels: Vec<f32> = raw.values.iter().map(|&v| v as f32).collect();
    Ok(Volume {
        dims: raw.dims,
        modality: Modality::infer_from_values(&voxels),
        voxels,
        spacing: geometry::spacing(&raw.patient_from_voxel),
        patient_from_voxel: raw.patient_from_voxel,
        series_description: name,
        warnings: raw.warnings,
        window: None,
        inverted: false,
        slices: Vec::new(),
        study: StudyMeta::default(),
    })
}

/// Load a NIfTI label map (integer labels 0..=65535).
pub fn load_nifti_labels(path: impl AsRef<Path>) -> Result<LabelVolume> {
    let path = path.as_ref();
    let raw = read_nifti(path)?;
    let mut labels = Vec::with_capacity(raw.values.len());
    for &v in &raw.values {
        if !(0.0..=65535.0).contains(&v) || v.fract() != 0.0 {
            return Err(StudyError::invalid(
                path,
                format!("not a label map: value {v}"),
            ));
        }
        labels.push(v as u16);
    }
    Ok(LabelVolume {
        dims: raw.dims,
        labels,
        patient_from_voxel: raw.patient_from_voxel,
    })
}
