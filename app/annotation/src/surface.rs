//! A segment's surface for the 3D view, from the label map by surface nets: one vertex in each
//! cell (2 × 2 × 2 voxel centres) that the surface crosses, at the mean of the crossings on its
//! edges, and one quad (two triangles) across each voxel edge whose two ends differ. Coarser
//! grids (`SampledLabels`, `step` voxels a sample) keep a large organ's mesh small enough to draw.

use lumen_study::geometry;
use std::collections::HashMap;

/// Triangles in patient space (LPS, mm).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Surface {
    pub positions: Vec<[f32; 3]>,
    /// Per vertex, the unit normal pointing out of the segment.
    pub normals: Vec<[f32; 3]>,
    /// Three vertex indices a triangle, wound counter-clockwise seen from outside.
    pub triangles: Vec<[u32; 3]>,
}

impl Surface {
    /// The volume enclosed (mm³), by the divergence theorem; exact for a closed mesh.
    pub fn enclosed_volume(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.positions[i as usize].map(f64::from));
                let cross = [
                    b[1] * c[2] - b[2] * c[1],
                    b[2] * c[0] - b[0] * c[2],
                    b[0] * c[1] - b[1] * c[0],
                ];
                (a[0] * cross[0] + a[1] * cross[1] + a[2] * cross[2]) / 6.0
            })
            .sum()
    }
}

/// A label map sampled every `step` voxels along each axis: what a surface is made from. Taking
/// it reads only the samples, so it is cheap enough for the UI thread, and it is small enough to
/// hand to a background job.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledLabels {
    labels: Vec<u8>,
    dims: [usize; 3],
    step: usize,
}

impl SampledLabels {
    /// Samples a `[z][y][x]` label map of `dims`.
    pub fn of(labels: &[u8], [nx, ny, nz]: [usize; 3], step: usize) -> Self {
        let step = step.max(1);
        let dims = [nx.div_ceil(step), ny.div_ceil(step), nz.div_ceil(step)];
        let mut sampled = Vec::with_capacity(dims.iter().product());
        for z in (0..nz).step_by(step) {
            for y in (0..ny).step_by(step) {
                for x in (0..nx).step_by(step) {
                    sampled.push(labels.get((z * ny + y) * nx + x).copied().unwrap_or(0));
                }
            }
        }
        Self {
            labels: sampled,
            dims,
            step,
        }
    }

    fn get(&self, [i, j, k]: [usize; 3]) -> Option<u8> {
        let [sx, sy, sz] = self.dims;
        (i < sx && j < sy && k < sz).then(|| self.labels[(k * sy + j) * sx + i])
    }
}

/// The surface of segment `label` in `sampled`, mapped to patient space by
/// `patient_from_voxel` (of the full-resolution grid).
pub fn segment_surface(
    sampled: &SampledLabels,
    label: u8,
    patient_from_voxel: &lumen_study::Mat4,
) -> Surface {
    let step = sampled.step;
    // the sampled grid, padded by one empty sample each side so the surface closes
    let size = sampled.dims.map(|d| d + 2);
    let inside = |[i, j, k]: [usize; 3]| -> bool {
        i > 0 && j > 0 && k > 0 && sampled.get([i - 1, j - 1, k - 1]) == Some(label)
    };
    // sample (i, j, k) → voxel coordinates of its centre
    let voxel = |p: [f32; 3]| p.map(|c| (c - 1.0) * step as f32);
    let mut vertex_of: HashMap<[usize; 3], u32> = HashMap::new();
    let mut surface = Surface::default();
    let corners: [[usize; 3]; 8] = [
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [1, 1, 0],
        [0, 0, 1],
        [1, 0, 1],
        [0, 1, 1],
        [1, 1, 1],
    ];
    // cells are named by their lowest corner; a cell is crossed when its corners differ
    let mut cell_vertex = |cell: [usize; 3], surface: &mut Surface| -> u32 {
        if let Some(v) = vertex_of.get(&cell) {
            return *v;
        }
        let states = corners.map(|c| inside([cell[0] + c[0], cell[1] + c[1], cell[2] + c[2]]));
        let (mut sum, mut count) = ([0.0f32; 3], 0.0f32);
        for (a, ca) in corners.iter().enumerate() {
            for (b, cb) in corners.iter().enumerate().skip(a + 1) {
                let one_axis = (0..3).filter(|&d| ca[d] != cb[d]).count() == 1;
                if one_axis && states[a] != states[b] {
                    for d in 0..3 {
                        sum[d] += cell[d] as f32 + (ca[d] + cb[d]) as f32 / 2.0;
                    }
                    count += 1.0;
                }
            }
        }
        let at = voxel(sum.map(|s| s / count.max(1.0)));
        let p = geometry::apply(patient_from_voxel, at.map(f64::from));
        surface.positions.push(p.map(|c| c as f32));
        let index = (surface.positions.len() - 1) as u32;
        vertex_of.insert(cell, index);
        index
    };
    for k in 0..size[2] - 1 {
        for j in 0..size[1] - 1 {
            for i in 0..size[0] - 1 {
                let here = inside([i, j, k]);
                // the edge from (i, j, k) along each axis, when the next sample differs
                for axis in 0..3 {
                    let mut next = [i, j, k];
                    next[axis] += 1;
                    if inside(next) == here {
                        continue;
                    }
                    // the four cells around this edge share it; it is not on the padding's rim
                    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
                    let base = [i, j, k];
                    if base[u] == 0 || base[v] == 0 {
                        continue;
                    }
                    let cell = |du: usize, dv: usize| {
                        let mut c = base;
                        c[u] = c[u] + du - 1;
                        c[v] = c[v] + dv - 1;
                        c
                    };
                    let quad = [cell(0, 0), cell(1, 0), cell(1, 1), cell(0, 1)]
                        .map(|c| cell_vertex(c, &mut surface));
                    // wound so the normal points from inside to outside
                    let [a, b, c, d] = if here {
                        quad
                    } else {
                        [quad[0], quad[3], quad[2], quad[1]]
                    };
                    surface.triangles.push([a, b, c]);
                    surface.triangles.push([a, c, d]);
                }
            }
        }
    }
    let columns = [0, 1, 2].map(|c| geometry::column(patient_from_voxel, c));
    if geometry::dot(columns[0], geometry::cross(columns[1], columns[2])) < 0.0 {
        // a mirroring transform turns every triangle inside out
        for t in &mut surface.triangles {
            t.swap(1, 2);
        }
    }
    surface.normals = vertex_normals(&surface);
    surface
}

