//! The document as the exporters see it (a label map on the study grid plus coded segments),
//! and back again when an export or autosave is re-imported.

use crate::export;
use crate::{Document, Segment};
use lumen_study::{LabelVolume, Volume};

impl Document {
    /// The label map and coded segments of this document on `volume`'s grid.
    pub fn to_export(&self, volume: &Volume) -> (LabelVolume, Vec<export::Segment>) {
        let labels = LabelVolume {
            dims: self.dims(),
            labels: self.labels().iter().map(|l| u16::from(*l)).collect(),
            patient_from_voxel: volume.patient_from_voxel,
        };
        let segments = self
            .segments()
            .iter()
            .map(|s| export::Segment {
                color: s.color,
                ..export::Segment::new(u16::from(s.label), &s.name)
            })
            .collect();
        (labels, segments)
    }

    /// A document holding an imported label map. Labels above 255 are not representable here and
    /// are dropped (Lumen's own files never have them); the second value counts such voxels.
    pub fn from_export(
        volume: &Volume,
        labels: &LabelVolume,
        segments: &[export::Segment],
    ) -> (Self, usize) {
        let mut document = Document::new(volume.dims, volume.spacing);
        let mut dropped = 0;
        let voxels: Vec<u8> = labels
            .labels
            .iter()
            .map(|l| {
                u8::try_from(*l).unwrap_or_else(|_| {
                    dropped += 1;
                    0
                })
            })
            .collect();
        let mut found: Vec<u8> = voxels.iter().copied().filter(|l| *l > 0).collect();
        found.sort_unstable();
        found.dedup();
        let named = found.iter().map(|label| {
            segments
                .iter()
                .find(|s| s.label == u16::from(*label))
                .map_or_else(
                    || Segment::new(*label, &format!("Segment {label}")),
                    |s| Segment {
                        color: s.color,
                        ..Segment::new(*label, &s.name)
                    },
                )
        });
        document.restore(voxels, named.collect());
        (document, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn export_and_import_keep_voxels_names_and_colours() {
        let volume = Volume {
            dims: [4, 3, 2],
            voxels: vec![0.0; 24],
            spacing: [1.0, 1.0, 2.0],
            ..Volume::default()
        };
        let mut doc = Document::new(volume.dims, volume.spacing);
        let liver = doc.add_segment("Liver").unwrap_or(0);
        doc.set_slice_mask(1, liver, Array2::from_elem((3, 4), true).view(), "fill");
        let (labels, segments) = doc.to_export(&volume);
        assert_eq!(
            labels
                .labels
                .iter()
                .filter(|l| **l == u16::from(liver))
                .count(),
            12
        );
        assert_eq!(segments[0].name, "Liver");
        let (back, dropped) = Document::from_export(&volume, &labels, &segments);
        assert_eq!(dropped, 0);
        assert_eq!(back.labels(), doc.labels());
        assert_eq!(back.segments(), doc.segments());
        assert!(
            !back.can_undo(),
            "an import is the starting point, not an undoable step"
        );
    }
}
