//! The main window: study on the left of the work, slice view in the centre, segments and model
//! on the right. All heavy work goes to `jobs`; this only reads state and sends requests.

use super::command::Command;
use super::dialogs::Dialogs;
use super::model_panel::ModelPanel;
use super::model_state::ModelState;
use super::shortcuts;
use crate::jobs::Waker;
use crate::jobs::segmenter::{Request, Segmenter};
use crate::jobs::study_loader::{self, LoadedStudy};
use crate::jobs::writer;
use egui::{TextureHandle, Vec2};
use lumen_annotation::Document;
use lumen_engine::model::{Prediction, Prompt};
use lumen_study::reformat::Cut;
use lumen_study::{Volume, Window};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

mod apply;
mod autosave;
mod editing;
mod files;
mod replies;
mod screens;
mod series;
mod side_panel;
mod surfaces;
mod textures;
mod views;

use autosave::Autosave;
use editing::Propagation;
use series::SeriesBrowser;
use textures::{OverlayKey, SliceKey};
pub use views::Layout;
use views::PlaneTextures;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Box,
    Include,
    Exclude,
    Brush,
    Eraser,
}

/// An open study and the view of it.
struct OpenStudy {
    /// The folder it was opened from (Save as… remembers its choices by it).
    folder: PathBuf,
    volume: Arc<Volume>,
    document: Document,
    /// Where the document is autosaved (None: not at all), and what was last written there.
    autosave: Autosave,
    z: usize,
    window: Window,
    zoom: f32,
    pan: Vec2,
    slice_texture: Option<TextureHandle>,
    overlay_texture: Option<TextureHandle>,
    /// What the slice and overlay textures show: each is remade when its key moves.
    slice_shown: Option<SliceKey>,
    overlay_shown: Option<OverlayKey>,
    /// The voxel column and row the crosshair crosses on the slice (its slice is `z`).
    crosshair: [usize; 2],
    /// The planes across the slices (fixed row, fixed column) as last drawn.
    planes: [PlaneTextures; 2],
    /// The segments' surfaces and the 3D view.
    surfaces: surfaces::Surfaces,
    histogram: super::histogram::HistogramView,
    /// The segments' statistics, remade per slice as edits change them.
    statistics: lumen_annotation::statistics::StatisticsCache,
}

pub struct LumenApp {
    wake: Waker,
    segmenter: Option<Segmenter>,
    model: ModelState,
    loading: Option<Receiver<Result<LoadedStudy, String>>>,
    /// Progress and cancel of the load in flight.
    load_control: Arc<lumen_study::LoadControl>,
    study: Option<OpenStudy>,
    notes: Vec<String>,
    tool: Tool,
    prompt: Prompt,
    /// The cut (the slice on screen, or a plane across the slices) the prompt and preview are on.
    prompt_cut: Cut,
    preview: Option<Prediction>,
    generation: u64,
    active_label: Option<u8>,
    new_segment_name: String,
    /// The voxel under the pointer in any view, and its value.
    hover: Option<([usize; 3], f32)>,
    layout: Layout,
    propagation: Option<Propagation>,
    writes: Vec<Receiver<Result<PathBuf, String>>>,
    /// Where quick exports go, and whether the user chose it (else it is the default).
    export_folder: PathBuf,
    export_folder_chosen: bool,
    /// The latest Save as… choices, per study and format.
    saved_as: Vec<crate::settings::SavedAs>,
    /// The file manager's opener, if the desktop has one, and a failure it reported.
    folder_opener: Option<PathBuf>,
    showing_folder: Option<Receiver<Option<String>>>,
    /// Where the annotation is autosaved; None turns autosave off.
    autosave_folder: Option<PathBuf>,
    /// The last export written, for the user (and tests) to find it.
    last_export: Option<PathBuf>,
    pub model_panel: ModelPanel,
    /// Recently opened study folders, newest first.
    recent: Vec<PathBuf>,
    /// Where settings are kept (None: not kept), and what was last saved there.
    settings_file: Option<PathBuf>,
    saved_settings: crate::settings::Settings,
    /// The file and folder dialogs (the desktop's, or Lumen's own).
    dialogs: Dialogs,
    show_shortcuts: bool,
    /// The series browser: every series of the open folder, thumbnails as they arrive.
    browser: SeriesBrowser,
    /// The last encoder and decoder run times (ms), shown in the model panel.
    latency: (Option<f64>, Option<f64>),
    show_timings: bool,
    /// Brush and eraser radius in image pixels, and the stroke being painted.
    pub brush_radius: f32,
    stroke: Vec<(f32, f32)>,
    /// The cut the stroke is painted on.
    stroke_cut: Cut,
}

