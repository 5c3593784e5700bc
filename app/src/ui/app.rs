//! The main window: study on the left of the work, slice view in the centre, segments and model
//! on the right. All heavy work goes to `jobs`; this only reads state and sends requests.

use super::dialogs::{Dialogs, Purpose};
use super::model_panel::{Action, ModelPanel};
use super::model_state::{ModelInfo, ModelState};
use super::shortcuts::{self, Command};
use super::viewport::{self, Gesture, Mode, Placement};
use crate::jobs::Waker;
use crate::jobs::segmenter::{PropagationRequest, Reply, Request, Segmenter};
use crate::jobs::study_loader::{self, LoadedStudy};
use crate::jobs::writer::{self, Format, WriteJob};
use egui::{Color32, ColorImage, TextureHandle, TextureOptions, Vec2};
use lumen_annotation::Document;
use lumen_engine::model::{Point, Prediction, Prompt};
use lumen_study::{PRESETS, Volume, Window};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

mod files;

/// Organ names offered for new segments.
pub const ORGANS: [&str; 13] = [
    "Liver",
    "Spleen",
    "Right kidney",
    "Left kidney",
    "Gallbladder",
    "Oesophagus",
    "Stomach",
    "Aorta",
    "Inferior vena cava",
    "Portal vein",
    "Pancreas",
    "Right adrenal gland",
    "Left adrenal gland",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Box,
    Include,
    Exclude,
    Brush,
    Eraser,
}

/// The series found in the open folder, which one is open, and their thumbnails.
#[derive(Default)]
struct SeriesBrowser {
    folder: PathBuf,
    series: Vec<lumen_study::SeriesInfo>,
    open: usize,
    pixels: Vec<Option<ndarray::Array2<u8>>>,
    textures: Vec<Option<TextureHandle>>,
    incoming: Option<Receiver<(usize, ndarray::Array2<u8>)>>,
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
    slice_dirty: bool,
    overlay_dirty: bool,
    histogram: super::histogram::HistogramView,
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
    preview: Option<Prediction>,
    generation: u64,
    active_label: Option<u8>,
    new_segment_name: String,
    hover: Option<(usize, usize, f32)>,
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
}

/// Shown when a study opens with nothing annotated yet: the prompt every bundled model knows.
pub const FIRST_PROMPT_HINT: &str =
    "Drag a box around an organ to segment it, then press Enter to accept the mask";

/// Autosave state of the open study: its file, what was last written, and the write in flight.
struct Autosave {
    file: Option<PathBuf>,
    saved_revision: u64,
    last_attempt: Option<std::time::Instant>,
    running: Option<(u64, writer::WriteReply)>,
}

