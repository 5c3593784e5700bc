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

/// As [`spawn_job`], for work that answers `Ok` or `Err`: a thread that cannot start arrives on
/// the receiver as its `Err`, so the caller has one place to look.
pub fn spawn_fallible<T: Send + 'static>(
    name: &str,
    wake: Waker,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> std::sync::mpsc::Receiver<Result<T, String>> {
    spawn_job(name, wake, work).unwrap_or_else(|e| {
        let (reply, failed) = std::sync::mpsc::channel();
        let _ = reply.send(Err(format!("could not start the {name} thread: {e}")));
        failed
    })
}
