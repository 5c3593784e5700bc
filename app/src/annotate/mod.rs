//! The segmentation document: segments, their label map on the study grid, undo/redo.

pub mod brush;
mod document;
mod interchange;

pub use document::{Document, Segment};