/// The least time between two autosaves: an accepted edit is on disk within about this long,
/// and a burst of brush strokes is written once rather than per stroke.
const AUTOSAVE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A propagation running in the segmenter.
struct Propagation {
    label: u8,
    cancel: Arc<AtomicBool>,
    done: usize,
    of: usize,
}

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
        let repaint = ctx.clone();
        let wake: Waker = Arc::new(move || repaint.request_repaint());
        let model_panel = ModelPanel::new(
            model_dir.clone(),
            crate::paths::assets_dir().join("models"),
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
            preview: None,
            generation: 0,
            active_label: None,
            new_segment_name: ORGANS[0].to_string(),
            hover: None,
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

    /// The open study's volume.
    pub fn volume(&self) -> Option<&Volume> {
        self.study.as_ref().map(|s| s.volume.as_ref())
    }

    /// Whether the model is loaded and a study is open, so prompts can be answered.
    pub fn is_ready(&self) -> bool {
        self.study.is_some() && self.model.ready().is_some()
    }

    fn poll_jobs(&mut self) {
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
                    z,
                    generation,
                    prediction,
                } => {
                    if generation == self.generation && Some(z) == self.current_slice() {
                        self.preview = Some(prediction);
                        self.mark_overlay_dirty();
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

    fn show_study(&mut self, loaded: LoadedStudy) {
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
            slice_dirty: true,
            overlay_dirty: true,
            histogram: Default::default(),
        });
        self.active_label = None;
        self.go_to_slice(z);
    }

    fn mark_overlay_dirty(&mut self) {
        if let Some(study) = &mut self.study {
            study.overlay_dirty = true;
        }
    }

    /// Where autosaves are kept (and restored from when a study opens); None turns autosave off.
    pub fn set_autosave_folder(&mut self, folder: Option<PathBuf>) {
        self.autosave_folder = folder;
    }

    /// Writes the document to its autosave file once it has changed, at most once per
    /// `AUTOSAVE_AFTER`; asks for a repaint to come back when a change is waiting for that.
    fn poll_autosave(&mut self, ctx: &egui::Context) {
        let Some(study) = &mut self.study else { return };
        let autosave = &mut study.autosave;
        if let Some((revision, running)) = &autosave.running
            && let Ok(result) = running.try_recv()
        {
            match result {
                Ok(_) => autosave.saved_revision = *revision,
                Err(message) => self.notes = vec![format!("Autosave failed: {message}")],
            }
            autosave.running = None;
        }
        let revision = study.document.revision();
        if revision == autosave.saved_revision || autosave.running.is_some() {
            return;
        }
        let since = autosave.last_attempt.map(|t| t.elapsed());
        if let Some(since) = since.filter(|s| *s < AUTOSAVE_AFTER) {
            ctx.request_repaint_after(AUTOSAVE_AFTER - since);
            return;
        }
        if let Some(job) = autosave_job(study) {
            study.autosave.last_attempt = Some(std::time::Instant::now());
            study.autosave.running = Some((revision, writer::write(job, self.wake.clone())));
        }
    }

    /// Starts writing the open study's unsaved changes now, on the writer thread, after the
    /// write in flight (the study is about to be replaced, so nobody waits for the reply).
    fn save_now_in_background(&mut self) {
        let Some(study) = &mut self.study else { return };
        if study.document.revision() != study.autosave.saved_revision
            && let Some(job) = autosave_job(study)
        {
            let earlier = study.autosave.running.take().map(|(_, reply)| reply);
            let _detached = writer::write_after(earlier, job, self.wake.clone());
        }
    }

    /// Writes the open study's unsaved changes and waits for them: the app is closing, and an
    /// accepted edit must not be lost. A write already in flight finishes first.
    fn save_before_exit(&mut self) {
        let Some(study) = &mut self.study else { return };
        if let Some((revision, running)) = study.autosave.running.take()
            && let Ok(Ok(_)) = running.recv()
        {
            study.autosave.saved_revision = revision;
        }
        if study.document.revision() == study.autosave.saved_revision {
            return;
        }
        if let Some(job) = autosave_job(study) {
            let target = job.target.clone();
            match writer::write(job, Arc::new(|| {})).recv() {
                Ok(Ok(_)) => {}
                // the window is gone: the terminal is the last place to say it
                Ok(Err(message)) => crate::cli::note_stderr(format_args!(
                    "lumen: the annotation could not be saved on exit: {message}"
                )),
                Err(_) => crate::cli::note_stderr(format_args!(
                    "lumen: the annotation could not be saved on exit to {}",
                    target.display()
                )),
            }
        }
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
        study.slice_dirty = true;
        study.overlay_dirty = true;
        self.prompt = Prompt::default();
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

    /// Sends the current prompt to the segmenter; the answer becomes the preview.
    fn request_prediction(&mut self) {
        let Some(z) = self.current_slice() else {
            return;
        };
        self.generation += 1;
        if let Some(segmenter) = &self.segmenter {
            segmenter.send(Request::Predict {
                z,
                prompt: self.prompt.clone(),
                generation: self.generation,
            });
        }
    }

    /// Applies a gesture made with the current tool.
    pub fn apply_gesture(&mut self, gesture: Gesture) {
        match gesture {
            Gesture::Box(bbox) => {
                self.prompt = Prompt::from_box(bbox);
                self.request_prediction();
            }
            Gesture::Click { x, y } => {
                let Some(study) = &self.study else { return };
                let [nx, ny, _] = study.volume.dims;
                if x < 0.0 || y < 0.0 || x >= nx as f32 || y >= ny as f32 {
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
                    study.slice_dirty = true;
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
            Gesture::Paint { x, y } => self.stroke.push((x, y)),
            Gesture::PaintEnd => self.finish_stroke(),
        }
    }

    /// Paints (brush) or removes (eraser) the stroke in the active segment: one undo step.
    fn finish_stroke(&mut self) {
        let stroke = std::mem::take(&mut self.stroke);
        let Some(study) = &mut self.study else { return };
        let Some(label) = self
            .active_label
            .filter(|l| study.document.segments().iter().any(|s| s.label == *l))
        else {
            self.notes = vec!["Choose or add a segment to paint in".into()];
            return;
        };
        let [nx, ny, _] = study.volume.dims;
        let mask = lumen_annotation::brush::stroke_mask(&stroke, self.brush_radius, (nx, ny));
        let erase = self.tool == Tool::Eraser;
        let changed = lumen_annotation::brush::apply_stroke(
            &mut study.document,
            study.z,
            label,
            mask.view(),
            erase,
        );
        study.overlay_dirty = true;
        let verb = if erase { "Erased" } else { "Painted" };
        self.notes = vec![format!("{verb} {changed} voxels on slice {}", study.z + 1)];
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
        let changed =
            study
                .document
                .set_slice_mask(study.z, label, preview.mask.view(), "accept mask");
        study.overlay_dirty = true;
        self.prompt = Prompt::default();
        self.notes = vec![format!(
            "Accepted {changed} voxels on slice {}",
            study.z + 1
        )];
    }

    /// Carries the active segment's mask on this slice to its neighbours in the background.
    pub fn propagate(&mut self, direction: Direction) {
        let (Some(study), Some(label), Some(segmenter)) =
            (&self.study, self.active_label, &self.segmenter)
        else {
            return;
        };
        if self.propagation.is_some() {
            return;
        }
        let [nx, ny, _] = study.volume.dims;
        let labels = study.document.slice_labels(study.z);
        let Ok(mask) =
            ndarray::Array2::from_shape_vec((ny, nx), labels.iter().map(|l| *l == label).collect())
        else {
            return;
        };
        if !mask.iter().any(|v| *v) {
            self.notes = vec!["Draw the segment on this slice first, then propagate it".into()];
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let request = PropagationRequest {
            from: study.z,
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

    fn finish_propagation(&mut self, masks: &[(usize, ndarray::Array2<bool>)], cancelled: bool) {
        let Some(propagation) = self.propagation.take() else {
            return;
        };
        let Some(study) = &mut self.study else { return };
        let changed = study
            .document
            .set_slice_masks(propagation.label, masks, "propagate");
        study.overlay_dirty = true;
        let how = if cancelled {
            "Cancelled propagation; kept"
        } else {
            "Propagated to"
        };
        self.notes = vec![format!("{how} {} slices ({changed} voxels)", masks.len())];
    }

    pub fn undo(&mut self) {
        if let Some(study) = &mut self.study
            && let Some(what) = study.document.undo()
        {
            study.overlay_dirty = true;
            self.notes = vec![format!("Undid {what}")];
        }
    }

    pub fn redo(&mut self) {
        if let Some(study) = &mut self.study
            && let Some(what) = study.document.redo()
        {
            study.overlay_dirty = true;
            self.notes = vec![format!("Redid {what}")];
        }
    }

    pub fn set_tool(&mut self, tool: Tool) {
        self.tool = tool;
    }

    fn clear_prompt(&mut self) {
        self.prompt = Prompt::default();
        self.preview = None;
        self.generation += 1;
        self.mark_overlay_dirty();
    }

    fn handle_keys(&mut self, ctx: &egui::Context) {
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
            self.open_folder(&folder);
        }
        // Keys typed into a text field (a segment's name) are not shortcuts, but for F1.
        let typing = ctx.egui_wants_keyboard_input();
        for command in shortcuts::pressed(ctx, typing) {
            self.run(command, ctx);
        }
    }

    /// Does what a shortcut asks.
    fn run(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::OpenFolder => self.pick_folder(),
            // on_exit saves the annotation before the window goes
            Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            Command::Undo => self.undo(),
            Command::Redo => self.redo(),
            Command::AcceptPreview => self.accept_preview(),
            Command::ClearPrompt => self.clear_prompt(),
            Command::ToggleHelp => self.show_shortcuts = !self.show_shortcuts,
            Command::NextSlice => self.step_slices(1),
            Command::PreviousSlice => self.step_slices(-1),
            Command::TenSlicesOn => self.step_slices(10),
            Command::TenSlicesBack => self.step_slices(-10),
        }
    }

    fn refresh_textures(&mut self, ctx: &egui::Context) {
        let preview = self.preview.as_ref();
        let Some(study) = &mut self.study else { return };
        let [nx, ny, _] = study.volume.dims;
        if study.slice_dirty || study.slice_texture.is_none() {
            let values = study.volume.slice(study.z).unwrap_or(&[]);
            let grey = study.volume.to_grey(values, study.window);
            let image = ColorImage::from_gray([nx, ny], &grey);
            match &mut study.slice_texture {
                Some(texture) => texture.set(image, TextureOptions::LINEAR),
                None => {
                    study.slice_texture =
                        Some(ctx.load_texture("slice", image, TextureOptions::LINEAR))
                }
            }
            study.slice_dirty = false;
        }
        if study.overlay_dirty || study.overlay_texture.is_none() {
            let image = overlay_image(&study.document, study.z, [nx, ny], preview);
            match &mut study.overlay_texture {
                Some(texture) => texture.set(image, TextureOptions::NEAREST),
                None => {
                    study.overlay_texture =
                        Some(ctx.load_texture("overlay", image, TextureOptions::NEAREST))
                }
            }
            study.overlay_dirty = false;
        }
    }

    /// The series of the open folder: thumbnail, description, modality, slices and warnings;
    /// another one opens in the background.
    fn series_browser(&mut self, ui: &mut egui::Ui) {
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
            self.open_series(i);
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

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        self.series_browser(ui);
        ui.heading("Tools");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tool, Tool::Box, "Box");
            ui.selectable_value(&mut self.tool, Tool::Include, "+ Include");
            ui.selectable_value(&mut self.tool, Tool::Exclude, "- Exclude");
        });
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tool, Tool::Brush, "Brush");
            ui.selectable_value(&mut self.tool, Tool::Eraser, "Eraser");
            ui.add(egui::Slider::new(&mut self.brush_radius, 1.0..=40.0).text("px"));
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.preview.is_some(), egui::Button::new("Accept (Enter)"))
                .clicked()
            {
                self.accept_preview();
            }
            if ui.button("Clear (Esc)").clicked() {
                self.clear_prompt();
            }
        });
        ui.horizontal(|ui| {
            ui.label("Propagate");
            let can = self.propagation.is_none() && self.active_label.is_some();
            for (text, direction) in [
                ("Up", Direction::Up),
                ("Down", Direction::Down),
                ("Both", Direction::Both),
            ] {
                if ui.add_enabled(can, egui::Button::new(text)).clicked() {
                    self.propagate(direction);
                }
            }
        });
        if let Some(p) = &self.propagation {
            let fraction = if p.of > 0 {
                p.done as f32 / p.of as f32
            } else {
                0.0
            };
            ui.add(egui::ProgressBar::new(fraction).text(format!("{} slices", p.done)));
            if ui.button("Cancel").clicked() {
                self.cancel_propagation();
            }
        }
        ui.separator();
        ui.heading("Segments");
        egui::ComboBox::from_label("new segment")
            .selected_text(&self.new_segment_name)
            .show_ui(ui, |ui| {
                for organ in ORGANS {
                    ui.selectable_value(&mut self.new_segment_name, organ.to_string(), organ);
                }
            });
        if let Some(study) = &mut self.study {
            if ui.button("Add segment").clicked() {
                self.active_label = study.document.add_segment(&self.new_segment_name);
            }
            let z = study.z;
            let mut changed = false;
            let labels: Vec<u8> = study.document.segments().iter().map(|s| s.label).collect();
            for label in labels {
                let volume = study.document.volume_ml(label);
                let on_slice = study.document.slice_count(z, label);
                let pixel_mm2 = study.volume.spacing[0] * study.volume.spacing[1];
                let Some(before) = study.document.segments().iter().find(|s| s.label == label)
                else {
                    continue;
                };
                // Edit a copy; only a real change reaches the document (and its autosave).
                let mut edited = before.clone();
                let active = self.active_label == Some(label);
                ui.horizontal(|ui| {
                    ui.color_edit_button_srgb(&mut edited.color);
                    if ui.selectable_label(active, &edited.name).clicked() {
                        self.active_label = Some(label);
                    }
                    ui.checkbox(&mut edited.visible, "show");
                    ui.checkbox(&mut edited.locked, "lock");
                });
                if active {
                    ui.horizontal(|ui| {
                        let caption = ui.label("   name");
                        ui.text_edit_singleline(&mut edited.name)
                            .labelled_by(caption.id);
                    });
                }
                if edited != *before {
                    changed |= edited.visible != before.visible || edited.color != before.color;
                    if let Some(segment) = study.document.segment_mut(label) {
                        *segment = edited;
                    }
                }
                ui.label(format!(
                    "   {volume:.1} mL, {:.0} mm² on this slice",
                    on_slice as f64 * pixel_mm2
                ));
            }
            if changed {
                study.overlay_dirty = true;
            }
            ui.separator();
            ui.heading("Window");
            ui.horizontal_wrapped(|ui| {
                for preset in PRESETS {
                    if ui.button(preset.name).clicked() {
                        study.window = preset.window;
                        study.slice_dirty = true;
                    }
                }
            });
            ui.label(format!(
                "W {:.0} / L {:.0}",
                study.window.width, study.window.center
            ));
            if let Some(values) = study.volume.slice(study.z) {
                study.histogram.update(
                    values,
                    study.document.slice_labels(study.z),
                    study.z,
                    self.active_label,
                    study.document.revision(),
                    &study.window,
                );
            }
            study
                .histogram
                .show(ui, &study.window, study.volume.modality.value_name());
        }
        ui.separator();
        self.export_section(ui);
        ui.separator();
        let can_switch = self.propagation.is_none();
        let timings = if self.show_timings {
            self.latency
        } else {
            (None, None)
        };
        let model = self.model.status();
        let status = match timings {
            (Some(e), Some(d)) => {
                format!("{model}\nlast slice encoded in {e:.0} ms, last mask in {d:.0} ms")
            }
            (Some(e), None) => format!("{model}\nlast slice encoded in {e:.0} ms"),
            _ => model,
        };
        match self.model_panel.show(ui, &status, can_switch, &self.wake) {
            Some(Action::Use(dir)) => self.use_model(dir),
            Some(Action::PickImport) => self.ask(Purpose::ImportModel),
            None => {}
        }
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
                self.mark_overlay_dirty();
            }
            Err(e) => {
                self.model = ModelState::Failed(format!("The segmenter could not start: {e}"))
            }
        }
    }
}

