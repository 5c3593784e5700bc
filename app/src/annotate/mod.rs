//! The segmentation document: segments, their label map on the study grid, undo/redo.

mod document;
mod interchange;

pub use document::{Document, Segment};
