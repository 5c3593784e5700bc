//! The model panel: the active model, the catalogue (bundled and user models) with a button to
//! switch, importing a bundle folder, and the Requantize dialog (data-free, in the background,
//! with progress, ETA and Cancel).

use crate::jobs::Waker;
use crate::jobs::requantizer::{Requantizer, Update};
use crate::models::{self, ModelEntry, Origin};
use lumen_engine::quant::{
    Bits, Calibration, Preset, Progress, RequantizeOptions, reparameterize_by_default,
};
use lumen_engine::runtime::SessionConfig;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

/// What the panel asks the app to do.
pub enum Action {
    Use(PathBuf),
    /// Ask the user for a bundle folder to import (the answer goes to `import`).
    PickImport,
}

/// Settings of the Requantize dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequantizeSettings {
    pub weights: u32,
    /// None keeps activations in float.
    pub activations: Option<u32>,
    pub preset: Preset,
}

impl Default for RequantizeSettings {
    fn default() -> Self {
        Self {
            weights: 8,
            activations: Some(8),
            preset: Preset::Standard,
        }
    }
}

struct Running {
    job: Requantizer,
    progress: Option<Progress>,
}

pub struct ModelPanel {
    pub active: PathBuf,
    bundled_dir: PathBuf,
    user_dir: PathBuf,
    entries: Vec<ModelEntry>,
    pub settings: RequantizeSettings,
    dialog_open: bool,
    running: Option<Running>,
    importing: Option<Receiver<Result<PathBuf, String>>>,
    /// The last outcome to show (import or requantization).
    pub message: Option<String>,
}

impl ModelPanel {
    pub fn new(active: PathBuf, bundled_dir: PathBuf, user_dir: PathBuf) -> Self {
        let mut panel = Self {
            active,
            bundled_dir,
            user_dir,
            entries: Vec::new(),
            settings: RequantizeSettings::default(),
            dialog_open: false,
            running: None,
            importing: None,
            message: None,
        };
        panel.refresh();
        panel
    }

    /// Uses `dir` as the user's models folder (tests keep theirs apart).
    pub fn set_user_dir(&mut self, dir: PathBuf) {
        self.user_dir = dir;
        self.refresh();
    }

