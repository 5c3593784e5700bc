//! The planes across the slices: a volume cut along a fixed row or a fixed column, shown with
//! the slices running down the screen toward the patient's feet, at the voxels' true aspect.

use crate::Volume;
use crate::geometry::column;

/// A 2D cut of a volume that is shown, prompted and segmented: a slice, or a plane across them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    /// Slice z of the acquisition.
    Slice(usize),
    /// The plane across the slices holding this row (`Across::Row`) or column fixed.
    Across(Across, usize),
}

impl Cut {
    /// Its place in its stack: the slice, row or column it holds fixed.
    pub fn index(&self) -> usize {
        match *self {
            Cut::Slice(z) => z,
            Cut::Across(_, index) => index,
        }
    }

    /// The cut of the same stack at `index` (the next slice, row or column along the normal).
    pub fn with_index(&self, index: usize) -> Cut {
        match *self {
            Cut::Slice(_) => Cut::Slice(index),
            Cut::Across(across, _) => Cut::Across(across, index),
        }
    }

    /// The (width, height) of its grid in `volume`.
    pub fn size(&self, volume: &Volume) -> (usize, usize) {
        match *self {
            Cut::Slice(_) => (volume.dims[0], volume.dims[1]),
            Cut::Across(across, index) => Reformat::of(across, index, volume).size(),
        }
    }

    /// A grid pixel's height over its width (1 on a slice).
    pub fn pixel_aspect(&self, volume: &Volume) -> f32 {
        match *self {
            Cut::Slice(_) => 1.0,
            Cut::Across(across, index) => {
                Reformat::of(across, index, volume).pixel_aspect(volume.spacing)
            }
        }
    }

    /// The cut of a `[z][y][x]` buffer on `volume`'s grid (voxels, labels), row-major.
    pub fn gather<T: Copy + Default>(&self, volume: &Volume, voxels: &[T]) -> Vec<T> {
        match *self {
            Cut::Slice(z) => {
                let n = volume.slice_len();
                voxels.get(z * n..(z + 1) * n).unwrap_or(&[]).to_vec()
            }
            Cut::Across(across, index) => Reformat::of(across, index, volume).gather(voxels),
        }
    }

    /// How many cuts its stack holds in a volume of `dims`.
    pub fn depth(&self, [nx, ny, nz]: [usize; 3]) -> usize {
        match self {
            Cut::Slice(_) => nz,
            Cut::Across(Across::Row, _) => ny,
            Cut::Across(Across::Column, _) => nx,
        }
    }
}

/// Which voxel index a reformatted plane holds fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Across {
    /// A fixed row: columns across, slices down (coronal for an axial scan).
    Row,
    /// A fixed column: rows across, slices down (sagittal for an axial scan).
    Column,
}

/// One reformatted plane of a volume at a crosshair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reformat {
    pub across: Across,
    /// The fixed row or column.
    pub index: usize,
    dims: [usize; 3],
    /// Screen rows run against the slice index (the slices go toward the head).
    flipped: bool,
}

impl Reformat {
    /// The plane through `crosshair` (`[x, y, z]` voxels) that holds its row or column fixed.
    pub fn new(across: Across, volume: &Volume, crosshair: [usize; 3]) -> Self {
        let dims = volume.dims;
        let index = match across {
            Across::Row => crosshair[1].min(dims[1].saturating_sub(1)),
            Across::Column => crosshair[0].min(dims[0].saturating_sub(1)),
        };
        // LPS: +z is superior; screen rows must go toward the feet
        let flipped = column(&volume.patient_from_voxel, 2)[2] > 0.0;
        Self {
            across,
            index,
            dims,
            flipped,
        }
    }

    /// The plane `index` across the slices of `volume`.
    pub fn of(across: Across, index: usize, volume: &Volume) -> Self {
        let crosshair = match across {
            Across::Row => [0, index, 0],
            Across::Column => [index, 0, 0],
        };
        Self::new(across, volume, crosshair)
    }

