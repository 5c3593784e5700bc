//! What the user asks the app to do, by a key or a widget. Keys (`shortcuts`) and panels only
//! produce commands during a frame; `LumenApp::apply` carries them out in one place, so the study,
//! the document, the workers and the dialogs change there and nowhere else.

use super::app::Direction;
use super::dialogs::Purpose;
use crate::jobs::writer::Format;
use lumen_annotation::Segment;
use lumen_study::Window;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Ask for a study folder.
    OpenFolder,
    /// Ask for a DICOM file (its series opens).
    OpenFile,
    /// Open this folder (the sample study, a recent one).
    OpenStudy(PathBuf),
    /// Open series `n` of the series browser.
    OpenSeries(usize),
    /// Stop the study load in flight.
    CancelLoading,
    /// Show slice `z` of the acquisition.
    GoToSlice(usize),
    AcceptPreview,
    ClearPrompt,
    Undo,
    Redo,
    NextSlice,
    PreviousSlice,
    TenSlicesOn,
    TenSlicesBack,
    /// Zoom and pan back to the whole slice.
    FitView,
    Propagate(Direction),
    CancelPropagation,
    /// A new segment with this name, made the active one.
    AddSegment(String),
    /// Make this label the active segment.
    SelectSegment(u8),
    /// A segment's new colour, name, visibility or lock (found by its label).
    EditSegment(Segment),
    SetWindow(Window),
    /// Quick export to the export folder.
    Export(Format),
    /// Open a file dialog for this purpose.
    Ask(Purpose),
    /// Switch to the model bundle in this folder.
    UseModel(PathBuf),
    ToggleHelp,
    /// Save the annotation and quit.
    Quit,
}
