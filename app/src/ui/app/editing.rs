//! What the user does to the annotation: prompts and their answers, brush strokes, accepting, propagation, undo and redo.

use super::{Direction, LumenApp, Tool};
use crate::jobs::segmenter::{PropagationRequest, Request};
use crate::ui::viewport::Gesture;
use lumen_engine::model::{Point, Prompt};
use lumen_study::Volume;
use lumen_study::reformat::{Cut, Reformat};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A propagation running in the segmenter.
pub(super) struct Propagation {
    pub(super) label: u8,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) done: usize,
    pub(super) of: usize,
}

impl LumenApp {
    /// Sends the current prompt to the segmenter; the answer becomes the preview.
    pub(super) fn request_prediction(&mut self) {
        if self.study.is_none() {
            return;
        }
        self.generation += 1;
        if let Some(segmenter) = &self.segmenter {
            segmenter.send(Request::Predict {
                cut: self.prompt_cut,
                prompt: self.prompt.clone(),
                generation: self.generation,
            });
        }
    }

    /// Makes `cut` the one prompted: a prompt on another cut is dropped, with its preview.
    fn prompt_on(&mut self, cut: Cut) {
        if self.prompt_cut != cut {
            self.prompt_cut = cut;
            self.clear_prompt();
        }
    }

    /// Applies a gesture made with the current tool on the view of `cut`: a prompt there drops
    /// one on another cut, a stroke there drops one on another cut.
    pub(super) fn apply_gesture(&mut self, cut: Cut, gesture: Gesture) {
        match gesture {
            Gesture::Box(bbox) => {
                self.prompt_on(cut);
                self.prompt = Prompt::from_box(bbox);
                self.request_prediction();
            }
            Gesture::Click { x, y } => {
                self.prompt_on(cut);
                let Some((w, h)) = self.study.as_ref().map(|s| self.prompt_cut.size(&s.volume))
                else {
                    return;
                };
                if x < 0.0 || y < 0.0 || x >= w as f32 || y >= h as f32 {
                    return;
                }
                let positive = self.tool != Tool::Exclude;
                self.prompt.points.push(Point { x, y, positive });
                // Refine what is shown: SAM takes its own last answer as the mask prompt.
                self.prompt.previous_logits =
                    self.preview.as_ref().map(|p| p.low_res_logits.clone());
                self.request_prediction();
            }
            Gesture::WindowDrag(delta) => {
                if let Some(study) = &mut self.study {
                    study.window.width = (study.window.width + f64::from(delta.x) * 2.0).max(1.0);
                    study.window.center += f64::from(delta.y) * 2.0;
                }
            }
            Gesture::Scroll(step) => self.step_slices(step as isize),
            Gesture::Zoom(factor) => {
                if let Some(study) = &mut self.study {
                    study.zoom = (study.zoom * factor).clamp(0.5, 16.0);
                }
            }
            Gesture::Pan(delta) => {
                if let Some(study) = &mut self.study {
                    study.pan += delta;
                }
            }
            Gesture::Paint { x, y } => self.paint_on(cut, (x, y)),
            Gesture::PaintEnd => self.finish_stroke(),
        }
    }

    /// Starts or continues the stroke on `cut` (a stroke on another cut is dropped).
    fn paint_on(&mut self, cut: Cut, point: (f32, f32)) {
        if self.stroke_cut != cut {
            self.stroke.clear();
            self.stroke_cut = cut;
        }
        self.stroke.push(point);
    }

    /// Paints (brush) or removes (eraser) the stroke in the active segment: one undo step.
    fn finish_stroke(&mut self) {
        let stroke = std::mem::take(&mut self.stroke);
        let cut = self.stroke_cut;
        let Some(study) = &mut self.study else { return };
        let (size, aspect) = (cut.size(&study.volume), cut.pixel_aspect(&study.volume));
        let Some(label) = self
            .active_label
            .filter(|l| study.document.segments().iter().any(|s| s.label == *l))
        else {
            self.notes = vec!["Choose or add a segment to paint in".into()];
            return;
        };
        let mask = lumen_annotation::brush::stroke_mask_with_aspect(
            &stroke,
            self.brush_radius,
            size,
            aspect,
        );
        let erase = self.tool == Tool::Eraser;
        let changed = lumen_annotation::brush::apply_stroke_on(
            &mut study.document,
            &study.volume,
            cut,
            label,
            mask.view(),
            erase,
        );
        let verb = if erase { "Erased" } else { "Painted" };
        let place = cut_place(cut, &study.volume);
        self.notes = vec![format!("{verb} {changed} voxels {place}")];
    }