/// Visible segments in their colours, the preview in yellow on top.
fn overlay_image(
    document: &Document,
    z: usize,
    [nx, ny]: [usize; 2],
    preview: Option<&Prediction>,
) -> ColorImage {
    let mut colors = [Color32::TRANSPARENT; 256];
    for s in document.segments().iter().filter(|s| s.visible) {
        let [r, g, b] = s.color;
        colors[s.label as usize] = Color32::from_rgba_unmultiplied(r, g, b, 110);
    }
    let labels = document.slice_labels(z);
    let mut pixels: Vec<Color32> = (0..nx * ny)
        .map(|i| {
            labels
                .get(i)
                .map_or(Color32::TRANSPARENT, |l| colors[*l as usize])
        })
        .collect();
    if let Some(p) = preview.filter(|p| p.mask.dim() == (ny, nx)) {
        let yellow = Color32::from_rgba_unmultiplied(255, 220, 0, 120);
        for (pixel, inside) in pixels.iter_mut().zip(p.mask.iter()) {
            if *inside {
                *pixel = yellow;
            }
        }
    }
    ColorImage::new([nx, ny], pixels)
}

/// The write of `study`'s document to its autosave file, if it has one.
fn autosave_job(study: &OpenStudy) -> Option<WriteJob> {
    let target = study.autosave.file.clone()?;
    let (labels, segments) = study.document.to_export(&study.volume);
    Some(WriteJob {
        format: Format::Nifti,
        volume: study.volume.clone(),
        labels,
        segments,
        target,
        model: String::new(),
    })
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
        self.handle_keys(&ctx);
        self.refresh_textures(&ctx);
        self.persist_settings();
        egui::Panel::top("menu").show(ui, |ui| {
            ui.horizontal(|ui| {
                self.open_buttons(ui);
                if ui
                    .add_enabled(self.study.is_some(), egui::Button::new("Fit view"))
                    .clicked()
                    && let Some(study) = &mut self.study
                {
                    study.zoom = 1.0;
                    study.pan = Vec2::ZERO;
                }
                if ui.button("Shortcuts (F1)").clicked() {
                    self.show_shortcuts = !self.show_shortcuts;
                }
            });
        });
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
            .show(ui, |ui| self.side_panel(ui));
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                if self.loading.is_some() {
                    self.load_progress(ui);
                }
                if let Some(study) = &self.study {
                    ui.label(format!("Slice {}/{}", study.z + 1, study.volume.dims[2]));
                }
                // before the hover readout, which comes and goes with the pointer: a button
                // after it would move away as the pointer reaches for it
                self.export_offers(ui);
                if let (Some((x, y, v)), Some(study)) = (self.hover, &self.study) {
                    let unit = study.volume.modality.unit().unwrap_or("");
                    ui.label(format!("({x}, {y}) {v:.0} {unit}").trim_end().to_string());
                }
                for note in &self.notes {
                    ui.label(note);
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| self.central(ui));
        if let Some(answer) = self.dialogs.show(&ctx) {
            self.answered(answer);
        }
    }
}

