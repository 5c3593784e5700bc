//! What the user asks the app to do, by a key, a widget or the pointer on a view. Keys
//! (`shortcuts`), panels and views only produce commands during a frame; `LumenApp::apply` carries them out in one place, so the study,
//! the document, the workers and the dialogs change there and nowhere else.

use super::app::Direction;
use super::dialogs::Purpose;
use super::viewport::Gesture;
use crate::jobs::writer::Format;
use lumen_annotation::Segment;
use lumen_study::Window;
use lumen_study::reformat::Cut;
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
    /// A pointer gesture on the view of this cut, made with the current tool.
    Gesture(Cut, Gesture),
    /// Put the crosshair on voxel `[x, y, z]`; the acquisition plane follows to slice z.
    MoveCrosshair([usize; 3]),
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
