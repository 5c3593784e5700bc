//! Lumen's own file and folder chooser, for desktops where no native dialog answers (a plain X11
//! session without an xdg-desktop-portal, as on many clinic PCs and thin clients). A modal window
//! with the usual places (home, recent studies, mounted media), a path the user can type, and the
//! folder's entries; folders are read on a background thread.

pub mod listing;

use crate::jobs::Waker;
use egui::{Color32, Key};
use listing::{Listing, Looked};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

/// What the chooser asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// An existing folder.
    Folder,
    /// An existing file.
    File,
    /// A place to write: a folder and a new (or replaced) name in it.
    Save,
}

/// How the chooser ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Chosen(PathBuf),
    Cancelled,
}

/// What to do with a path once it has been looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// Show the folder (or, for a file, its folder).
    Show,
    /// Take it as the answer if it fits the mode.
    Choose,
}

/// The height of the places and the folder's entries, in points.
const LIST_HEIGHT: f32 = 300.0;

/// The label of the path field (tests and screen readers find it by this).
pub const PATH_LABEL: &str = "Path";
/// The label of the file name field in Save mode.
pub const NAME_LABEL: &str = "File name";

pub struct FileChooser {
    title: String,
    mode: Mode,
    wake: Waker,
    /// The folder shown and its entries (None until the first listing arrives).
    listing: Option<Listing>,
    path_text: String,
    /// Save mode: the name to write; File mode: the file picked in the listing.
    name: String,
    /// The path being read, and what to do with it.
    looking: Option<(Receiver<Looked>, Intent, PathBuf)>,
    /// Places given by the caller (recent studies, the sample) and the media found.
    places: Vec<(String, PathBuf)>,
    media: Option<Receiver<Vec<PathBuf>>>,
    message: Option<String>,
    /// Save mode: the existing file the user is asked to replace.
    confirm_replace: Option<PathBuf>,
    /// Until the path field first has the keyboard: a path can be typed as soon as it opens.
    focus_path: bool,
}

impl FileChooser {
    /// A chooser titled `title` starting in `start` (its nearest readable folder), with `places`
    /// listed beside home and the mounted media. In Save mode `name` is the suggested name.
    pub fn new(
        title: &str,
        mode: Mode,
        start: &Path,
        name: &str,
        mut places: Vec<(String, PathBuf)>,
        wake: Waker,
    ) -> Self {
        if let Some(home) = home_dir() {
            places.insert(0, ("Home".into(), home));
        }
        let media = crate::jobs::spawn_job("media", wake.clone(), listing::removable_media).ok();
        let mut chooser = Self {
            title: title.into(),
            mode,
            wake,
            listing: None,
            path_text: start.display().to_string(),
            name: name.into(),
            looking: None,
            places,
            media,
            message: None,
            confirm_replace: None,
            focus_path: true,
        };
        chooser.look(start.to_path_buf(), Intent::Show);
        chooser
    }

    /// The folder shown.
    pub fn folder(&self) -> Option<&Path> {
        self.listing.as_ref().map(|l| l.folder.as_path())
    }

    /// Whether a folder is being read.
    pub fn is_busy(&self) -> bool {
        self.looking.is_some()
    }

    fn look(&mut self, path: PathBuf, intent: Intent) {
        self.confirm_replace = None;
        let rx = listing::look_at(path.clone(), self.wake.clone());
        self.looking = Some((rx, intent, path));
    }

    /// Takes a finished look; returns the answer when it ends the chooser.
    fn poll(&mut self) -> Option<Outcome> {
        if let Some(rx) = &self.media
            && let Ok(found) = rx.try_recv()
        {
            self.media = None;
            for dir in found {
                let name = dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                self.places.push((format!("Media: {name}"), dir));
            }
        }
        let (rx, intent, path) = self.looking.as_ref()?;
        let looked = rx.try_recv().ok()?;
        let (intent, path) = (*intent, path.clone());
        self.looking = None;
        self.message = None;
        match looked {
            Looked::Folder(listing) => {
                if intent == Intent::Choose && self.mode == Mode::Folder {
                    return Some(Outcome::Chosen(listing.folder));
                }
                self.show_listing(listing);
            }
            Looked::File(file) => match self.mode {
                Mode::File if intent == Intent::Choose => return Some(Outcome::Chosen(file)),
                _ => {
                    if self.mode != Mode::Folder {
                        self.name = file_name(&file);
                    } else {
                        self.message =
                            Some(format!("{} is a file; its folder is shown", file.display()));
                    }
                    if let Some(parent) = file.parent() {
                        self.look(parent.to_path_buf(), Intent::Show);
                    }
                }
            },
            // a start folder not there yet (the export folder before the first export)
            Looked::Failed(_)
                if self.listing.is_none()
                    && let Some(parent) = path.parent() =>
            {
                self.look(parent.to_path_buf(), Intent::Show);
            }
            // Save: a name not there yet is the file to write, in its folder
            Looked::Failed(_)
                if self.mode == Mode::Save
                    && intent == Intent::Choose
                    && let (Some(parent), Some(name)) = (path.parent(), path.file_name()) =>
            {
                self.name = name.to_string_lossy().into_owned();
                self.look(parent.to_path_buf(), Intent::Show);
            }
            Looked::Failed(reason) => self.message = Some(reason),
        }
        None
    }