/// Each vertex's normal: the sum of its triangles' area-weighted normals, made unit.
fn vertex_normals(surface: &Surface) -> Vec<[f32; 3]> {
    let mut normals = vec![[0.0f32; 3]; surface.positions.len()];
    for t in &surface.triangles {
        let [a, b, c] = t.map(|i| surface.positions[i as usize]);
        let (e1, e2) = (sub(b, a), sub(c, a));
        let n = [
            e1[1] * e2[2] - e1[2] * e2[1],
            e1[2] * e2[0] - e1[0] * e2[2],
            e1[0] * e2[1] - e1[1] * e2[0],
        ];
        for i in t {
            for d in 0..3 {
                normals[*i as usize][d] += n[d];
            }
        }
    }
    for n in &mut normals {
        let length = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-12);
        *n = n.map(|c| c / length);
    }
    normals
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use lumen_study::geometry::IDENTITY;

    /// A ball of radius `r` voxels in a cube of side `n`.
    fn ball(n: usize, r: f64) -> Vec<u8> {
        let c = (n as f64 - 1.0) / 2.0;
        (0..n * n * n)
            .map(|i| {
                let (x, y, z) = ((i % n) as f64, ((i / n) % n) as f64, (i / (n * n)) as f64);
                u8::from(((x - c).powi(2) + (y - c).powi(2) + (z - c).powi(2)).sqrt() <= r)
            })
            .collect()
    }

    #[test]
    fn a_ball_is_closed_and_encloses_about_its_voxels() {
        let labels = ball(24, 8.0);
        let voxels = labels.iter().filter(|l| **l == 1).count() as f64;
        let surface = segment_surface(&SampledLabels::of(&labels, [24, 24, 24], 1), 1, &IDENTITY);
        // closed: every edge is shared by exactly two triangles
        let mut edges: HashMap<(u32, u32), usize> = HashMap::new();
        for t in &surface.triangles {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *edges.entry((a.min(b), a.max(b))).or_default() += 1;
            }
        }
        assert!(edges.values().all(|n| *n == 2), "the mesh has holes");
        // outward and close to the voxels' volume (the net cuts the corners a little)
        let volume = surface.enclosed_volume();
        assert!(
            (volume - voxels).abs() < 0.08 * voxels,
            "{volume:.0} mm³ enclosed, {voxels} voxels"
        );
        // normals point away from the centre
        let outward = surface
            .positions
            .iter()
            .zip(&surface.normals)
            .filter(|(p, n)| {
                let d = p.map(|c| c - 11.5);
                d[0] * n[0] + d[1] * n[1] + d[2] * n[2] > 0.0
            })
            .count();
        assert!(outward as f64 > 0.99 * surface.positions.len() as f64);
    }

    #[test]
    fn spacing_scales_the_volume_and_a_coarser_grid_keeps_it() {
        let labels = ball(24, 8.0);
        let mut m = IDENTITY;
        m[0][0] = 0.5;
        m[1][1] = 0.5;
        m[2][2] = 3.0;
        let sampled = |step| SampledLabels::of(&labels, [24, 24, 24], step);
        let fine = segment_surface(&sampled(1), 1, &m);
        let coarse = segment_surface(&sampled(2), 1, &m);
        let voxels = labels.iter().filter(|l| **l == 1).count() as f64 * 0.75;
        for (name, surface) in [("fine", &fine), ("coarse", &coarse)] {
            let volume = surface.enclosed_volume();
            assert!(
                (volume - voxels).abs() < 0.15 * voxels,
                "{name}: {volume:.0} mm³ against {voxels:.0}"
            );
        }
        assert!(coarse.triangles.len() * 3 < fine.triangles.len());
        assert!(segment_surface(&sampled(1), 2, &m).triangles.is_empty());
    }
}
