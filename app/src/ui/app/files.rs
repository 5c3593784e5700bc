//! Opening and saving: what the file dialogs are asked and what their answers do, the Export
//! section (quick export, Save as…, the export folder) and the writes it starts.

use super::super::desktop;
use super::super::dialogs::{Answer, Dialogs, Purpose, Question};
use super::super::file_chooser::home_dir;
use super::super::model_state::ModelInfo;
use super::LumenApp;
use crate::jobs::writer::{self, Format, WriteJob};
use crate::ui::command::Command;
use std::path::{Path, PathBuf};

impl LumenApp {
    /// Asks for a study folder; it opens when chosen.
    pub fn pick_folder(&mut self) {
        self.ask(Purpose::OpenFolder);
    }

    /// Asks for a DICOM file; its folder (its series) opens when chosen.
    pub fn pick_file(&mut self) {
        self.ask(Purpose::OpenFile);
    }

    /// Whether file dialogs try the desktop's own first (tests use Lumen's chooser only).
    pub fn use_desktop_dialogs(&mut self, on: bool) {
        self.dialogs = Dialogs::new(on, self.wake.clone());
    }

    /// Opens a file or folder dialog for `purpose`, starting where the user last was.
    pub(super) fn ask(&mut self, purpose: Purpose) {
        let home = || home_dir().unwrap_or_else(|| PathBuf::from("/"));
        let last_study = self
            .recent
            .first()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf);
        let (start, name) = match purpose {
            Purpose::OpenFolder | Purpose::OpenFile => {
                (last_study.unwrap_or_else(home), String::new())
            }
            Purpose::ImportModel => (home(), String::new()),
            Purpose::ExportFolder => (self.export_folder.clone(), String::new()),
            Purpose::SaveAs(format) => match self.save_as_start(format) {
                Some(start) => start,
                None => return,
            },
        };
        let mut places: Vec<(String, PathBuf)> = self
            .recent
            .iter()
            .map(|p| {
                let name = p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                (format!("Recent: {name}"), p.clone())
            })
            .collect();
        places.push(("Sample study".into(), crate::paths::sample_study_dir()));
        places.push(("Export folder".into(), self.export_folder.clone()));
        self.dialogs.ask(Question {
            purpose,
            start,
            name,
            places,
        });
    }

    /// Where Save as… starts for `format`: the study's last choice, else the export folder and
    /// the quick export's name. None (with a note) when there is nothing to export.
    fn save_as_start(&mut self, format: Format) -> Option<(PathBuf, String)> {
        let study = self.study.as_ref()?;
        if study.document.segments().is_empty() {
            self.notes = vec!["Nothing to export yet: accept a mask first".into()];
            return None;
        }
        let remembered = self
            .saved_as
            .iter()
            .find(|s| s.study == study.folder && s.format == format.describe())
            .and_then(|s| Some((s.path.parent()?.to_path_buf(), s.path.file_name()?)))
            .map(|(folder, name)| (folder, name.to_string_lossy().into_owned()));
        Some(remembered.unwrap_or_else(|| {
            (
                self.export_folder.clone(),
                writer::export_name(&study.volume, format),
            )
        }))
    }

    /// Acts on what a dialog answered.
    pub(super) fn answered(&mut self, answer: Answer) {
        let (purpose, path) = match answer {
            Answer::Note(note) => {
                self.notes = vec![note];
                return;
            }
            Answer::Chosen(purpose, path) => (purpose, path),
        };
        match purpose {
            Purpose::OpenFolder => self.open_folder(&path),
            Purpose::OpenFile => self.open_folder(path.parent().unwrap_or(&path)),
            Purpose::ImportModel => self.model_panel.import(path, self.wake.clone()),
            Purpose::ExportFolder => {
                self.notes = vec![format!("Quick exports now go to {}", path.display())];
                self.set_export_folder(path);
            }
            Purpose::SaveAs(format) => {
                if let Some(study) = &self.study {
                    let saved = crate::settings::SavedAs {
                        study: study.folder.clone(),
                        format: format.describe().into(),
                        path: path.clone(),
                    };
                    self.saved_as = crate::settings::remember_saved_as(&self.saved_as, saved);
                }
                self.export_to(format, path);
            }
        }
    }

    /// Writes the annotation in `format` to the export folder, in the background.
    pub fn export(&mut self, format: Format) {
        let Some(study) = &self.study else { return };
        let target = writer::export_target(&self.export_folder, &study.volume, format);
        self.export_to(format, target);
    }

    /// Writes the annotation in `format` to `target` (a file, or a folder for PNG).
    fn export_to(&mut self, format: Format, target: PathBuf) {
        let Some(study) = &self.study else { return };
        let (labels, segments) = study.document.to_export(&study.volume);
        if segments.is_empty() {
            self.notes = vec!["Nothing to export yet: accept a mask first".into()];
            return;
        }
        let job = WriteJob {
            format,
            volume: study.volume.clone(),
            labels,
            segments,
            target,
            model: self
                .model
                .ready()
                .map(ModelInfo::describe)
                .unwrap_or_default(),
        };
        self.notes = vec![format!("Writing {}…", job.target.display())];
        self.writes.push(writer::write(job, self.wake.clone()));
    }

    /// Where quick exports are written (a setting, kept with the others).
    pub fn set_export_folder(&mut self, folder: PathBuf) {
        self.export_folder = folder;
        self.export_folder_chosen = true;
    }

    /// Where quick exports are written.
    pub fn export_folder(&self) -> &Path {
        &self.export_folder
    }

    pub fn last_export(&self) -> Option<&Path> {
        self.last_export.as_deref()
    }

    /// Whether an export is still being written.
    pub fn is_writing(&self) -> bool {
        !self.writes.is_empty()
    }

    pub(super) fn poll_writes(&mut self) {
        let mut finished = Vec::new();
        self.writes.retain(|w| match w.try_recv() {
            Ok(result) => {
                finished.push(result);
                false
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => true,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => false,
        });
        for result in finished {
            self.notes = vec![match result {
                Ok(path) => {
                    let note = exported_note(&path);
                    self.last_export = Some(path);
                    note
                }
                Err(message) => format!("Export failed: {message}"),
            }];
        }
    }

    /// Quick export to the export folder, Save as… anywhere, and the export folder setting.
    pub(super) fn export_section(&self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.heading("Export");
        let can = self.study.is_some();
        let mut save_as = None;
        ui.horizontal(|ui| {
            let folder = format!("Writes to {}", self.export_folder.display());
            for format in Format::ALL {
                if ui
                    .add_enabled(can, egui::Button::new(format.describe()))
                    .on_hover_text(&folder)
                    .clicked()
                {
                    commands.push(Command::Export(format));
                }
            }
            ui.add_enabled_ui(can, |ui| {
                ui.menu_button("Save as…", |ui| {
                    for format in Format::ALL {
                        if ui.button(format!("{}…", format.describe())).clicked() {
                            save_as = Some(format);
                            ui.close();
                        }
                    }
                });
            });
        });
        ui.horizontal(|ui| {
            ui.small(format!(
                "Quick exports go to {}",
                self.export_folder.display()
            ));
            if ui.small_button("Change…").clicked() {
                commands.push(Command::Ask(Purpose::ExportFolder));
            }
        });
        if let Some(format) = save_as {
            commands.push(Command::Ask(Purpose::SaveAs(format)));
        }
    }

    /// After an export: copy its path, or show its folder where the desktop can.
    pub(super) fn export_offers(&mut self, ui: &mut egui::Ui) {
        let Some(path) = self.last_export.clone() else {
            return;
        };
        if self.notes.first() != Some(&exported_note(&path)) {
            return;
        }
        if ui.small_button("Copy path").clicked() {
            ui.ctx().copy_text(path.display().to_string());
        }
        if let Some(opener) = &self.folder_opener
            && let Some(folder) = path.parent()
            && ui.small_button("Show folder").clicked()
        {
            match desktop::show_folder(opener, folder, self.wake.clone()) {
                Ok(showing) => self.showing_folder = Some(showing),
                Err(e) => self.notes = vec![format!("The file manager could not start: {e}")],
            }
        }
    }
}

/// What the status line says after an export to `path`.
fn exported_note(path: &Path) -> String {
    format!("Exported {}", path.display())
}
