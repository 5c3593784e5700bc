//! NIfTI label map writer (uint8/uint16, RAS, sform + qform) with a JSON sidecar of label names
//! and colours; re-import of a NIfTI label map onto a study's grid.

use std::path::{Path, PathBuf};

use nifti::writer::WriterOptions;
use nifti::{NiftiHeader, NiftiType};

use super::{ExportError, Result, Segment, with_temp_path, write_atomic};
use lumen_study::geometry::{self, Mat4};
use lumen_study::{LabelVolume, Volume};

/// The sidecar next to a NIfTI file: `labels.nii.gz` → `labels.json`.
pub fn sidecar_path(nifti_path: &Path) -> PathBuf {
    let name = nifti_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .unwrap_or(&name)
        .to_string();
    nifti_path.with_file_name(format!("{stem}.json"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    generator: String,
    description: String,
    segments: Vec<Segment>,
}

/// Write `labels` as a NIfTI-1 label map (RAS, sform and qform, code 1 "scanner anatomical") and
/// a JSON sidecar (`sidecar_path`) with the segments' names, colours and codes.
///
/// uint8 when every label fits, else uint16. `.nii.gz` is gzip-compressed.
pub fn write_nifti_labels(path: &Path, labels: &LabelVolume, segments: &[Segment]) -> Result<()> {
    let [nx, ny, nz] = labels.dims;
    if labels.labels.len() != nx * ny * nz {
        return Err(ExportError::invalid(
            path,
            "label buffer does not match its dimensions",
        ));
    }
    if nx > usize::from(u16::MAX) || ny > usize::from(u16::MAX) || nz > usize::from(u16::MAX) {
        return Err(ExportError::invalid(path, "too large for NIfTI-1"));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        return Err(ExportError::invalid(
            path,
            "a NIfTI file name must end in .nii or .nii.gz",
        ));
    }
    let gz = name.ends_with(".gz");
    let ras = geometry::mul(&geometry::RAS_FROM_LPS, &labels.patient_from_voxel);
    let header = label_header(&ras, labels.dims);
    let max = labels.labels.iter().copied().max().unwrap_or(0);

    let voxel_bytes = if max <= u16::from(u8::MAX) { 1 } else { 2 };
    with_temp_path(path, |tmp| {
        let opts = WriterOptions::new(tmp)
            .reference_header(&header)
            .compress(gz);
        let res = if voxel_bytes == 1 {
            let data: Vec<u8> = labels.labels.iter().map(|&l| l as u8).collect();
            let arr = ndarray::Array3::from_shape_vec((nz, ny, nx), data)
                .map_err(std::io::Error::other)?
                .reversed_axes();
            opts.write_nifti_with_type(&arr, NiftiType::Uint8)
        } else {
            let arr = ndarray::Array3::from_shape_vec((nz, ny, nx), labels.labels.clone())
                .map_err(std::io::Error::other)?
                .reversed_axes();
            opts.write_nifti_with_type(&arr, NiftiType::Uint16)
        };
        res.map_err(nifti_io_error)?;
        check_complete(
            tmp,
            NIFTI1_DATA_OFFSET + (nx * ny * nz * voxel_bytes) as u64,
            gz,
        )
    })?;

    let sidecar = Sidecar {
        generator: format!("Lumen {}", env!("CARGO_PKG_VERSION")),
        description: "label map: voxel value = segment label; 0 = background".into(),
        segments: segments.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| ExportError::write(path, e))?;
    write_atomic(&sidecar_path(path), |w| std::io::Write::write_all(w, &json))
}

/// A nifti crate error as an I/O error: its own I/O error as it is (the crate's text of one is
/// Rust's debug form, `Io(Os { code: 28, … })`), anything else by its message.
fn nifti_io_error(error: nifti::NiftiError) -> std::io::Error {
    match error {
        nifti::NiftiError::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// Where a single-file NIfTI-1's voxels start: the 348-byte header and a 4-byte extension flag.
const NIFTI1_DATA_OFFSET: u64 = 352;

/// Fails unless the file holds `expected` bytes of NIfTI (uncompressed, or as gzip's recorded
/// size). The nifti crate drops its `BufWriter` unflushed, which loses the error of the last
/// write on a full disk; this catches the short file it leaves.
fn check_complete(file: &Path, expected: u64, gz: bool) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    let on_disk = f.metadata()?.len();
    let written = if gz {
        // gzip's trailer ends with the uncompressed size mod 2^32 (RFC 1952)
        let mut size = [0u8; 4];
        if on_disk < 18 {
            0
        } else {
            f.seek(SeekFrom::End(-4))?;
            f.read_exact(&mut size)?;
            u64::from(u32::from_le_bytes(size))
        }
    } else {
        on_disk
    };
    let wanted = if gz { expected % (1 << 32) } else { expected };
    if written == wanted {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("the file was cut short at {on_disk} bytes"),
        ))
    }
}

fn label_header(ras: &Mat4, dims: [usize; 3]) -> NiftiHeader {
    let (bcd, qfac, px, off) = geometry::to_quaternion(ras);
    let row = |r: usize| {
        [
            ras[r][0] as f32,
            ras[r][1] as f32,
            ras[r][2] as f32,
            ras[r][3] as f32,
        ]
    };
    let mut descrip = b"Lumen label map".to_vec();
    descrip.resize(80, 0);
    NiftiHeader {
        dim: [
            3,
            dims[0] as u16,
            dims[1] as u16,
            dims[2] as u16,
            1,
            1,
            1,
            1,
        ],
        pixdim: [
            qfac as f32,
            px[0] as f32,
            px[1] as f32,
            px[2] as f32,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        xyzt_units: 2,     // mm
        intent_code: 1002, // NIFTI_INTENT_LABEL
        qform_code: 1,
        sform_code: 1,
        quatern_b: bcd[0] as f32,
        quatern_c: bcd[1] as f32,
        quatern_d: bcd[2] as f32,
        quatern_x: off[0] as f32,
        quatern_y: off[1] as f32,
        quatern_z: off[2] as f32,
        srow_x: row(0),
        srow_y: row(1),
        srow_z: row(2),
        descrip,
        ..NiftiHeader::default()
    }
}

/// Read the JSON sidecar of a NIfTI label map, if there is one.
pub fn read_sidecar(nifti_path: &Path) -> Result<Option<Vec<Segment>>> {
    let p = sidecar_path(nifti_path);
    if !p.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).map_err(|e| ExportError::read(&p, e))?;
    let s: Sidecar = serde_json::from_slice(&bytes)
        .map_err(|e| ExportError::read(&p, format!("bad sidecar JSON: {e}")))?;
    Ok(Some(s.segments))
}

/// How the voxel grid `from` maps onto `to`: each axis of `to` is an axis of `from`, possibly
/// flipped, with an integer offset. `None` unless the grids coincide exactly (within `tol` voxels).
pub fn grid_mapping(
    from: &Mat4,
    from_dims: [usize; 3],
    to: &Mat4,
    to_dims: [usize; 3],
    tol: f64,
) -> Option<[(usize, i64, i64); 3]> {
    // index_from = M · index_to, with M = inv(from) · to
    let inv = geometry::inverse(from)?;
    let m = geometry::mul(&inv, to);
    let mut out = [(0usize, 0i64, 0i64); 3];
    let mut used = [false; 3];
    for (c, slot) in out.iter_mut().enumerate() {
        // column c of M must be ±e_r
        let col = [m[0][c], m[1][c], m[2][c]];
        let r = (0..3).max_by(|&a, &b| col[a].abs().total_cmp(&col[b].abs()))?;
        let sign = col[r].round();
        if sign.abs() != 1.0 || (col[r] - sign).abs() > tol || used[r] {
            return None;
        }
        if (0..3).any(|k| k != r && col[k].abs() > tol) {
            return None;
        }
        used[r] = true;
        *slot = (r, sign as i64, 0);
    }
    for (c, slot) in out.iter_mut().enumerate() {
        let r = slot.0;
        let t = m[r][3];
        if (t - t.round()).abs() > tol {
            return None;
        }
        slot.2 = t.round() as i64;
        // every target index along c must land inside `from`
        let a = slot.2;
        // a translation of 1e30 voxels rounds to i64::MAX: past the end, not an overflow
        let b = slot
            .1
            .checked_mul(to_dims[c] as i64 - 1)
            .and_then(|d| a.checked_add(d))?;
        if a.min(b) < 0 || a.max(b) >= from_dims[r] as i64 {
            return None;
        }
    }
    Some(out)
}

/// The source voxel index that a `grid_mapping` sends destination index `to` to.
pub fn map_index(map: &[(usize, i64, i64); 3], to: [i64; 3]) -> [i64; 3] {
    let mut from = [0i64; 3];
    for (c, (axis, sign, offset)) in map.iter().enumerate() {
        from[*axis] = offset + sign * to[c];
    }
    from
}

/// Re-import a NIfTI label map onto `volume`'s grid. The label map must lie exactly on the study's
/// voxels (any axis order or flip, as other tools may write it); its sidecar gives the segments.
pub fn reimport_nifti(path: &Path, volume: &Volume) -> Result<(LabelVolume, Vec<Segment>)> {
    let src = lumen_study::load_nifti_labels(path).map_err(|e| ExportError::read(path, e))?;
    let map = grid_mapping(&src.patient_from_voxel, src.dims, &volume.patient_from_voxel, volume.dims, 1e-3)
        .ok_or_else(|| {
            ExportError::mismatch(
                path,
                format!(
                    "the label map grid {:?} does not lie on the study's voxels {:?} (different geometry)",
                    src.dims, volume.dims
                ),
            )
        })?;
    let [nx, ny, nz] = volume.dims;
    let mut labels = vec![0u16; nx * ny * nz];
    let [sx, sy, _] = src.dims;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let from = map_index(&map, [x as i64, y as i64, z as i64]);
                let si = (from[2] as usize * sy + from[1] as usize) * sx + from[0] as usize;
                labels[(z * ny + y) * nx + x] = src.labels[si];
            }
        }
    }
    let segments = match read_sidecar(path)? {
        Some(s) => s,
        None => {
            let lv = LabelVolume {
                dims: volume.dims,
                labels: labels.clone(),
                patient_from_voxel: volume.patient_from_voxel,
            };
            lv.present_labels()
                .into_iter()
                .map(|l| Segment::new(l, &format!("Label {l}")))
                .collect()
        }
    };
    Ok((
        LabelVolume {
            dims: volume.dims,
            labels,
            patient_from_voxel: volume.patient_from_voxel,
        },
        segments,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use nifti::NiftiObject;

    #[test]
    fn header_has_matching_sform_and_qform_in_ras() {
        // oblique, left-handed LPS grid (like DICOM slices sorted head→feet)
        let c = 30f64.to_radians().cos();
        let s = 30f64.to_radians().sin();
        let pfv = geometry::from_columns(
            [0.7 * c, 0.7 * s, 0.0],
            [-0.8 * s, 0.8 * c, 0.0],
            [0.0, 0.0, -2.5],
            [-100.0, 50.0, 20.0],
        );
        let labels = LabelVolume {
            dims: [4, 3, 2],
            labels: (0..24).map(|i| (i % 3) as u16).collect(),
            patient_from_voxel: pfv,
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.nii.gz");
        write_nifti_labels(
            &p,
            &labels,
            &[Segment::new(1, "liver"), Segment::new(2, "spleen")],
        )
        .unwrap();
        let obj = nifti::ReaderOptions::new().read_file(&p).unwrap();
        let h = obj.header();
        assert_eq!(
            (h.sform_code, h.qform_code, h.datatype, h.intent_code),
            (1, 1, 2, 1002)
        );
        let sform = lumen_study::nifti::ras_affine(h);
        let mut hq = h.clone();
        hq.sform_code = 0;
        let qform = lumen_study::nifti::ras_affine(&hq);
        let ras = geometry::mul(&geometry::RAS_FROM_LPS, &pfv);
        assert!(geometry::max_abs_diff(&sform, &ras) < 1e-4, "{sform:?}");
        assert!(geometry::max_abs_diff(&qform, &ras) < 1e-4, "{qform:?}");
        let back = lumen_study::load_nifti_labels(&p).unwrap();
        assert_eq!(back.labels, labels.labels);
        let segs = read_sidecar(&p).unwrap().unwrap();
        assert_eq!(segs[1].name, "spleen");
        assert_eq!(segs[1].property_type.value, "78961009");
    }

    #[test]
    fn grid_mapping_finds_flips_and_refuses_shifts() {
        let a = geometry::from_columns(
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0],
        );
        // same grid with y flipped: index y' = 9 - y
        let b = geometry::from_columns(
            [1.0, 0.0, 0.0],
            [0.0, -1.0, 0.0],
            [0.0, 0.0, 2.0],
            [0.0, 9.0, 0.0],
        );
        let m = grid_mapping(&a, [5, 10, 3], &b, [5, 10, 3], 1e-6).unwrap();
        assert_eq!(m, [(0, 1, 0), (1, -1, 9), (2, 1, 0)]);
        // half-voxel shift is not the same grid
        let c = geometry::from_columns(
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 2.0],
            [0.5, 0.0, 0.0],
        );
        assert!(grid_mapping(&a, [5, 10, 3], &c, [5, 10, 3], 1e-6).is_none());
        // out of bounds
        assert!(grid_mapping(&a, [5, 10, 3], &a, [6, 10, 3], 1e-6).is_none());
    }
}