    /// The cut this plane is.
    pub fn cut(&self) -> Cut {
        Cut::Across(self.across, self.index)
    }

    /// (width, height) in image pixels: the in-plane voxel axis across, the slices down.
    pub fn size(&self) -> (usize, usize) {
        (self.in_plane_len(), self.dims[2])
    }

    fn in_plane_len(&self) -> usize {
        match self.across {
            Across::Row => self.dims[0],
            Across::Column => self.dims[1],
        }
    }

    /// The slice shown on screen row `v`.
    fn slice_of_row(&self, v: usize) -> usize {
        if self.flipped {
            self.dims[2].saturating_sub(1).saturating_sub(v)
        } else {
            v
        }
    }

    /// The voxel `[x, y, z]` under image pixel (u, v).
    pub fn voxel(&self, u: usize, v: usize) -> [usize; 3] {
        let z = self.slice_of_row(v);
        match self.across {
            Across::Row => [u, self.index, z],
            Across::Column => [self.index, u, z],
        }
    }

    /// The image pixel (u, v) showing voxel `[x, y, z]` (the plane's own index ignored).
    pub fn pixel(&self, [x, y, z]: [usize; 3]) -> (usize, usize) {
        let u = match self.across {
            Across::Row => x,
            Across::Column => y,
        };
        (u, self.slice_of_row(z))
    }

    /// Where the voxel behind pixel (u, v) sits in a `[z][y][x]` buffer.
    pub fn source_index(&self, u: usize, v: usize) -> usize {
        let [x, y, z] = self.voxel(u, v);
        (z * self.dims[1] + y) * self.dims[0] + x
    }

    /// Gathers the plane from a `[z][y][x]` buffer (voxels, labels), row-major.
    pub fn gather<T: Copy + Default>(&self, voxels: &[T]) -> Vec<T> {
        let (w, h) = self.size();
        let mut out = Vec::with_capacity(w * h);
        for v in 0..h {
            for u in 0..w {
                out.push(
                    voxels
                        .get(self.source_index(u, v))
                        .copied()
                        .unwrap_or_default(),
                );
            }
        }
        out
    }

    /// The plane's voxel values.
    pub fn values(&self, volume: &Volume) -> Vec<f32> {
        self.gather(&volume.voxels)
    }

    /// A screen pixel's height over its width: the slice spacing over the in-plane one.
    pub fn pixel_aspect(&self, spacing: [f64; 3]) -> f32 {
        let across = match self.across {
            Across::Row => spacing[0],
            Across::Column => spacing[1],
        };
        (spacing[2] / across.max(1e-6)) as f32
    }

    /// The patient directions (LPS) of +u (across) and +v (down), and mm per pixel across.
    pub fn axes(&self, volume: &Volume) -> ([f64; 3], [f64; 3], f64) {
        let m = &volume.patient_from_voxel;
        let (across, mm) = match self.across {
            Across::Row => (column(m, 0), volume.spacing[0]),
            Across::Column => (column(m, 1), volume.spacing[1]),
        };
        let slices = column(m, 2);
        let down = if self.flipped {
            slices.map(|c| -c)
        } else {
            slices
        };
        (across, down, mm)
    }

    /// The plane's name from its normal (the fixed axis): axial, coronal or sagittal.
    pub fn name(&self, volume: &Volume) -> &'static str {
        let normal = column(
            &volume.patient_from_voxel,
            match self.across {
                Across::Row => 1,
                Across::Column => 0,
            },
        );
        plane_name(normal)
    }
}

