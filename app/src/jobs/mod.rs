//! Background workers. The UI thread sends requests and polls replies; it never runs the model,
//! decodes a series or writes to disk itself.

pub mod autosave;
pub mod embedding_cache;
pub mod requantizer;
pub mod segmenter;
pub mod study_loader;
pub mod writer;

/// Wakes the UI when a worker has something to show (egui's `request_repaint`), without the
/// workers depending on the GUI. Tests pass a no-op.
pub type Waker = std::sync::Arc<dyn Fn() + Send + Sync>;
