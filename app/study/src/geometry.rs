//! Small 3D geometry helpers: 4×4 affines (row-major, column vectors), LPS ↔ RAS.
//!
//! `patient_from_voxel` maps a voxel index `(x, y, z, 1)` — x = column, y = row, z = slice —
//! to DICOM patient coordinates (LPS, millimetres).

/// A 4×4 affine, row-major: `m[row][col]`, acting on column vectors `(x, y, z, 1)`.
pub type Mat4 = [[f64; 4]; 4];

/// The identity affine.
pub const IDENTITY: Mat4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// LPS → RAS (and back: the flip is its own inverse).
pub const RAS_FROM_LPS: Mat4 = [
    [-1.0, 0.0, 0.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Matrix product `a · b`.
pub fn mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut out = [[0.0; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// Apply an affine to a point.
pub fn apply(m: &Mat4, p: [f64; 3]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (r, v) in out.iter_mut().enumerate() {
        *v = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
    }
    out
}

/// Column `c` (0..3) of the linear part.
pub fn column(m: &Mat4, c: usize) -> [f64; 3] {
    [m[0][c], m[1][c], m[2][c]]
}

/// Inverse of an affine (last row `0 0 0 1`); `None` when the linear part is singular.
pub fn inverse(m: &Mat4) -> Option<Mat4> {
    let a = [
        [m[0][0], m[0][1], m[0][2]],
        [m[1][0], m[1][1], m[1][2]],
        [m[2][0], m[2][1], m[2][2]],
    ];
    let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut inv = [[0.0; 3]; 3];
    inv[0][0] = (a[1][1] * a[2][2] - a[1][2] * a[2][1]) * inv_det;
    inv[0][1] = (a[0][2] * a[2][1] - a[0][1] * a[2][2]) * inv_det;
    inv[0][2] = (a[0][1] * a[1][2] - a[0][2] * a[1][1]) * inv_det;
    inv[1][0] = (a[1][2] * a[2][0] - a[1][0] * a[2][2]) * inv_det;
    inv[1][1] = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) * inv_det;
    inv[1][2] = (a[0][2] * a[1][0] - a[0][0] * a[1][2]) * inv_det;
    inv[2][0] = (a[1][0] * a[2][1] - a[1][1] * a[2][0]) * inv_det;
    inv[2][1] = (a[0][1] * a[2][0] - a[0][0] * a[2][1]) * inv_det;
    inv[2][2] = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) * inv_det;
    let t = [m[0][3], m[1][3], m[2][3]];
    let mut out = IDENTITY;
    for r in 0..3 {
        for c in 0..3 {
            out[r][c] = inv[r][c];
        }
        out[r][3] = -(inv[r][0] * t[0] + inv[r][1] * t[1] + inv[r][2] * t[2]);
    }
    Some(out)
}

/// Dot product.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Cross product.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// `a - b`.
pub fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// `a * s`.
pub fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// Euclidean length.
pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// Unit vector (or the input when its length is zero).
pub fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

/// Build an affine from three columns and an origin.
pub fn from_columns(cx: [f64; 3], cy: [f64; 3], cz: [f64; 3], origin: [f64; 3]) -> Mat4 {
    [
        [cx[0], cy[0], cz[0], origin[0]],
        [cx[1], cy[1], cz[1], origin[1]],
        [cx[2], cy[2], cz[2], origin[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// Voxel spacing (length of each column of the linear part).
pub fn spacing(m: &Mat4) -> [f64; 3] {
    [norm(column(m, 0)), norm(column(m, 1)), norm(column(m, 2))]
}

/// Largest absolute element-wise difference between two affines.
pub fn max_abs_diff(a: &Mat4, b: &Mat4) -> f64 {
    let mut d: f64 = 0.0;
    for r in 0..4 {
        for c in 0..4 {
            d = d.max((a[r][c] - b[r][c]).abs());
        }
    }
    d
}

/// A NIfTI quaternion form (qform) of an affine: `(b, c, d, qfac, pixdim[3], offset[3])`.
///
/// The rotation is taken from the orthonormalised columns, so a sheared affine (gantry tilt)
/// is approximated; the sform keeps it exact.
pub fn to_quaternion(m: &Mat4) -> ([f64; 3], f64, [f64; 3], [f64; 3]) {
    let px = spacing(m);
    let c0 = normalize(column(m, 0));
    let mut c1 = column(m, 1);
    // Gram-Schmidt
    c1 = normalize(sub(c1, scale(c0, dot(c0, c1))));
    let mut c2 = cross(c0, c1);
    let qfac = if dot(c2, column(m, 2)) < 0.0 {
        -1.0
    } else {
        1.0
    };
    if qfac < 0.0 {
        c2 = scale(c2, -1.0);
    }
    // rotation matrix R (columns c0, c1, c2 with c2 multiplied by qfac in the stored matrix)
    let r = [
        [c0[0], c1[0], c2[0] * qfac],
        [c0[1], c1[1], c2[1] * qfac],
        [c0[2], c1[2], c2[2] * qfac],
    ];
    // Shepperd's method as in nifti1_io mat44_to_quatern
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let a = r11 + r22 + r33 + 1.0;
    let (mut qa, mut qb, mut qc, mut qd);
    if a > 0.5 {
        qa = 0.5 * a.sqrt();
        qb = 0.25 * (r32 - r23) / qa;
        qc = 0.25 * (r13 - r31) / qa;
        qd = 0.25 * (r21 - r12) / qa;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            qb = 0.5 * xd.sqrt();
            qc = 0.25 * (r12 + r21) / qb;
            qd = 0.25 * (r13 + r31) / qb;
            qa = 0.25 * (r32 - r23) / qb;
        } else if yd > 1.0 {
            qc = 0.5 * yd.sqrt();
            qb = 0.25 * (r12 + r21) / qc;
            qd = 0.25 * (r23 + r32) / qc;
            qa = 0.25 * (r13 - r31) / qc;
        } else {
            qd = 0.5 * zd.sqrt();
            qb = 0.25 * (r13 + r31) / qd;
            qc = 0.25 * (r23 + r32) / qd;
            qa = 0.25 * (r21 - r12) / qd;
        }
        if qa < 0.0 {
            qb = -qb;
            qc = -qc;
            qd = -qd;
            qa = -qa;
        }
    }
    let _ = qa;
    ([qb, qc, qd], qfac, px, [m[0][3], m[1][3], m[2][3]])
}

/// The affine of a NIfTI qform (nifti1_io quatern_to_mat44).
pub fn from_quaternion(bcd: [f64; 3], qfac: f64, pixdim: [f64; 3], offset: [f64; 3]) -> Mat4 {
    let [b, c, d] = bcd;
    let a2 = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if a2 < 1e-7 {
        let n = (b * b + c * c + d * d).sqrt().max(1e-12);
        (0.0, b / n, c / n, d / n)
    } else {
        (a2.sqrt(), b, c, d)
    };
    let qfac = if qfac < 0.0 { -1.0 } else { 1.0 };
    let (x, y, z) = (pixdim[0], pixdim[1], pixdim[2] * qfac);
    [
        [
            (a * a + b * b - c * c - d * d) * x,
            2.0 * (b * c - a * d) * y,
            2.0 * (b * d + a * c) * z,
            offset[0],
        ],
        [
            2.0 * (b * c + a * d) * x,
            (a * a + c * c - b * b - d * d) * y,
            2.0 * (c * d - a * b) * z,
            offset[1],
        ],
        [
            2.0 * (b * d - a * c) * x,
            2.0 * (c * d + a * b) * y,
            (a * a + d * d - c * c - b * b) * z,
            offset[2],
        ],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn inverse_round_trips() {
        let m = from_columns(
            [0.7, 0.0, 0.0],
            [0.0, 0.6, -0.2],
            [0.1, 0.3, 2.5],
            [10.0, -5.0, 3.0],
        );
        let inv = inverse(&m).unwrap();
        let p = apply(&inv, apply(&m, [3.0, 4.0, 5.0]));
        assert!(
            (p[0] - 3.0).abs() < 1e-9 && (p[1] - 4.0).abs() < 1e-9 && (p[2] - 5.0).abs() < 1e-9
        );
        assert!(inverse(&[[0.0; 4]; 4]).is_none());
    }

    #[test]
    fn quaternion_round_trips_rotations_and_flips() {
        for m in [
            from_columns(
                [0.0, -1.0, 0.0],
                [0.0, 0.0, -2.0],
                [3.0, 0.0, 0.0],
                [1.0, 2.0, 3.0],
            ),
            from_columns(
                [-0.8, 0.0, 0.0],
                [0.0, -0.8, 0.0],
                [0.0, 0.0, 2.0],
                [1.0, 2.0, 3.0],
            ),
            from_columns(
                [0.8, 0.0, 0.0],
                [0.0, 0.8, 0.0],
                [0.0, 0.0, -2.0],
                [0.0, 0.0, 0.0],
            ),
        ] {
            let (bcd, qfac, px, off) = to_quaternion(&m);
            let back = from_quaternion(bcd, qfac, px, off);
            assert!(max_abs_diff(&m, &back) < 1e-6, "{m:?} vs {back:?}");
        }
    }
}
