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

/// Runs `work` once on a new thread named `name`; its result arrives on the returned receiver,
/// then `wake` runs so the UI takes it. For workers with requests and progress, see the
/// modules above.
pub fn spawn_job<T: Send + 'static>(
    name: &str,
    wake: Waker,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::sync::mpsc::Receiver<T>> {
    let (result, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = result.send(work());
            wake();
        })?;
    Ok(receiver)
}