impl LumenApp {
    /// The load in flight: images decoded of the series, and Cancel.
    fn load_progress(&mut self, ui: &mut egui::Ui) {
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
    fn open_buttons(&mut self, ui: &mut egui::Ui) {
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
    fn start_screen(&mut self, ui: &mut egui::Ui) {
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

    fn central(&mut self, ui: &mut egui::Ui) {
        let Some(study) = &self.study else {
            self.start_screen(ui);
            return;
        };
        let (Some(slice), Some(overlay)) =
            (study.slice_texture.clone(), study.overlay_texture.clone())
        else {
            return;
        };
        let [nx, ny, nz] = study.volume.dims;
        let mut z = study.z;
        let slider = ui.add(egui::Slider::new(&mut z, 0..=nz.saturating_sub(1)).text("slice"));
        if slider.changed() {
            self.go_to_slice(z);
        }
        let Some(study) = &self.study else { return };
        let area = ui.available_rect_before_wrap();
        let placement = Placement::fit(area, (nx, ny), study.zoom, study.pan);
        let (response, gestures) = viewport::show(
            ui,
            placement,
            &slice,
            &overlay,
            &self.prompt,
            match self.tool {
                Tool::Box => Mode::Box,
                Tool::Include | Tool::Exclude => Mode::Click,
                Tool::Brush | Tool::Eraser => Mode::Paint {
                    radius: self.brush_radius,
                    stroke: &self.stroke,
                },
            },
            &viewport::ViewLabels::new(&study.volume.patient_from_voxel, study.volume.spacing[0]),
        );
        self.hover = response.hover_pos().and_then(|p| {
            let (x, y) = placement.to_image(p);
            let (x, y) = (x.floor(), y.floor());
            (x >= 0.0 && y >= 0.0)
                .then_some((x as usize, y as usize))
                .and_then(|(x, y)| {
                    self.study
                        .as_ref()
                        .and_then(|s| s.volume.get(x, y, s.z))
                        .map(|v| (x, y, v))
                })
        });
        for gesture in gestures {
            self.apply_gesture(gesture);
        }
    }
}