/// Shown when a study opens with nothing annotated yet: the prompt every bundled model knows.
pub const FIRST_PROMPT_HINT: &str =
    "Drag a box around an organ to segment it, then press Enter to accept the mask";

/// The least time between two autosaves: an accepted edit is on disk within about this long,
/// and a burst of brush strokes is written once rather than per stroke.
const AUTOSAVE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Which way to carry the active segment from the current slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Both,
}

impl LumenApp {
    /// Starts the segmenter on `model_dir` and, if given, opens `study_dir`.
    pub fn new(ctx: &egui::Context, model_dir: PathBuf, study_dir: Option<&Path>) -> Self {
        // A frame whose commands changed the state is drawn again (`apply_all`); a grid shown
        // for the first time in that pass needs one more to size itself.
        ctx.options_mut(|o| o.max_passes = std::num::NonZeroUsize::MIN.saturating_add(2));
        let repaint = ctx.clone();
        let wake: Waker = Arc::new(move || repaint.request_repaint());
        let model_panel = ModelPanel::new(
            model_dir.clone(),
            crate::paths::bundled_models_dir(),
            crate::models::user_models_dir(),
        );
        let (segmenter, model) = match Segmenter::start(model_dir, wake.clone()) {
            Ok(s) => (Some(s), ModelState::Opening),
            Err(e) => (
                None,
                ModelState::Failed(format!("The segmenter could not start: {e}")),
            ),
        };
        let dialogs = Dialogs::new(true, wake.clone());
        let mut app = Self {
            wake,
            segmenter,
            model,
            loading: None,
            load_control: Default::default(),
            study: None,
            notes: Vec::new(),
            tool: Tool::Box,
            prompt: Prompt::default(),
            prompt_cut: Cut::Slice(0),
            preview: None,
            generation: 0,
            active_label: None,
            new_segment_name: lumen_annotation::organs::OFFERED[0].to_string(),
            hover: None,
            layout: Layout::default(),
            propagation: None,
            writes: Vec::new(),
            export_folder: writer::export_folder(),
            export_folder_chosen: false,
            saved_as: Vec::new(),
            folder_opener: super::desktop::folder_opener(),
            showing_folder: None,
            autosave_folder: crate::jobs::autosave::autosave_folder(),
            last_export: None,
            model_panel,
            recent: Vec::new(),
            settings_file: None,
            saved_settings: Default::default(),
            dialogs,
            show_shortcuts: false,
            browser: SeriesBrowser::default(),
            latency: (None, None),
            show_timings: true,
            brush_radius: 6.0,
            stroke: Vec::new(),
            stroke_cut: Cut::Slice(0),
        };
        app.set_settings_file(crate::settings::settings_file());
        if let Some(dir) = study_dir {
            app.open_folder(dir);
        }
        app
    }

    /// The last encoder and decoder run times in ms (None until one ran in this session; an
    /// embedding read from the disk cache runs no encoder).
    pub fn latency(&self) -> (Option<f64>, Option<f64>) {
        self.latency
    }

    /// Whether the model panel shows the measured run times (snapshots turn them off: the
    /// numbers vary from run to run).
    pub fn show_timings(&mut self, show: bool) {
        self.show_timings = show;
    }

    /// Recently opened study folders, newest first.
    pub fn recent_studies(&self) -> &[PathBuf] {
        &self.recent
    }

    /// Reads and keeps settings in `file` (tests use their own, or None to keep nothing).
    pub fn set_settings_file(&mut self, file: Option<PathBuf>) {
        let settings = file
            .as_deref()
            .map(crate::settings::load)
            .unwrap_or_default();
        self.apply_settings(&settings);
        self.saved_settings = settings;
        self.settings_file = file;
    }

