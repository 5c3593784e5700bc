//! Segment statistics for a report: voxel count, volume, intensity mean / SD / min / max and the
//! extent along the patient's axes, per segment. Kept per slice and remade only for the slices an
//! edit changed, so an edit on a 500-slice study costs a slice's worth of work, not a volume's.

use crate::Document;
use lumen_study::Volume;
use lumen_study::geometry::column;

/// One segment's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentStatistics {
    pub label: u8,
    pub name: String,
    pub voxels: u64,
    pub volume_ml: f64,
    /// Of the voxels' values (HU for CT, the stored unit otherwise); population SD.
    pub mean: f64,
    pub sd: f64,
    pub min: f32,
    pub max: f32,
    /// Extent in mm along the patient's right–left, anterior–posterior and inferior–superior
    /// axes: the segment's voxel bounding box, whole voxels, in patient space.
    pub extent_mm: [f64; 3],
}

impl SegmentStatistics {
    /// A segment without voxels: no volume, no intensities (NaN), no extent.
    pub fn empty(label: u8, name: &str) -> Self {
        Self {
            label,
            name: name.to_string(),
            voxels: 0,
            volume_ml: 0.0,
            mean: f64::NAN,
            sd: f64::NAN,
            min: f32::NAN,
            max: f32::NAN,
            extent_mm: [0.0; 3],
        }
    }
}

/// Running sums of one segment over some voxels.
#[derive(Debug, Clone, Copy)]
struct Sums {
    voxels: u64,
    sum: f64,
    sum_squares: f64,
    min: f32,
    max: f32,
    /// Voxel bounding box, `[x, y, z]` inclusive.
    low: [usize; 3],
    high: [usize; 3],
}

impl Sums {
    fn new(at: [usize; 3], value: f32) -> Self {
        Self {
            voxels: 0,
            sum: 0.0,
            sum_squares: 0.0,
            min: value,
            max: value,
            low: at,
            high: at,
        }
    }

    fn add(&mut self, at: [usize; 3], value: f32) {
        let v = f64::from(value);
        self.voxels += 1;
        self.sum += v;
        self.sum_squares += v * v;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.widen(at, at);
    }

    /// Grows the bounding box to hold `low..=high`.
    fn widen(&mut self, low: [usize; 3], high: [usize; 3]) {
        for (mine, theirs) in self.low.iter_mut().zip(low) {
            *mine = (*mine).min(theirs);
        }
        for (mine, theirs) in self.high.iter_mut().zip(high) {
            *mine = (*mine).max(theirs);
        }
    }

    fn merge(&mut self, other: &Sums) {
        self.voxels += other.voxels;
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.widen(other.low, other.high);
    }
}

/// Per label, the sums over one slice (labels absent from the slice are absent).
type SliceSums = Vec<(u8, Sums)>;

fn slice_sums(document: &Document, volume: &Volume, z: usize) -> SliceSums {
    let nx = document.dims()[0].max(1);
    let mut by_label: Vec<Option<Sums>> = vec![None; 256];
    let values = volume.slice(z).unwrap_or(&[]);
    for (i, (&label, &value)) in document.slice_labels(z).iter().zip(values).enumerate() {
        if label == 0 {
            continue;
        }
        let at = [i % nx, i / nx, z];
        by_label[label as usize]
            .get_or_insert_with(|| Sums::new(at, value))
            .add(at, value);
    }
    (0..=255u8)
        .zip(by_label)
        .filter_map(|(label, sums)| Some((label, sums?)))
        .collect()
}

/// The statistics of one document on its volume, remade as it changes (one cache per
/// document: the slice revisions it keeps are that document's).
#[derive(Debug, Default)]
pub struct StatisticsCache {
    /// Per slice: the slice revision its sums are of, and the sums.
    slices: Vec<(u64, SliceSums)>,
    /// The document revision of `table`.
    revision: Option<u64>,
    table: Vec<SegmentStatistics>,
}

impl StatisticsCache {
    /// Every segment's statistics, in the document's segment order (a segment without voxels
    /// has count and volume 0 and no intensities: NaN).
    pub fn update(&mut self, document: &Document, volume: &Volume) -> &[SegmentStatistics] {
        if self.revision == Some(document.revision()) {
            return &self.table;
        }
        let slices = document.dims()[2];
        if self.slices.len() != slices {
            // a slice never changed (revision 0) is empty, so nothing needs reading yet
            self.slices = vec![(0, Vec::new()); slices];
        }
        for (z, (revision, sums)) in self.slices.iter_mut().enumerate() {
            if *revision != document.slice_revision(z) {
                *sums = slice_sums(document, volume, z);
                *revision = document.slice_revision(z);
            }
        }
        self.table = document
            .segments()
            .iter()
            .map(|segment| {
                let mut total: Option<Sums> = None;
                for (_, sums) in &self.slices {
                    if let Some((_, part)) = sums.iter().find(|(l, _)| *l == segment.label) {
                        match &mut total {
                            Some(t) => t.merge(part),
                            None => total = Some(*part),
                        }
                    }
                }
                measure(segment.label, &segment.name, total, volume)
            })
            .collect();
        self.revision = Some(document.revision());
        &self.table
    }
}

