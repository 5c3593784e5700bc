//! The segmentation document and everything that reads or writes it: segments and their label
//! map on the study grid with undo/redo, the brush, propagation through the slices, and export
//! to (and re-import from) DICOM SEG, NIfTI and PNG, with the organ catalogue (names, SNOMED CT
//! codes, colours) they share.

pub mod brush;
pub mod cut;
mod document;
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod interchange;
pub mod organs;
pub mod propagate;
pub mod statistics;
pub mod surface;

pub use document::{Document, Segment};
