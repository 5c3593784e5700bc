//! Segments and their voxels. Every change is one undoable step stored as a diff of the voxels
//! it touched, never a copy of the volume.

use ndarray::ArrayView2;

/// One annotated structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its value in the label map (1..=255).
    pub label: u8,
    pub name: String,
    pub color: [u8; 3],
    pub visible: bool,
    /// A locked segment's voxels are never overwritten by another segment's edits.
    pub locked: bool,
}

impl Segment {
    /// A visible, unlocked segment in the organ's usual colour (the one exports use), or a
    /// palette colour for names Lumen does not know.
    pub fn new(label: u8, name: &str) -> Self {
        let color = crate::export::Segment::new(u16::from(label), name).color;
        Self {
            label,
            name: name.to_string(),
            color,
            visible: true,
            locked: false,
        }
    }
}

/// The voxels of slice `z` of a `dims` grid under `mask`, by index into the label map, each with
/// whether it is inside; nothing when the slice or the mask's size is not the grid's.
pub(crate) fn slice_voxels(
    [nx, ny, nz]: [usize; 3],
    z: usize,
    mask: ArrayView2<bool>,
) -> Vec<(usize, bool)> {
    if z >= nz || mask.dim() != (ny, nx) {
        return Vec::new();
    }
    mask.indexed_iter()
        .map(|((y, x), inside)| ((z * ny + y) * nx + x, *inside))
        .collect()
}

/// One undoable step: the voxels it changed, with their labels before and after.
#[derive(Debug, Clone)]
struct Edit {
    what: String,
    changes: Vec<(u32, u8, u8)>,
}

/// The annotation of one study.
#[derive(Debug, Clone)]
pub struct Document {
    dims: [usize; 3],
    labels: Vec<u8>,
    segments: Vec<Segment>,
    undo: Vec<Edit>,
    redo: Vec<Edit>,
    voxel_ml: f64,
    /// Bumped by every change, so autosave can tell whether there is anything new to write.
    revision: u64,
    /// Per slice, the revision that last changed its voxels, so what is derived from the voxels
    /// (the statistics) is remade for those slices only.
    slice_revisions: Vec<u64>,
}

impl Document {
    /// An empty document on a grid of `dims` = [nx, ny, nz] voxels of `spacing` mm.
    pub fn new(dims: [usize; 3], spacing: [f64; 3]) -> Self {
        Self {
            dims,
            labels: vec![0; dims[0] * dims[1] * dims[2]],
            segments: Vec::new(),
            undo: Vec::new(),
            redo: Vec::new(),
            voxel_ml: spacing.iter().product::<f64>() / 1000.0,
            revision: 0,
            slice_revisions: vec![0; dims[2]],
        }
    }

    /// Replaces the content with imported voxels and segments, clearing the history.
    pub(super) fn restore(&mut self, labels: Vec<u8>, segments: Vec<Segment>) {
        if labels.len() == self.labels.len() {
            self.labels = labels;
            self.segments = segments;
            self.undo.clear();
            self.redo.clear();
            self.revision += 1;
            self.slice_revisions.fill(self.revision);
        }
    }

    /// Changes so far; any change makes it larger.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision that last changed slice `z`'s voxels (0: never; a segment's name or colour
    /// is not a change of voxels).
    pub fn slice_revision(&self, z: usize) -> u64 {
        self.slice_revisions.get(z).copied().unwrap_or(0)
    }

