//! The requantizer: one named thread running `lumen_engine::requantize` with progress and
//! cancel, so the model panel can make a smaller model without blocking the UI.

use super::Waker;
use lumen_engine::quant::{Progress, QuantError, RequantizeOptions, RequantizeReport, requantize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};

/// What the thread reports.
pub enum Update {
    Progress(Progress),
    /// Finished: the report, or why not (None when cancelled).
    Done(Result<RequantizeReport, Option<String>>),
}

/// The UI's handle on a running requantization.
pub struct Requantizer {
    pub updates: Receiver<Update>,
    cancel: Arc<AtomicBool>,
}

impl Requantizer {
    /// Starts requantizing the bundle in `model_dir` into `out_dir`.
    pub fn start(
        model_dir: PathBuf,
        out_dir: PathBuf,
        options: RequantizeOptions,
        wake: Waker,
    ) -> std::io::Result<Self> {
        let (outbox, updates) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        std::thread::Builder::new()
            .name("requantizer".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                let mut report = |p: &Progress| {
                    // A few updates a second are plenty for a progress bar.
                    if last.elapsed().as_millis() >= 200 || p.done == p.total {
                        last = std::time::Instant::now();
                        let _ = outbox.send(Update::Progress(p.clone()));
                        wake();
                    }
                };
                let result = requantize(&model_dir, &out_dir, &options, &mut report, &flag)
                    .map_err(|e| match e {
                        QuantError::Cancelled => None,
                        other => Some(other.to_string()),
                    });
                let _ = outbox.send(Update::Done(result));
                wake();
            })?;
        Ok(Self { updates, cancel })
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