    /// Puts the preview into the active segment (creating one if there is none). One undo step.
    pub fn accept_preview(&mut self) {
        let Some(preview) = self.preview.take() else {
            return;
        };
        let name = self.new_segment_name.clone();
        let Some(study) = &mut self.study else { return };
        let label = match self
            .active_label
            .filter(|l| study.document.segments().iter().any(|s| s.label == *l))
        {
            Some(label) => label,
            // a restored annotation already has the organ: add to it, not a twin of it
            None => match study.document.segments().iter().find(|s| s.name == name) {
                Some(existing) => existing.label,
                None => match study.document.add_segment(&name) {
                    Some(label) => label,
                    None => {
                        self.notes = vec!["All 255 segment labels are in use".into()];
                        return;
                    }
                },
            },
        };
        self.active_label = Some(label);
        let cut = self.prompt_cut;
        let changed =
            study
                .document
                .set_cut_mask(&study.volume, cut, label, &preview.mask, "accept mask");
        self.prompt = Prompt::default();
        let place = cut_place(cut, &study.volume);
        self.notes = vec![format!("Accepted {changed} voxels {place}")];
    }

    /// Carries the active segment's mask on the cut last worked on (the slice on screen, or a
    /// plane across the slices) to its neighbours along its normal, in the background.
    pub fn propagate(&mut self, direction: Direction) {
        let (Some(study), Some(label), Some(segmenter)) =
            (&self.study, self.active_label, &self.segmenter)
        else {
            return;
        };
        if self.propagation.is_some() {
            return;
        }
        // from the cut last worked on: the slice on screen, or a plane across the slices
        let cut = self.prompt_cut;
        let (w, h) = cut.size(&study.volume);
        let labels = cut.gather(&study.volume, study.document.labels());
        let Ok(mask) =
            ndarray::Array2::from_shape_vec((h, w), labels.iter().map(|l| *l == label).collect())
        else {
            return;
        };
        if !mask.iter().any(|v| *v) {
            let place = cut_place(cut, &study.volume);
            self.notes = vec![format!("Draw the segment {place} first, then propagate it")];
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let request = PropagationRequest {
            from: cut,
            mask,
            up: direction != Direction::Down,
            down: direction != Direction::Up,
            cancel: cancel.clone(),
        };
        if segmenter.send(Request::Propagate(request)) {
            self.propagation = Some(Propagation {
                label,
                cancel,
                done: 0,
                of: 0,
            });
        }
    }

    pub fn cancel_propagation(&self) {
        if let Some(p) = &self.propagation {
            p.cancel.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_propagating(&self) -> bool {
        self.propagation.is_some()
    }

    /// How many cuts the running propagation has filled so far.
    pub fn propagation_done(&self) -> Option<usize> {
        self.propagation.as_ref().map(|p| p.done)
    }

    pub(super) fn finish_propagation(
        &mut self,
        masks: &[(Cut, ndarray::Array2<bool>)],
        cancelled: bool,
    ) {
        let Some(propagation) = self.propagation.take() else {
            return;
        };
        let Some(study) = &mut self.study else { return };
        let changed =
            study
                .document
                .set_cut_masks(&study.volume, propagation.label, masks, "propagate");
        let how = if cancelled {
            "Cancelled propagation; kept"
        } else {
            "Propagated to"
        };
        let what = match masks.first().map(|(cut, _)| *cut) {
            Some(Cut::Across(..)) => "planes",
            _ => "slices",
        };
        self.notes = vec![format!("{how} {} {what} ({changed} voxels)", masks.len())];
    }

    pub fn undo(&mut self) {
        if let Some(study) = &mut self.study
            && let Some(what) = study.document.undo()
        {
            self.notes = vec![format!("Undid {what}")];
        }
    }

    pub fn redo(&mut self) {
        if let Some(study) = &mut self.study
            && let Some(what) = study.document.redo()
        {
            self.notes = vec![format!("Redid {what}")];
        }
    }

    pub fn set_tool(&mut self, tool: Tool) {
        self.tool = tool;
    }

    pub(super) fn clear_prompt(&mut self) {
        self.prompt = Prompt::default();
        self.preview = None;
        self.generation += 1;
    }
}

/// Where an edit on `cut` went, for the status line: "on slice 12", "in the coronal plane".
fn cut_place(cut: Cut, volume: &Volume) -> String {
    match cut {
        Cut::Slice(z) => format!("on slice {}", z + 1),
        Cut::Across(across, index) => {
            let plane = Reformat::of(across, index, volume).name(volume);
            format!("in the {} plane", plane.to_lowercase())
        }
    }
}