    /// Re-reads the catalogue (manifests only: cheap).
    pub fn refresh(&mut self) {
        self.entries = models::list_models(&self.bundled_dir, &self.user_dir);
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn is_requantizing(&self) -> bool {
        self.running.is_some()
    }

    /// Starts requantizing the active model (or, when it is quantized, the full-precision
    /// bundle it was made from) with the current settings into the user folder.
    pub fn start_requantize(&mut self, wake: Waker) {
        let s = self.settings;
        let source = match models::requantization_source(&self.active, &self.entries) {
            Ok(source) => source,
            Err(e) => {
                self.message = Some(format!("{e:#}"));
                return;
            }
        };
        let base = self
            .entries
            .iter()
            .find(|e| e.dir == source)
            .map_or("model".to_string(), |e| e.name.clone());
        let tag = format!(
            "w{}a{}",
            s.weights,
            s.activations.map_or("f".into(), |a| a.to_string())
        );
        let out = models::free_name(&self.user_dir, &format!("{base}-{tag}"));
        if let Err(e) = std::fs::create_dir_all(&self.user_dir) {
            self.message = Some(format!("{}: {e}", self.user_dir.display()));
            return;
        }
        let options = RequantizeOptions {
            bits: Bits {
                weights: s.weights,
                activations: s.activations,
            },
            preset: s.preset,
            calibration: Calibration::Dfq,
            reparameterize: reparameterize_by_default(Bits {
                weights: s.weights,
                activations: s.activations,
            }),
            eight_bit_budget: 0.0,
            quantize_decoder: false,
            cache_dir: crate::paths::synth_cache_dir(),
            use_shipped_synthetic: true,
            session: SessionConfig::default(),
            min_self_check_iou: lumen_engine::quant::DEFAULT_MIN_SELF_CHECK_IOU,
        };
        match Requantizer::start(source, out, options, wake) {
            Ok(job) => {
                self.running = Some(Running {
                    job,
                    progress: None,
                });
                self.message = None;
            }
            Err(e) => self.message = Some(format!("The requantizer could not start: {e}")),
        }
    }

    /// Imports the bundle folder `dir` on its own thread.
    pub fn import(&mut self, dir: PathBuf, wake: Waker) {
        let user_dir = self.user_dir.clone();
        let spawned = crate::jobs::spawn_job("import-model", wake, move || {
            models::import_model(&dir, &user_dir).map_err(|e| format!("{e:#}"))
        });
        match spawned {
            Ok(rx) => self.importing = Some(rx),
            Err(e) => self.message = Some(format!("The import could not start: {e}")),
        }
    }

    /// Takes what the background work reported.
    pub fn poll(&mut self) {
        if let Some(rx) = &self.importing
            && let Ok(result) = rx.try_recv()
        {
            self.importing = None;
            match result {
                Ok(dir) => {
                    self.message = Some(format!("Imported {}", dir.display()));
                    self.refresh();
                }
                Err(e) => self.message = Some(format!("Import failed: {e}")),
            }
        }
        let Some(running) = &mut self.running else {
            return;
        };
        let mut done = None;
        for update in running.job.updates.try_iter() {
            match update {
                Update::Progress(p) => running.progress = Some(p),
                Update::Done(result) => done = Some(result),
            }
        }
        if let Some(result) = done {
            self.running = None;
            self.message = Some(match result {
                Ok(r) => format!(
                    "Made {}: encoder {:.1} MB ({:.0}% of FP32), mask agreement with FP {:.3}",
                    r.bundle_dir.display(),
                    r.encoder_bytes as f64 / 1e6,
                    100.0 * r.encoder_bytes as f64 / r.fp_encoder_bytes.max(1) as f64,
                    r.self_check_iou
                ),
                Err(None) => "Requantization cancelled; nothing was written.".into(),
                Err(Some(e)) => format!("Requantization failed: {e}"),
            });
            self.refresh();
        }
    }

    /// Draws the panel; `can_switch` is false while work depends on the current model.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        status: &str,
        can_switch: bool,
        wake: &Waker,
    ) -> Option<Action> {
        let mut action = None;
        ui.heading("Model");
        ui.label(status);
        for entry in &self.entries {
            ui.horizontal(|ui| {
                let active = entry.dir == self.active;
                let origin = match entry.origin {
                    Origin::Bundled => "bundled",
                    Origin::User => "yours",
                };
                let text = format!(
                    "{} · {} · {:.1} MB · {origin}",
                    entry.name,
                    entry.precision,
                    entry.size_bytes as f64 / 1e6
                );
                if ui
                    .add_enabled(can_switch || active, egui::Button::selectable(active, text))
                    .on_hover_text(entry.dir.display().to_string())
                    .clicked()
                    && !active
                {
                    action = Some(Action::Use(entry.dir.clone()));
                }
            });
            if !entry.measured.is_empty() {
                ui.small(&entry.measured);
            }
        }
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    self.importing.is_none(),
                    egui::Button::new("Import folder…"),
                )
                .clicked()
            {
                action = Some(Action::PickImport);
            }
            if ui
                .add_enabled(self.running.is_none(), egui::Button::new("Requantize…"))
                .clicked()
            {
                self.dialog_open = true;
            }
        });
        if let Some(running) = &self.running {
            let (fraction, text) = match &running.progress {
                Some(p) => (
                    p.done as f32 / p.total.max(1) as f32,
                    match p.eta_s {
                        Some(eta) => {
                            format!("{}: {}/{}, about {eta:.0} s left", p.phase, p.done, p.total)
                        }
                        None => format!("{}: {}/{}", p.phase, p.done, p.total),
                    },
                ),
                None => (0.0, "starting…".into()),
            };
            ui.add(egui::ProgressBar::new(fraction).text(text));
            if ui.button("Cancel requantization").clicked() {
                running.job.cancel();
            }
        }
        if let Some(message) = &self.message {
            ui.label(message);
        }
        self.requantize_dialog(ui.ctx(), wake);
        action
    }

    fn requantize_dialog(&mut self, ctx: &egui::Context, wake: &Waker) {
        let mut open = self.dialog_open;
        let mut start = false;
        egui::Window::new("Requantize")
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                ui.label(
                    "Makes a smaller, faster copy of the active model (of its full-precision \
                     original when it is quantized already). Calibration images are \
                     synthesized from the model itself: no patient image is used.",
                );
                let s = &mut self.settings;
                ui.add(egui::Slider::new(&mut s.weights, 2..=8).text("weight bits"));
                let mut float = s.activations.is_none();
                let mut bits = s.activations.unwrap_or(8);
                ui.horizontal(|ui| {
                    ui.add_enabled(
                        !float,
                        egui::Slider::new(&mut bits, 4..=8).text("activation bits"),
                    );
                    ui.checkbox(&mut float, "float");
                });
                s.activations = (!float).then_some(bits);
                ui.horizontal(|ui| {
                    ui.label("Effort");
                    for preset in [Preset::Quick, Preset::Standard, Preset::Paper] {
                        ui.selectable_value(&mut s.preset, preset, preset.name());
                    }
                });
                if ui.button("Start").clicked() {
                    start = true;
                }
            });
        self.dialog_open = open && !start;
        if start {
            self.start_requantize(wake.clone());
        }
    }
}