    fn apply_settings(&mut self, s: &crate::settings::Settings) {
        self.recent = s.recent_studies.clone();
        self.saved_as = s.saved_as.clone();
        if let Some(folder) = &s.export_folder {
            self.set_export_folder(folder.clone());
        }
        self.brush_radius = s.brush_radius.clamp(1.0, 40.0);
        let panel = &mut self.model_panel.settings;
        panel.weights = s.requantize_weights.clamp(2, 8);
        panel.activations = s.requantize_activations.map(|a| a.clamp(4, 8));
        panel.preset = s.requantize_preset.parse().unwrap_or(panel.preset);
    }

    fn current_settings(&self) -> crate::settings::Settings {
        let panel = &self.model_panel.settings;
        crate::settings::Settings {
            recent_studies: self.recent.clone(),
            brush_radius: self.brush_radius,
            requantize_weights: panel.weights,
            requantize_activations: panel.activations,
            requantize_preset: panel.preset.name().to_string(),
            export_folder: self
                .export_folder_chosen
                .then(|| self.export_folder.clone()),
            saved_as: self.saved_as.clone(),
        }
    }

    /// Saves the settings in the background when they changed.
    fn persist_settings(&mut self) {
        let Some(file) = &self.settings_file else {
            return;
        };
        let current = self.current_settings();
        if current != self.saved_settings {
            crate::settings::save_in_background(file.clone(), current.clone());
            self.saved_settings = current;
        }
    }

    pub fn shortcuts_shown(&self) -> bool {
        self.show_shortcuts
    }

    pub fn open_folder(&mut self, dir: &Path) {
        self.notes = vec![format!("Opening {}…", dir.display())];
        self.load_control = Default::default();
        self.loading = Some(study_loader::open_folder(
            dir,
            self.autosave_folder.clone(),
            self.load_control.clone(),
            self.wake.clone(),
        ));
    }

    /// The open document, for tests and export.
    pub fn document(&self) -> Option<&Document> {
        self.study.as_ref().map(|s| &s.document)
    }

    pub fn current_slice(&self) -> Option<usize> {
        self.study.as_ref().map(|s| s.z)
    }

    /// Whether a mask preview is waiting to be accepted.
    pub fn has_preview(&self) -> bool {
        self.preview.is_some()
    }

    /// Where the model stands (its name and precision once loaded).
    pub fn model(&self) -> &ModelState {
        &self.model
    }

    /// The display window, and the slice view's zoom and pan (points).
    pub fn view_state(&self) -> Option<(Window, f32, Vec2)> {
        self.study.as_ref().map(|s| (s.window, s.zoom, s.pan))
    }

    /// The open study's volume.
    pub fn volume(&self) -> Option<&Volume> {
        self.study.as_ref().map(|s| s.volume.as_ref())
    }

    /// Whether the model is loaded and a study is open, so prompts can be answered.
    pub fn is_ready(&self) -> bool {
        self.study.is_some() && self.model.ready().is_some()
    }

    /// Where autosaves are kept (and restored from when a study opens); None turns autosave off.
    pub fn set_autosave_folder(&mut self, folder: Option<PathBuf>) {
        self.autosave_folder = folder;
    }

    /// Moves `step` slices on (back when negative), stopping at the ends.
    fn step_slices(&mut self, step: isize) {
        if let Some(z) = self.current_slice() {
            self.go_to_slice(z.saturating_add_signed(step));
        }
    }

    /// Moves to slice `z`: the prompt belongs to a slice, so it is cleared; neighbours are prefetched.
    pub fn go_to_slice(&mut self, z: usize) {
        let Some(study) = &mut self.study else { return };
        let z = z.min(study.volume.dims[2].saturating_sub(1));
        study.z = z;
        self.prompt = Prompt::default();
        self.prompt_cut = Cut::Slice(z);
        self.preview = None;
        self.generation += 1;
        let depth = study.volume.dims[2];
        let around: Vec<usize> = [z, z + 1, z.wrapping_sub(1), z + 2, z.wrapping_sub(2)]
            .into_iter()
            .filter(|n| *n < depth)
            .collect();
        if let Some(segmenter) = &self.segmenter {
            segmenter.send(Request::Prefetch(around));
        }
    }

