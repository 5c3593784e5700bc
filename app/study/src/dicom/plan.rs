//! Geometry planning: the slice order along the normal, spacing, and the warnings a radiologist must see (gaps, tilt, uneven spacing).

use super::guards::ORTHOGONAL_TOLERANCE;
use super::{FrameHeader, ORIENTATION_TOLERANCE, POSITION_TOLERANCE_MM};
use crate::geometry::Mat4;
use crate::{Result, StudyError, geometry};
use std::collections::BTreeSet;
use std::path::Path;

/// How the frames of a series form a volume.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Frame indices in slice order.
    pub order: Vec<usize>,
    pub patient_from_voxel: Mat4,
    pub spacing: [f64; 3],
    pub warnings: Vec<String>,
}

pub(super) fn median(v: &[f64]) -> f64 {
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
pub(super) fn plan_geometry(frames: &[FrameHeader], where_: &Path) -> Result<Plan> {
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
        return Ok(instance_order(frames, ps, fallback_dz, warnings));
    }
    let (row, col, normal) = slice_axes(frames, where_, &mut warnings)?;
    let pos = |i: usize| frames[i].position.unwrap_or([0.0; 3]);
    let along = |i: usize| geometry::dot(pos(i), normal);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        along(a)
            .total_cmp(&along(b))
            .then(frames[a].instance_number.cmp(&frames[b].instance_number))
    });
    let order = without_duplicates(frames, &order, normal, where_, &mut warnings)?;
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
    let steps: Vec<f64> = order
        .windows(2)
        .map(|w| along(w[1]) - along(w[0]))
        .collect();
    warnings.extend(spacing_warning(&steps));
    let span = geometry::sub(last, first);
    let cz = geometry::scale(span, 1.0 / (n as f64 - 1.0));
    let cosine = geometry::dot(geometry::normalize(span), normal).clamp(-1.0, 1.0);
    let tilt_deg = cosine.abs().acos().to_degrees();
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

/// The plan of frames without patient geometry: file / frame / instance order, a grid in pixel
/// units, with a warning saying so.
fn instance_order(
    frames: &[FrameHeader],
    ps: [f64; 2],
    fallback_dz: f64,
    mut warnings: Vec<String>,
) -> Plan {
    let mut order: Vec<usize> = (0..frames.len()).collect();
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
    Plan {
        order,
        patient_from_voxel: pfv,
        spacing: [ps[1], ps[0], fallback_dz],
        warnings,
    }
}

/// The row, column and normal directions shared by every frame; refuses mixed or degenerate
/// orientations and warns of a skewed one.
fn slice_axes(
    frames: &[FrameHeader],
    where_: &Path,
    warnings: &mut Vec<String>,
) -> Result<([f64; 3], [f64; 3], [f64; 3])> {
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
    Ok((row, col, normal))
}

/// `order` (sorted along `normal`) without repeated images of one instance; two different
/// images at one position are refused (several acquisitions or time points in one series).
fn without_duplicates(
    frames: &[FrameHeader],
    order: &[usize],
    normal: [f64; 3],
    where_: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<usize>> {
    let along = |i: usize| geometry::dot(frames[i].position.unwrap_or([0.0; 3]), normal);
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    let mut dropped = 0usize;
    for &i in order {
        if let Some(&last) = kept.last() {
            let d = along(i) - along(last);
            if d.abs() < POSITION_TOLERANCE_MM {
                let same = frames[i].sop_instance_uid == frames[last].sop_instance_uid
                    && frames[i].frame == frames[last].frame;
                if same {
                    dropped += 1;
                    continue;
                }
                let distinct: BTreeSet<i64> = order
                    .iter()
                    .map(|&k| (along(k) * 100.0).round() as i64)
                    .collect();
                if distinct.len() == 1 {
                    return Err(StudyError::not_a_volume(
                        where_,
                        format!(
                            "all {} images lie at the same position ({:.2} mm along the slice normal)",
                            frames.len(),
                            along(i)
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
                        along(i)
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
    Ok(kept)
}

/// A warning when the steps between slices are uneven: missing slices where steps are whole
/// multiples of the usual one, else uneven spacing.
fn spacing_warning(steps: &[f64]) -> Option<String> {
    let med = median(steps);
    let (min_s, max_s) = steps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let tol = (0.01 * med).max(POSITION_TOLERANCE_MM);
    if max_s - min_s <= tol {
        return None;
    }
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
    Some(if missing > 0 {
        format!(
            "{missing} slice(s) appear to be missing (steps {min_s:.2}–{max_s:.2} mm, usual {med:.2} mm); \
             the volume uses an even step, so positions near the gap are approximate"
        )
    } else {
        format!(
            "uneven slice spacing: steps from {min_s:.2} to {max_s:.2} mm (median {med:.2} mm); the \
             volume uses the mean step, so positions between slices are approximate"
        )
    })
}
