//! Lumen application library: study I/O, annotation, export, jobs and UI.

pub mod cli;
pub mod paths;
pub mod ui;
pub mod study;
pub mod export;
