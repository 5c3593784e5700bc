//! Lumen application library: study I/O, annotation, export, jobs and UI.
