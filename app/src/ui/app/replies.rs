//! What the background workers answer: the model, predictions, propagation, a loaded study, writes.

use super::autosave::Autosave;
use super::series::SeriesBrowser;
use super::{FIRST_PROMPT_HINT, LumenApp, OpenStudy};
use crate::jobs::segmenter::{Reply, Request};
use crate::jobs::study_loader::{self, LoadedStudy};
use crate::ui::model_state::{ModelInfo, ModelState};
use egui::Vec2;
use lumen_annotation::Document;
use std::sync::Arc;

impl LumenApp {
    pub(super) fn poll_jobs(&mut self) {
        self.model_panel.poll();
        if let Some(incoming) = &self.browser.incoming {
            for (i, pixels) in incoming.try_iter() {
                if let Some(slot) = self.browser.pixels.get_mut(i) {
                    *slot = Some(pixels);
                }
            }
        }
        if let Some(showing) = &self.showing_folder
            && let Ok(answer) = showing.try_recv()
        {
            self.showing_folder = None;
            if let Some(failed) = answer {
                self.notes = vec![failed];
            }
        }
        if let Some(loading) = &self.loading
            && let Ok(result) = loading.try_recv()
        {
            self.loading = None;
            match result {
                Ok(loaded) => self.show_study(loaded),
                Err(message) => self.notes = vec![message],
            }
        }
        let replies: Vec<Reply> = self
            .segmenter
            .as_ref()
            .map(|s| s.replies.try_iter().collect())
            .unwrap_or_default();
        for reply in replies {
            match reply {
                Reply::ModelReady {
                    name,
                    precision,
                    input_size,
                } => {
                    self.model = ModelState::Ready(ModelInfo {
                        name,
                        precision,
                        input_size,
                    });
                }
                Reply::ModelFailed(message) => {
                    self.model =
                        ModelState::Failed(format!("The model could not be opened: {message}"))
                }
                Reply::Predicted {
                    cut,
                    generation,
                    prediction,
                } => {
                    if generation == self.generation && cut == self.prompt_cut {
                        self.preview = Some(prediction);
                    }
                }
                Reply::Failed {
                    generation,
                    message,
                    ..
                } => {
                    if generation == self.generation {
                        self.notes = vec![message];
                    }
                }
                Reply::Embedded { .. } => {}
                Reply::Latency { encoder, ms } => {
                    let slot = if encoder {
                        &mut self.latency.0
                    } else {
                        &mut self.latency.1
                    };
                    *slot = Some(ms);
                }
                Reply::Propagating { done, of } => {
                    if let Some(p) = &mut self.propagation {
                        (p.done, p.of) = (done, of);
                    }
                }
                Reply::Propagated { masks, cancelled } => {
                    self.finish_propagation(&masks, cancelled)
                }
            }
        }
    }

    pub(super) fn show_study(&mut self, loaded: LoadedStudy) {
        // the study being closed keeps every edit: its last changes go to disk first
        self.save_now_in_background();
        let volume = Arc::new(loaded.volume);
        let mut notes = loaded.notes;
        let document = match &loaded.autosaved {
            Some((labels, segments)) => {
                notes.insert(
                    0,
                    format!("Restored the autosaved annotation of {}", loaded.described),
                );
                Document::from_export(&volume, labels, segments).0
            }
            None => {
                notes.push(FIRST_PROMPT_HINT.into());
                Document::new(volume.dims, volume.spacing)
            }
        };
        let autosave = Autosave {
            file: loaded.autosave_file,
            saved_revision: document.revision(),
            last_attempt: None,
            running: None,
        };
        let z = volume.dims[2] / 2;
        let window = volume.default_window();
        self.notes = notes;
        self.notes.insert(
            0,
            format!(
                "Opened {} ({} slices)",
                loaded.folder.display(),
                volume.dims[2]
            ),
        );
        if let Some(segmenter) = &self.segmenter {
            segmenter.send(Request::SetVolume(volume.clone()));
        }
        self.recent = crate::settings::remember(&self.recent, &loaded.folder);
        let same_folder = self.browser.folder == loaded.folder
            && self.browser.series.len() == loaded.series.len();
        if !same_folder {
            let n = loaded.series.len();
            self.browser = SeriesBrowser {
                folder: loaded.folder.clone(),
                incoming: Some(study_loader::thumbnails(
                    loaded.series.clone(),
                    self.wake.clone(),
                )),
                series: loaded.series,
                open: loaded.open,
                pixels: vec![None; n],
                textures: vec![None; n],
            };
        } else {
            self.browser.open = loaded.open;
        }
        let crosshair = [volume.dims[0] / 2, volume.dims[1] / 2];
        self.study = Some(OpenStudy {
            folder: loaded.folder,
            volume,
            document,
            autosave,
            z,
            window,
            zoom: 1.0,
            pan: Vec2::ZERO,
            slice_texture: None,
            overlay_texture: None,
            slice_shown: None,
            overlay_shown: None,
            crosshair,
            planes: Default::default(),
            surfaces: Default::default(),
            histogram: Default::default(),
            statistics: Default::default(),
        });
        self.active_label = None;
        self.go_to_slice(z);
    }
}