    /// Marks a new revision, and the slices holding `changes` as changed in it.
    fn touch(&mut self, changes: &[(u32, u8, u8)]) {
        self.revision += 1;
        let plane = (self.dims[0] * self.dims[1]).max(1);
        for &(index, _, _) in changes {
            if let Some(slice) = self.slice_revisions.get_mut(index as usize / plane) {
                *slice = self.revision;
            }
        }
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// A segment to rename, recolour, hide or lock (counted as a change for autosave).
    pub fn segment_mut(&mut self, label: u8) -> Option<&mut Segment> {
        self.revision += 1;
        self.segments.iter_mut().find(|s| s.label == label)
    }

    /// The label map, `[z][y][x]`.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Labels of slice `z`, row-major.
    pub fn slice_labels(&self, z: usize) -> &[u8] {
        let n = self.dims[0] * self.dims[1];
        self.labels.get(z * n..(z + 1) * n).unwrap_or(&[])
    }

    /// Adds a segment with the next free label and its organ colour; None when all 255 are used.
    pub fn add_segment(&mut self, name: &str) -> Option<u8> {
        let label = (1..=255u8).find(|l| self.segments.iter().all(|s| s.label != *l))?;
        self.segments.push(Segment::new(label, name));
        self.revision += 1;
        Some(label)
    }

    /// Makes `mask` the extent of segment `label` on slice `z`: pixels in the mask join it (except
    /// those of other, locked segments), its pixels outside the mask leave it. One undoable step.
    /// Returns the number of voxels changed.
    pub fn set_slice_mask(
        &mut self,
        z: usize,
        label: u8,
        mask: ArrayView2<bool>,
        what: &str,
    ) -> usize {
        self.set_voxels(&slice_voxels(self.dims, z, mask), label, what)
    }

    /// As [`Document::set_slice_mask`], for any voxels (by index into the label map) with
    /// whether each is inside: a plane across the slices, say. One undoable step.
    pub fn set_voxels(&mut self, voxels: &[(usize, bool)], label: u8, what: &str) -> usize {
        let locked: Vec<u8> = self
            .segments
            .iter()
            .filter(|s| s.locked && s.label != label)
            .map(|s| s.label)
            .collect();
        let mut changes = Vec::new();
        for &(index, inside) in voxels {
            let Some(&old) = self.labels.get(index) else {
                continue;
            };
            let new = match (inside, old) {
                (true, old) if locked.contains(&old) => old,
                (true, _) => label,
                (false, old) if old == label => 0,
                (false, old) => old,
            };
            if new != old {
                changes.push((index as u32, old, new));
            }
        }
        self.apply(Edit {
            what: what.to_string(),
            changes,
        })
    }

    fn apply(&mut self, edit: Edit) -> usize {
        let count = edit.changes.len();
        if count == 0 {
            return 0;
        }
        for &(index, _, new) in &edit.changes {
            self.labels[index as usize] = new;
        }
        self.touch(&edit.changes);
        self.undo.push(edit);
        self.redo.clear();
        count
    }

    /// Reverts the last step; returns what it was.
    pub fn undo(&mut self) -> Option<String> {
        let edit = self.undo.pop()?;
        for &(index, old, _) in &edit.changes {
            self.labels[index as usize] = old;
        }
        self.touch(&edit.changes);
        let what = edit.what.clone();
        self.redo.push(edit);
        Some(what)
    }

    /// Re-applies the last undone step; returns what it was.
    pub fn redo(&mut self) -> Option<String> {
        let edit = self.redo.pop()?;
        for &(index, _, new) in &edit.changes {
            self.labels[index as usize] = new;
        }
        self.touch(&edit.changes);
        let what = edit.what.clone();
        self.undo.push(edit);
        Some(what)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Voxels of segment `label` on slice `z`.
    pub fn slice_count(&self, z: usize, label: u8) -> usize {
        self.slice_labels(z).iter().filter(|l| **l == label).count()
    }

    /// Volume of segment `label` in millilitres.
    pub fn volume_ml(&self, label: u8) -> f64 {
        self.labels.iter().filter(|l| **l == label).count() as f64 * self.voxel_ml
    }

    /// Slices on which segment `label` has voxels.
    pub fn slices_with(&self, label: u8) -> Vec<usize> {
        (0..self.dims[2])
            .filter(|z| self.slice_labels(*z).contains(&label))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn square(n: usize, from: usize, to: usize) -> Array2<bool> {
        Array2::from_shape_fn((n, n), |(y, x)| {
            (from..to).contains(&x) && (from..to).contains(&y)
        })
    }

    #[test]
    fn accept_undo_redo_round_trip_with_volume() {
        let mut doc = Document::new([10, 10, 3], [2.0, 2.0, 5.0]); // 20 µL voxels
        let liver = doc.add_segment("Liver").unwrap();
        assert_eq!(
            doc.set_slice_mask(1, liver, square(10, 2, 7).view(), "box"),
            25
        );
        assert!((doc.volume_ml(liver) - 0.5).abs() < 1e-9);
        // A refined mask replaces the slice's extent: 9 stay, 16 leave.
        assert_eq!(
            doc.set_slice_mask(1, liver, square(10, 2, 5).view(), "refine"),
            16
        );
        assert_eq!(doc.slice_count(1, liver), 9);
        assert_eq!(doc.undo().as_deref(), Some("refine"));
        assert_eq!(doc.slice_count(1, liver), 25);
        assert_eq!(doc.undo().as_deref(), Some("box"));
        assert_eq!(doc.volume_ml(liver), 0.0);
        assert!(doc.undo().is_none());
        assert_eq!(doc.redo().as_deref(), Some("box"));
        assert_eq!(doc.slices_with(liver), vec![1]);
    }

    #[test]
    fn locked_segments_are_not_overwritten() {
        let mut doc = Document::new([10, 10, 1], [1.0; 3]);
        let spleen = doc.add_segment("Spleen").unwrap();
        let kidney = doc.add_segment("Kidney").unwrap();
        doc.set_slice_mask(0, spleen, square(10, 0, 5).view(), "spleen");
        doc.segment_mut(spleen).unwrap().locked = true;
        doc.set_slice_mask(0, kidney, square(10, 3, 8).view(), "kidney");
        assert_eq!(doc.slice_count(0, spleen), 25);
        assert_eq!(doc.slice_count(0, kidney), 25 - 4);
    }

    #[test]
    fn a_new_edit_clears_redo_and_a_wrong_sized_mask_changes_nothing() {
        let mut doc = Document::new([4, 4, 1], [1.0; 3]);
        let l = doc.add_segment("A").unwrap();
        doc.set_slice_mask(0, l, square(4, 0, 2).view(), "a");
        doc.undo();
        doc.set_slice_mask(0, l, square(4, 1, 3).view(), "b");
        assert!(!doc.can_redo());
        assert_eq!(doc.set_slice_mask(0, l, square(5, 0, 2).view(), "bad"), 0);
    }
}