/// Axial, coronal or sagittal: the patient axis a plane's normal lies closest to.
pub fn plane_name(normal: [f64; 3]) -> &'static str {
    let [l, p, s] = normal.map(f64::abs);
    if s >= l && s >= p {
        "Axial"
    } else if p >= l {
        "Coronal"
    } else {
        "Sagittal"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::geometry::IDENTITY;

    /// 3 × 2 × 4 voxels of 0.5 × 0.5 × 2 mm, value = 100 z + 10 y + x, slices toward the head.
    fn volume() -> Volume {
        let mut m = IDENTITY;
        m[0][0] = 0.5;
        m[1][1] = 0.5;
        m[2][2] = 2.0;
        Volume {
            dims: [3, 2, 4],
            voxels: (0..24)
                .map(|i| (100 * (i / 6) + 10 * ((i / 3) % 2) + i % 3) as f32)
                .collect(),
            spacing: [0.5, 0.5, 2.0],
            patient_from_voxel: m,
            ..Volume::default()
        }
    }

    #[test]
    fn a_fixed_row_shows_columns_across_and_the_head_at_the_top() {
        let volume = volume();
        let coronal = Reformat::new(Across::Row, &volume, [2, 1, 0]);
        assert_eq!(coronal.name(&volume), "Coronal");
        assert_eq!(coronal.size(), (3, 4));
        // top row: the last (most superior) slice; x across
        assert_eq!(
            coronal.values(&volume),
            vec![
                310., 311., 312., 210., 211., 212., 110., 111., 112., 10., 11., 12.
            ]
        );
        assert_eq!(coronal.voxel(1, 0), [1, 1, 3]);
        assert_eq!(coronal.pixel([1, 1, 3]), (1, 0));
        assert_eq!(coronal.pixel_aspect(volume.spacing), 4.0);
        let (across, down, mm) = coronal.axes(&volume);
        assert_eq!((across, down, mm), ([0.5, 0.0, 0.0], [0.0, 0.0, -2.0], 0.5));
    }

    #[test]
    fn a_fixed_column_shows_rows_across_and_follows_the_slice_direction() {
        let mut volume = volume();
        let sagittal = Reformat::new(Across::Column, &volume, [2, 0, 0]);
        assert_eq!(sagittal.name(&volume), "Sagittal");
        assert_eq!(sagittal.size(), (2, 4));
        assert_eq!(&sagittal.values(&volume)[..2], &[302., 312.]);
        // slices stored feet-first from the top: no flip
        volume.patient_from_voxel[2][2] = -2.0;
        let sagittal = Reformat::new(Across::Column, &volume, [2, 0, 0]);
        assert_eq!(&sagittal.values(&volume)[..2], &[2., 12.]);
        assert_eq!(sagittal.voxel(1, 3), [2, 1, 3]);
    }

    #[test]
    fn labels_are_gathered_like_the_values() {
        let volume = volume();
        let mut labels = vec![0u8; 24];
        labels[3 * 6 + 3 + 2] = 7; // slice 3, row 1, column 2
        let coronal = Reformat::of(Across::Row, 1, &volume);
        let plane = coronal.gather(&labels);
        assert_eq!(plane.iter().filter(|l| **l == 7).count(), 1);
        assert_eq!(plane[2], 7, "slice 3 is the top row; x = 2");
        assert_eq!(coronal.source_index(2, 0), 3 * 6 + 3 + 2);
        assert_eq!(coronal.cut(), Cut::Across(Across::Row, 1));
        assert_eq!(coronal.cut().with_index(0), Cut::Across(Across::Row, 0));
        assert_eq!(coronal.cut().depth(volume.dims), 2);
        assert_eq!(Cut::Slice(3).depth(volume.dims), 4);
        assert_eq!(coronal.cut().size(&volume), coronal.size());
        assert_eq!(coronal.cut().gather(&volume, &labels), plane);
        assert_eq!(Cut::Slice(3).size(&volume), (3, 2));
        assert_eq!(
            Cut::Slice(3).gather(&volume, &labels),
            labels[18..24].to_vec()
        );
        assert_eq!(Cut::Slice(3).pixel_aspect(&volume), 1.0);
    }
}
