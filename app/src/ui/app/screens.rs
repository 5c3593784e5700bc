//! The start screen and the study loading progress.

use super::LumenApp;
use crate::ui::command::Command;

impl LumenApp {
    /// The load in flight: files found and read while the folder is searched, then images
    /// decoded of the series; and Cancel.
    pub(super) fn load_progress(&self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let (fraction, text) = load_stage(&self.load_control);
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(220.0)
                .text(text),
        );
        if ui.button("Cancel loading").clicked() {
            commands.push(Command::CancelLoading);
        }
    }

    /// What shows before a study is open: how to open one, and the recent studies.
    pub(super) fn start_screen(&self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
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
            open_buttons(ui, commands);
            ui.label("…or drop a DICOM folder or file on this window.");
            if !self.recent.is_empty() {
                ui.add_space(16.0);
                ui.strong("Recent studies");
                for folder in &self.recent {
                    if ui.link(folder.display().to_string()).clicked() {
                        commands.push(Command::OpenStudy(folder.clone()));
                    }
                }
            }
        });
    }
}

/// Open folder…, Open file…, Open sample study: on the start screen and in the menu bar.
pub(super) fn open_buttons(ui: &mut egui::Ui, commands: &mut Vec<Command>) {
    for (text, command) in [
        ("Open folder…", Command::OpenFolder),
        ("Open file…", Command::OpenFile),
        (
            "Open sample study",
            Command::OpenStudy(crate::paths::sample_study_dir()),
        ),
    ] {
        if ui.button(text).clicked() {
            commands.push(command);
        }
    }
}

/// How far a load is, as a fraction and in words: the folder search (files found, their headers
/// read) until the series is known, then its images.
fn load_stage(control: &lumen_study::LoadControl) -> (f32, String) {
    use std::sync::atomic::Ordering;
    let count = |n: &std::sync::atomic::AtomicUsize| n.load(Ordering::Relaxed);
    let (done, total) = (count(&control.decoded), count(&control.total));
    if total > 0 {
        return (done as f32 / total as f32, format!("{done}/{total} images"));
    }
    let (found, read) = (count(&control.found), count(&control.read));
    let fraction = if found > 0 {
        read as f32 / found as f32
    } else {
        0.0
    };
    (fraction, format!("searching: {read}/{found} files read"))
}
