//! Asking the user for a file or folder: the desktop's own dialog through its xdg-desktop-portal
//! where one answers, else Lumen's chooser. Without a portal the desktop dialog returns at once
//! with nothing (no window, no error), so an empty answer that comes faster than a person can
//! cancel means "no dialog appeared": Lumen's chooser opens instead, and stays the choice for
//! the rest of the session.

use super::file_chooser::{FileChooser, Mode, Outcome};
use crate::jobs::Waker;
use crate::jobs::writer::Format;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// An empty desktop answer faster than this had no dialog behind it (one that fails takes
/// about 20 ms; a person needs far longer to see a dialog and cancel it).
const NO_DIALOG_WITHIN: Duration = Duration::from_secs(1);

/// What the answer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A study folder to open.
    OpenFolder,
    /// A DICOM file whose series opens.
    OpenFile,
    /// A model bundle folder to import.
    ImportModel,
    /// The folder quick exports go to.
    ExportFolder,
    /// Where to write an export of this format.
    SaveAs(Format),
}

impl Purpose {
    fn title(self) -> String {
        match self {
            Self::OpenFolder => "Open a DICOM study folder".into(),
            Self::OpenFile => "Open a DICOM file (its series opens)".into(),
            Self::ImportModel => "Import a model bundle folder".into(),
            Self::ExportFolder => "Choose the folder exports go to".into(),
            Self::SaveAs(format) => format!("Save the {} as", format.describe()),
        }
    }

    fn mode(self) -> Mode {
        match self {
            Self::OpenFile => Mode::File,
            Self::SaveAs(_) => Mode::Save,
            _ => Mode::Folder,
        }
    }
}

/// A question to the user: what for, where to start, the suggested name (Save).
pub struct Question {
    pub purpose: Purpose,
    pub start: PathBuf,
    pub name: String,
    /// Places beside home and the media: recent studies, the sample.
    pub places: Vec<(String, PathBuf)>,
}

/// The desktop dialog running on its own thread (it blocks until answered).
struct DesktopDialog {
    question: Question,
    answer: Receiver<DesktopAnswer>,
}

/// What the desktop dialog returned, and how long it took (timed on its own thread, so a busy
/// UI thread does not make a failed dialog look like a cancelled one).
struct DesktopAnswer {
    picked: Option<PathBuf>,
    took: Duration,
}

pub struct Dialogs {
    /// Whether to try the desktop's dialog first (false once it failed to appear).
    use_desktop: bool,
    desktop: Option<DesktopDialog>,
    chooser: Option<(Purpose, FileChooser)>,
    wake: Waker,
}

/// What came of a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Chosen(Purpose, PathBuf),
    /// Something the user should be told (the desktop dialog did not appear).
    Note(String),
}

impl Dialogs {
    /// Dialogs that try the desktop's first when `use_desktop` and a portal could answer.
    pub fn new(use_desktop: bool, wake: Waker) -> Self {
        Self {
            use_desktop: use_desktop && portal_reachable(),
            desktop: None,
            chooser: None,
            wake,
        }
    }

    /// Whether a dialog is open (the app then takes no shortcuts).
    pub fn is_open(&self) -> bool {
        self.desktop.is_some() || self.chooser.is_some()
    }

    /// Asks `question`, unless a dialog is already open.
    pub fn ask(&mut self, question: Question) {
        if self.is_open() {
            return;
        }
        if self.use_desktop {
            match desktop_dialog(&question, self.wake.clone()) {
                Ok(answer) => {
                    self.desktop = Some(DesktopDialog { question, answer });
                    return;
                }
                Err(_) => self.use_desktop = false,
            }
        }
        self.open_chooser(question);
    }

    fn open_chooser(&mut self, q: Question) {
        let chooser = FileChooser::new(
            &q.purpose.title(),
            q.purpose.mode(),
            &q.start,
            &q.name,
            q.places,
            self.wake.clone(),
        );
        self.chooser = Some((q.purpose, chooser));
    }

    /// Takes the desktop's answer and shows Lumen's chooser; the answer once there is one.
    pub fn show(&mut self, ctx: &egui::Context) -> Option<Answer> {
        if let Some(desktop) = &self.desktop {
            let answer = match desktop.answer.try_recv() {
                Ok(answer) => Some(answer),
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                // the dialog's thread ended without an answer (it panicked)
                Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
            };
            let DesktopDialog { question, .. } = self.desktop.take()?;
            return match answer {
                Some(DesktopAnswer {
                    picked: Some(path), ..
                }) => Some(Answer::Chosen(question.purpose, path)),
                Some(DesktopAnswer { took, .. }) if took >= NO_DIALOG_WITHIN => None,
                _ => {
                    self.use_desktop = false;
                    self.open_chooser(question);
                    Some(Answer::Note(
                        "The desktop's file dialog did not open (no xdg-desktop-portal \
                         answered); this is Lumen's own"
                            .into(),
                    ))
                }
            };
        }
        let (purpose, chooser) = self.chooser.as_mut()?;
        let purpose = *purpose;
        let outcome = chooser.show(ctx)?;
        self.chooser = None;
        match outcome {
            Outcome::Chosen(path) => Some(Answer::Chosen(purpose, path)),
            Outcome::Cancelled => None,
        }
    }
}

/// Whether a desktop portal could answer at all: a session bus to ask it on. Without one (a
/// bare X session, a kiosk) the desktop dialog cannot appear. `LUMEN_FILE_DIALOG=lumen` always
/// uses Lumen's chooser.
fn portal_reachable() -> bool {
    if std::env::var("LUMEN_FILE_DIALOG").is_ok_and(|v| v == "lumen") {
        return false;
    }
    let bus_address = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty());
    let bus_socket =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| Path::new(&dir).join("bus").exists());
    bus_address || bus_socket
}

/// Starts the desktop dialog for `q` on its own thread.
fn desktop_dialog(q: &Question, wake: Waker) -> std::io::Result<Receiver<DesktopAnswer>> {
    let dialog = rfd::FileDialog::new()
        .set_title(q.purpose.title())
        .set_directory(&q.start);
    let (purpose, name) = (q.purpose, q.name.clone());
    crate::jobs::spawn_job("desktop-dialog", wake, move || {
        let asked = Instant::now();
        let picked = match purpose.mode() {
            Mode::Folder => dialog.pick_folder(),
            Mode::File => dialog.pick_file(),
            Mode::Save => dialog.set_file_name(name).save_file(),
        };
        DesktopAnswer {
            picked,
            took: asked.elapsed(),
        }
    })
}
