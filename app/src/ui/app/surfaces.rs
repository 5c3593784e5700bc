//! The segments' surfaces for the 3D view, remade in the background after the annotation
//! changes; the UI draws the last ones made meanwhile.

use super::LumenApp;
use crate::ui::view3d::{SegmentMesh, View3d};
use lumen_annotation::surface::{SampledLabels, segment_surface};
use std::sync::mpsc::Receiver;

/// About this many samples at most go into one surface: a coarser grid for a larger study.
const MAX_SAMPLES: usize = 4_000_000;

/// The surfaces shown, the job making newer ones, and the view.
#[derive(Default)]
pub struct Surfaces {
    /// The annotation revision the meshes are of.
    made_of: Option<u64>,
    meshes: Vec<SegmentMesh>,
    pending: Option<(u64, Receiver<Vec<SegmentMesh>>)>,
    pub view: View3d,
}

impl Surfaces {
    pub fn meshes(&self) -> &[SegmentMesh] {
        &self.meshes
    }

    /// The annotation revision of the meshes shown, if any were made.
    pub fn made_of(&self) -> Option<u64> {
        self.made_of
    }

    /// Draws the 3D view in `area`.
    pub fn show(&mut self, ui: &mut egui::Ui, area: egui::Rect) {
        let generation = self.made_of.unwrap_or(0);
        self.view.show(ui, area, &self.meshes, generation);
    }
}

impl LumenApp {
    /// Takes finished surfaces and, when the annotation moved on and no job runs, starts one
    /// on the label map's samples, so the UI never waits for it.
    pub(super) fn refresh_surfaces(&mut self) {
        let wake = self.wake.clone();
        let Some(study) = &mut self.study else { return };
        let surfaces = &mut study.surfaces;
        if let Some((revision, job)) = &surfaces.pending
            && let Ok(meshes) = job.try_recv()
        {
            surfaces.made_of = Some(*revision);
            surfaces.meshes = meshes;
            surfaces.pending = None;
        }
        let revision = study.document.revision();
        if surfaces.pending.is_some() || surfaces.made_of == Some(revision) {
            return;
        }
        let dims = study.volume.dims;
        let samples = dims.iter().product::<usize>();
        let step = (samples as f64 / MAX_SAMPLES as f64).cbrt().ceil().max(1.0) as usize;
        // the samples only: a few MB however large the study, where a copy of the whole label
        // map would hold up the frame
        let sampled = SampledLabels::of(study.document.labels(), dims, step);
        let segments: Vec<(u8, [u8; 3])> = study
            .document
            .segments()
            .iter()
            .filter(|s| s.visible)
            .map(|s| (s.label, s.color))
            .collect();
        let affine = study.volume.patient_from_voxel;
        let job = crate::jobs::spawn_job("surfaces", wake, move || {
            segments
                .into_iter()
                .map(|(label, colour)| SegmentMesh {
                    label,
                    colour,
                    surface: segment_surface(&sampled, label, &affine),
                })
                .collect()
        });
        // with no thread to spare the 3D view stays as it is, and the next frame tries again
        if let Ok(job) = job {
            surfaces.pending = Some((revision, job));
        }
    }

    /// The surfaces the 3D view shows (for tests and the model of the view).
    pub fn surfaces(&self) -> Option<&Surfaces> {
        self.study.as_ref().map(|s| &s.surfaces)
    }
}
