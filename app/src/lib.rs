//! Lumen, the application: the GUI (`ui`), its background workers (`jobs`), the command line
//! (`cli`), the user's settings, folders and installed models. The headless parts live in their
//! own crates: `lumen_study` (input), `lumen_annotation` (the document and its exports),
//! `lumen_datasets` (evaluation sets), `lumen_engine` (the model and quantization).

pub mod cli;
pub mod jobs;
pub mod models;
pub mod paths;
pub mod settings;
pub mod ui;