    fn show_listing(&mut self, listing: Listing) {
        self.path_text = listing.folder.display().to_string();
        if self.mode == Mode::File {
            self.name.clear();
        }
        self.listing = Some(listing);
    }

    /// Shows the chooser (modal: the rest of the window waits); Some once the user has chosen
    /// or cancelled.
    pub fn show(&mut self, ctx: &egui::Context) -> Option<Outcome> {
        if let Some(done) = self.poll() {
            return Some(done);
        }
        let modal = egui::Modal::new(egui::Id::unique("file-chooser")).show(ctx, |ui| {
            ui.set_width(640.0);
            ui.heading(&self.title);
            let outcome = self.path_row(ui);
            ui.separator();
            // Fixed sizes: a modal is centred on its last size, so content that grows would
            // make it slide. No separator between the two: in a row it takes all the height.
            ui.horizontal_top(|ui| {
                let column = egui::Layout::top_down(egui::Align::Min);
                ui.allocate_ui_with_layout(egui::vec2(150.0, LIST_HEIGHT), column, |ui| {
                    self.places_column(ui)
                });
                ui.add_space(8.0);
                ui.allocate_ui_with_layout(egui::vec2(470.0, LIST_HEIGHT), column, |ui| {
                    ui.set_min_size(egui::vec2(470.0, LIST_HEIGHT));
                    self.entries(ui);
                });
            });
            if let Some(message) = &self.message {
                ui.colored_label(Color32::from_rgb(240, 180, 80), message);
            }
            ui.separator();
            outcome.or_else(|| self.buttons(ui))
        });
        let escape = ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::Escape));
        modal.inner.or(escape.then_some(Outcome::Cancelled))
    }

    /// The path field and Up. Enter on a typed path chooses it (a trailing `/` only opens it).
    fn path_row(&mut self, ui: &mut egui::Ui) -> Option<Outcome> {
        let mut outcome = None;
        ui.horizontal(|ui| {
            let caption = ui.label(PATH_LABEL);
            let field = ui
                .add(egui::TextEdit::singleline(&mut self.path_text).desired_width(480.0))
                .labelled_by(caption.id);
            if self.focus_path {
                field.request_focus();
                self.focus_path = !field.has_focus();
            }
            if field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
                outcome = self.typed_path();
            }
            let parent = self.folder().and_then(Path::parent).map(Path::to_path_buf);
            if ui
                .add_enabled(parent.is_some(), egui::Button::new("Up"))
                .clicked()
                && let Some(parent) = parent
            {
                self.look(parent, Intent::Show);
            }
            if self.is_busy() {
                ui.spinner();
            }
        });
        outcome
    }

    fn typed_path(&mut self) -> Option<Outcome> {
        let text = self.path_text.trim();
        if text.is_empty() {
            return None;
        }
        let path = expand_home(text);
        let only_open = text.ends_with('/');
        let intent = if only_open {
            Intent::Show
        } else {
            Intent::Choose
        };
        self.look(path, intent);
        None
    }

    fn places_column(&mut self, ui: &mut egui::Ui) {
        let mut go = None;
        egui::ScrollArea::vertical()
            .id_salt("places")
            .show(ui, |ui| {
                ui.strong("Places");
                for (name, dir) in &self.places {
                    if ui
                        .button(name)
                        .on_hover_text(dir.display().to_string())
                        .clicked()
                    {
                        go = Some(dir.clone());
                    }
                }
                if ui.button("Computer (/)").clicked() {
                    go = Some(PathBuf::from("/"));
                }
            });
        if let Some(dir) = go {
            self.look(dir, Intent::Show);
        }
    }

    /// The folder's entries: a click on a folder opens it, on a file picks it.
    fn entries(&mut self, ui: &mut egui::Ui) {
        let Some(listing) = &self.listing else {
            ui.label("Reading…");
            return;
        };
        let mut open = None;
        let mut picked = None;
        egui::ScrollArea::vertical()
            .max_height(LIST_HEIGHT)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if listing.entries.is_empty() {
                    ui.weak("(empty folder)");
                }
                for entry in &listing.entries {
                    if entry.is_dir {
                        if ui
                            .selectable_label(false, format!("{}/", entry.name))
                            .clicked()
                        {
                            open = Some(listing.folder.join(&entry.name));
                        }
                    } else {
                        let selected = self.mode != Mode::Folder && self.name == entry.name;
                        let text = egui::RichText::new(&entry.name);
                        let text = if self.mode == Mode::Folder {
                            text.weak()
                        } else {
                            text
                        };
                        if ui.selectable_label(selected, text).clicked() {
                            picked = Some(entry.name.clone());
                        }
                    }
                }
                if listing.truncated {
                    ui.weak(format!("(only the first {} shown)", listing::MAX_ENTRIES));
                }
            });
        if let Some(dir) = open {
            self.look(dir, Intent::Show);
        }
        if let Some(name) = picked.filter(|_| self.mode != Mode::Folder) {
            self.name = name;
        }
    }

    /// The file name (Save), the answer button and Cancel.
    fn buttons(&mut self, ui: &mut egui::Ui) -> Option<Outcome> {
        let folder = self.folder()?.to_path_buf();
        if self.mode == Mode::Save {
            ui.horizontal(|ui| {
                let caption = ui.label(NAME_LABEL);
                ui.add(egui::TextEdit::singleline(&mut self.name).desired_width(400.0))
                    .labelled_by(caption.id);
            });
        }
        if let Some(existing) = self.confirm_replace.clone() {
            return self.confirm_row(ui, existing);
        }
        let mut outcome = None;
        ui.horizontal(|ui| {
            let ready = !self.is_busy();
            match self.mode {
                Mode::Folder => {
                    if ui
                        .add_enabled(ready, egui::Button::new("Open this folder"))
                        .clicked()
                    {
                        outcome = Some(Outcome::Chosen(folder.clone()));
                    }
                }
                Mode::File => {
                    let can = ready && !self.name.is_empty();
                    if ui.add_enabled(can, egui::Button::new("Open")).clicked() {
                        outcome = Some(Outcome::Chosen(folder.join(&self.name)));
                    }
                }
                Mode::Save => {
                    let name = self.name.trim().to_string();
                    let can = ready && valid_name(&name);
                    if ui.add_enabled(can, egui::Button::new("Save")).clicked() {
                        outcome = self.save_to(&folder, &name);
                    }
                }
            }
            if ui.button("Cancel").clicked() {
                outcome = Some(Outcome::Cancelled);
            }
        });
        outcome
    }

    /// Save mode: the target, or a question first when it would replace something listed.
    fn save_to(&mut self, folder: &Path, name: &str) -> Option<Outcome> {
        let target = folder.join(name);
        let exists = self
            .listing
            .as_ref()
            .is_some_and(|l| l.entries.iter().any(|e| e.name == name));
        if exists {
            self.confirm_replace = Some(target);
            None
        } else {
            Some(Outcome::Chosen(target))
        }
    }

    fn confirm_row(&mut self, ui: &mut egui::Ui, existing: PathBuf) -> Option<Outcome> {
        let mut outcome = None;
        ui.colored_label(
            Color32::from_rgb(240, 180, 80),
            format!("{} already exists. Replace it?", existing.display()),
        );
        ui.horizontal(|ui| {
            if ui.button("Replace").clicked() {
                outcome = Some(Outcome::Chosen(existing.clone()));
            }
            if ui.button("Keep it").clicked() {
                self.confirm_replace = None;
            }
        });
        outcome
    }
}

/// A name a file can have in one folder: not empty, no `/`, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The user's home folder, if the platform says.
pub fn home_dir() -> Option<PathBuf> {
    directories::UserDirs::new().map(|u| u.home_dir().to_path_buf())
}

/// A typed `~` or `~/…` is the home folder, as in a shell.
fn expand_home(text: &str) -> PathBuf {
    match text.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match home_dir() {
            Some(home) => home.join(rest.trim_start_matches('/')),
            None => PathBuf::from(text),
        },
        _ => PathBuf::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_home() {
        assert!(valid_name("liver-seg.dcm"));
        for bad in ["", ".", "..", "a/b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(expand_home("/tmp/x"), PathBuf::from("/tmp/x"));
        assert_eq!(expand_home("~user"), PathBuf::from("~user"));
        if let Some(home) = home_dir() {
            assert_eq!(expand_home("~/scans"), home.join("scans"));
            assert_eq!(expand_home("~"), home);
        }
    }
}
