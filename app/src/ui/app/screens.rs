//! The start screen and the study loading progress.

use super::LumenApp;

impl LumenApp {
    /// The load in flight: images decoded of the series, and Cancel.
    pub(super) fn load_progress(&mut self, ui: &mut egui::Ui) {
        use std::sync::atomic::Ordering;
        let c = &self.load_control;
        let (done, total) = (
            c.decoded.load(Ordering::Relaxed),
            c.total.load(Ordering::Relaxed),
        );
        let fraction = if total > 0 {
            done as f32 / total as f32
        } else {
            0.0
        };
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(160.0)
                .text(format!("{done}/{total} images")),
        );
        if ui.button("Cancel loading").clicked() {
            c.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Open folder, Open file and Open sample study (in the menu and on the start screen).
    pub(super) fn open_buttons(&mut self, ui: &mut egui::Ui) {
        if ui.button("Open folder…").clicked() {
            self.pick_folder();
        }
        if ui.button("Open file…").clicked() {
            self.pick_file();
        }
        if ui.button("Open sample study").clicked() {
            self.open_folder(&crate::paths::sample_study_dir());
        }
    }

    /// What shows before a study is open: how to open one, and the recent studies.
    pub(super) fn start_screen(&mut self, ui: &mut egui::Ui) {
        ui.vertical_centered(|ui| {
            ui.add_space(80.0);
            ui.heading("Lumen");
            ui.label("Segment organs in CT and MR studies with SAM, offline.");
            ui.add_space(16.0);
            if self.loading.is_some() {
                ui.spinner();
                ui.label("Opening the study…");
                return;
            }
            self.open_buttons(ui);
            ui.label("…or drop a DICOM folder or file on this window.");
            if !self.recent.is_empty() {
                ui.add_space(16.0);
                ui.strong("Recent studies");
                let mut chosen = None;
                for folder in &self.recent {
                    if ui.link(folder.display().to_string()).clicked() {
                        chosen = Some(folder.clone());
                    }
                }
                if let Some(folder) = chosen {
                    self.open_folder(&folder);
                }
            }
        });
    }
}