    /// The commands of this frame's keys (and a dropped file, which opens its folder).
    fn handle_keys(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        // an open dialog takes the keyboard (its Esc cancels it, not the prompt)
        if self.dialogs.is_open() {
            return;
        }
        let dropped = ctx.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()));
        // A dropped file opens the folder it is in (its series).
        if let Some(path) = dropped {
            let folder = if path.is_dir() {
                path
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or(path)
            };
            commands.push(Command::OpenStudy(folder));
        }
        // Keys typed into a text field (a segment's name) are not shortcuts, but for F1.
        let typing = ctx.egui_wants_keyboard_input();
        commands.extend(shortcuts::pressed(ctx, typing));
    }

    /// Switches to the model in `dir`: a new segmenter (the old one's thread ends when its
    /// handle is dropped), fed the open study; the preview is dropped, the annotation kept.
    pub fn use_model(&mut self, dir: PathBuf) {
        match Segmenter::start(dir.clone(), self.wake.clone()) {
            Ok(segmenter) => {
                if let Some(study) = &self.study {
                    segmenter.send(Request::SetVolume(study.volume.clone()));
                }
                self.segmenter = Some(segmenter);
                self.model = ModelState::Opening;
                self.latency = (None, None);
                self.model_panel.active = dir;
                self.generation += 1;
                self.preview = None;
            }
            Err(e) => {
                self.model = ModelState::Failed(format!("The segmenter could not start: {e}"))
            }
        }
    }
}

impl eframe::App for LumenApp {
    fn on_exit(&mut self) {
        self.save_before_exit();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_jobs();
        self.poll_writes();
        self.poll_autosave(&ctx);
        // Each region's commands are applied as soon as it is drawn, so the regions after it
        // (the side panel before the views) see what they changed, as the user does.
        let mut commands = Vec::new();
        self.handle_keys(&ctx, &mut commands);
        self.apply_all(&mut commands, &ctx);
        self.refresh_textures(&ctx);
        self.persist_settings();
        egui::Panel::top("menu").show(ui, |ui| {
            ui.horizontal(|ui| {
                screens::open_buttons(ui, &mut commands);
                if ui
                    .add_enabled(self.study.is_some(), egui::Button::new("Fit view"))
                    .clicked()
                {
                    commands.push(Command::FitView);
                }
                if ui.button("Shortcuts (F1)").clicked() {
                    commands.push(Command::ToggleHelp);
                }
            });
        });
        self.apply_all(&mut commands, &ctx);
        let mut shown = self.show_shortcuts;
        egui::Window::new("Keyboard and mouse")
            .open(&mut shown)
            .collapsible(false)
            .show(&ctx, |ui| {
                egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                    for (keys, what) in shortcuts::help_rows() {
                        ui.strong(keys);
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
        self.show_shortcuts = shown;
        egui::Panel::right("side")
            .min_size(260.0)
            .show(ui, |ui| self.side_panel(ui, &mut commands));
        self.apply_all(&mut commands, &ctx);
        egui::Panel::bottom("status").show(ui, |ui| {
            // wrapped, so a long note (a failed restore's reason, a long path) is read whole
            ui.horizontal_wrapped(|ui| {
                if self.loading.is_some() {
                    self.load_progress(ui, &mut commands);
                }
                if let Some(study) = &self.study {
                    ui.label(format!("Slice {}/{}", study.z + 1, study.volume.dims[2]));
                }
                // before the hover readout, which comes and goes with the pointer: a button
                // after it would move away as the pointer reaches for it
                self.export_offers(ui);
                if let (Some((voxel, value)), Some(study)) = (self.hover, &self.study) {
                    ui.label(views::hover_readout(&study.volume, voxel, value));
                }
                for note in &self.notes {
                    ui.add(egui::Label::new(note).wrap());
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| self.central(ui, &mut commands));
        self.apply_all(&mut commands, &ctx);
        if let Some(answer) = self.dialogs.show(&ctx) {
            self.answered(answer);
        }
    }
}
