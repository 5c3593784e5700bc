//! The series list of an opened folder, with thumbnails, and opening one of them.

use super::LumenApp;
use crate::jobs::study_loader;
use crate::ui::command::Command;
use egui::{Color32, ColorImage, TextureHandle, TextureOptions};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

/// The series found in the open folder, which one is open, and their thumbnails.
#[derive(Default)]
pub(super) struct SeriesBrowser {
    pub(super) folder: PathBuf,
    pub(super) series: Vec<lumen_study::SeriesInfo>,
    pub(super) open: usize,
    pub(super) pixels: Vec<Option<ndarray::Array2<u8>>>,
    pub(super) textures: Vec<Option<TextureHandle>>,
    pub(super) incoming: Option<Receiver<(usize, ndarray::Array2<u8>)>>,
}

impl LumenApp {
    /// The series of the open folder: thumbnail, description, modality, slices and warnings;
    /// another one opens in the background.
    pub(super) fn series_browser(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        if self.browser.series.len() < 2 {
            return;
        }
        let mut chosen = None;
        egui::CollapsingHeader::new(format!("Series ({})", self.browser.series.len()))
            .default_open(true)
            .show(ui, |ui| {
                let b = &mut self.browser;
                for (i, info) in b.series.iter().enumerate() {
                    if b.textures[i].is_none()
                        && let Some(pixels) = &b.pixels[i]
                    {
                        let (h, w) = pixels.dim();
                        let image = ColorImage::from_gray([w, h], pixels.as_slice().unwrap_or(&[]));
                        b.textures[i] = Some(ui.ctx().load_texture(
                            format!("series-{i}"),
                            image,
                            TextureOptions::LINEAR,
                        ));
                    }
                    ui.horizontal(|ui| {
                        match &b.textures[i] {
                            Some(t) => {
                                ui.image((t.id(), egui::vec2(48.0, 48.0)));
                            }
                            None => {
                                ui.allocate_exact_size(
                                    egui::vec2(48.0, 48.0),
                                    egui::Sense::hover(),
                                );
                            }
                        }
                        ui.vertical(|ui| {
                            let text = format!(
                                "{} · {} · {} slices",
                                if info.description.is_empty() {
                                    "(no description)"
                                } else {
                                    &info.description
                                },
                                info.modality,
                                info.slice_count
                            );
                            if ui.selectable_label(i == b.open, text).clicked() && i != b.open {
                                chosen = Some(i);
                            }
                            for w in &info.warnings {
                                ui.colored_label(Color32::from_rgb(240, 180, 80), w);
                            }
                        });
                    });
                }
            });
        if let Some(i) = chosen {
            commands.push(Command::OpenSeries(i));
        }
        ui.separator();
    }

    /// Opens series `i` of the series browser in the background.
    pub fn open_series(&mut self, i: usize) {
        if self.loading.is_some() || i >= self.browser.series.len() {
            return;
        }
        self.notes = vec![format!("Opening series {}…", i + 1)];
        self.load_control = Default::default();
        self.loading = Some(study_loader::open_series(
            &self.browser.folder,
            self.browser.series.clone(),
            i,
            self.autosave_folder.clone(),
            self.load_control.clone(),
            self.wake.clone(),
        ));
    }

    /// The series browser: (series found, the open one, thumbnails ready).
    pub fn series_overview(&self) -> (usize, usize, usize) {
        let b = &self.browser;
        (b.series.len(), b.open, b.pixels.iter().flatten().count())
    }
}
