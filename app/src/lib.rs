//! Lumen application library: study I/O, annotation, export, jobs and UI.

pub mod annotate;
pub mod cli;
pub mod eval;
pub mod export;
pub mod jobs;
pub mod models;
pub mod paths;
pub mod settings;
pub mod study;
pub mod ui;