fn measure(label: u8, name: &str, sums: Option<Sums>, volume: &Volume) -> SegmentStatistics {
    let voxel_ml = volume.spacing.iter().product::<f64>() / 1000.0;
    let Some(s) = sums.filter(|s| s.voxels > 0) else {
        return SegmentStatistics::empty(label, name);
    };
    let n = s.voxels as f64;
    let mean = s.sum / n;
    SegmentStatistics {
        label,
        name: name.to_string(),
        voxels: s.voxels,
        volume_ml: n * voxel_ml,
        mean,
        sd: (s.sum_squares / n - mean * mean).max(0.0).sqrt(),
        min: s.min,
        max: s.max,
        extent_mm: patient_extent(&s, volume),
    }
}

/// The voxel box's extent along the patient axes: each voxel axis's length (whole voxels) laid
/// along its direction, summed per patient axis. Exact for axis-aligned scans; for an oblique
/// one, the patient-space box around the voxel box.
fn patient_extent(s: &Sums, volume: &Volume) -> [f64; 3] {
    let mut extent = [0.0; 3];
    for axis in 0..3 {
        let voxels = (s.high[axis] - s.low[axis] + 1) as f64;
        // the matrix's column `axis` is one voxel step in patient mm (LPS)
        let step = column(&volume.patient_from_voxel, axis);
        for (e, d) in extent.iter_mut().zip(step) {
            *e += (d * voxels).abs();
        }
    }
    extent
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lumen_study::geometry::IDENTITY;
    use ndarray::Array2;

    /// A 4×3×3 volume of 0.5 × 0.5 × 2 mm voxels whose values are x + 10 y + 100 z.
    fn volume() -> Volume {
        let dims = [4, 3, 3];
        let voxels = (0..36)
            .map(|i| (i % 4 + 10 * ((i / 4) % 3) + 100 * (i / 12)) as f32)
            .collect();
        let mut m = IDENTITY;
        m[0][0] = 0.5;
        m[1][1] = 0.5;
        m[2][2] = 2.0;
        Volume {
            dims,
            voxels,
            spacing: [0.5, 0.5, 2.0],
            patient_from_voxel: m,
            ..Volume::default()
        }
    }

    #[test]
    fn statistics_follow_edits_undo_and_redo_slice_by_slice() {
        let volume = volume();
        let mut doc = Document::new(volume.dims, volume.spacing);
        let liver = doc.add_segment("Liver").unwrap();
        let spleen = doc.add_segment("Spleen").unwrap();
        let mut cache = StatisticsCache::default();
        assert_eq!(cache.update(&doc, &volume)[0].voxels, 0);

        // liver: x in 1..=2, y = 1 on slices 0 and 2; values 11, 12, 211, 212
        let mut mask = Array2::from_elem((3, 4), false);
        mask[[1, 1]] = true;
        mask[[1, 2]] = true;
        doc.set_slice_mask(0, liver, mask.view(), "box");
        doc.set_slice_mask(2, liver, mask.view(), "box");
        let all = Array2::from_elem((3, 4), true);
        doc.set_slice_mask(1, spleen, all.view(), "box");

        let table = cache.update(&doc, &volume).to_vec();
        let l = &table[0];
        assert_eq!((l.label, l.name.as_str(), l.voxels), (liver, "Liver", 4));
        assert!((l.volume_ml - 4.0 * 0.5 / 1000.0).abs() < 1e-12);
        assert!((l.mean - 111.5).abs() < 1e-9);
        let sd = ((4.0 * 100.0f64.powi(2) + 4.0 * 0.25) / 4.0).sqrt();
        assert!((l.sd - sd).abs() < 1e-9, "{} vs {sd}", l.sd);
        assert_eq!((l.min, l.max), (11.0, 212.0));
        // 2 voxels × 0.5 mm, 1 × 0.5 mm, 3 slices × 2 mm
        assert_eq!(l.extent_mm, [1.0, 0.5, 6.0]);
        let s = &table[1];
        assert_eq!((s.voxels, s.min, s.max), (12, 100.0, 123.0));

        doc.undo();
        let after_undo = cache.update(&doc, &volume).to_vec();
        assert_eq!(after_undo[1].voxels, 0);
        assert!(after_undo[1].mean.is_nan());
        assert_eq!(after_undo[0], table[0], "the liver did not change");
        doc.redo();
        assert_eq!(cache.update(&doc, &volume), &table[..]);
    }

    #[test]
    fn an_oblique_grid_measures_the_patient_space_box() {
        let mut volume = volume();
        // rows run along the patient's y and z at 45°: each row step is 0.5 mm long
        let h = 0.5 / 2f64.sqrt();
        volume.patient_from_voxel[1][1] = h;
        volume.patient_from_voxel[2][1] = h;
        let mut doc = Document::new(volume.dims, volume.spacing);
        let label = doc.add_segment("Liver").unwrap();
        doc.set_slice_mask(1, label, Array2::from_elem((3, 4), true).view(), "all");
        let mut cache = StatisticsCache::default();
        let stats = &cache.update(&doc, &volume)[0];
        let [rl, ap, si] = stats.extent_mm;
        assert!((rl - 2.0).abs() < 1e-12);
        assert!((ap - 3.0 * h).abs() < 1e-12);
        assert!((si - (3.0 * h + 2.0)).abs() < 1e-12);
    }
}
