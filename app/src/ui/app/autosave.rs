//! Autosave of the open study: a write in the background after each change, and one before the window closes.

use super::{AUTOSAVE_AFTER, LumenApp, OpenStudy};
use crate::jobs::writer::{self, Format, WriteJob};
use std::path::PathBuf;
use std::sync::Arc;

/// Autosave state of the open study: its file, what was last written, and the write in flight.
pub(super) struct Autosave {
    pub(super) file: Option<PathBuf>,
    pub(super) saved_revision: u64,
    pub(super) last_attempt: Option<std::time::Instant>,
    pub(super) running: Option<(u64, writer::WriteReply)>,
}

impl LumenApp {
    /// Writes the document to its autosave file once it has changed, at most once per
    /// `AUTOSAVE_AFTER`; asks for a repaint to come back when a change is waiting for that.
    pub(super) fn poll_autosave(&mut self, ctx: &egui::Context) {
        let Some(study) = &mut self.study else { return };
        let autosave = &mut study.autosave;
        if let Some((revision, running)) = &autosave.running
            && let Ok(result) = running.try_recv()
        {
            match result {
                Ok(_) => autosave.saved_revision = *revision,
                Err(message) => self.notes = vec![format!("Autosave failed: {message}")],
            }
            autosave.running = None;
        }
        let revision = study.document.revision();
        if revision == autosave.saved_revision || autosave.running.is_some() {
            return;
        }
        let since = autosave.last_attempt.map(|t| t.elapsed());
        if let Some(since) = since.filter(|s| *s < AUTOSAVE_AFTER) {
            ctx.request_repaint_after(AUTOSAVE_AFTER - since);
            return;
        }
        if let Some(job) = autosave_job(study) {
            study.autosave.last_attempt = Some(std::time::Instant::now());
            study.autosave.running = Some((revision, writer::write(job, self.wake.clone())));
        }
    }

    /// Starts writing the open study's unsaved changes now, on the writer thread, after the
    /// write in flight (the study is about to be replaced, so nobody waits for the reply).
    pub(super) fn save_now_in_background(&mut self) {
        let Some(study) = &mut self.study else { return };
        if study.document.revision() != study.autosave.saved_revision
            && let Some(job) = autosave_job(study)
        {
            let earlier = study.autosave.running.take().map(|(_, reply)| reply);
            let _detached = writer::write_after(earlier, job, self.wake.clone());
        }
    }

    /// Writes the open study's unsaved changes and waits for them: the app is closing, and an
    /// accepted edit must not be lost. A write already in flight finishes first.
    pub(super) fn save_before_exit(&mut self) {
        let Some(study) = &mut self.study else { return };
        if let Some((revision, running)) = study.autosave.running.take()
            && let Ok(Ok(_)) = running.recv()
        {
            study.autosave.saved_revision = revision;
        }
        if study.document.revision() == study.autosave.saved_revision {
            return;
        }
        if let Some(job) = autosave_job(study) {
            let target = job.target.clone();
            match writer::write(job, Arc::new(|| {})).recv() {
                Ok(Ok(_)) => {}
                // the window is gone: the terminal is the last place to say it
                Ok(Err(message)) => crate::cli::note_stderr(format_args!(
                    "lumen: the annotation could not be saved on exit: {message}"
                )),
                Err(_) => crate::cli::note_stderr(format_args!(
                    "lumen: the annotation could not be saved on exit to {}",
                    target.display()
                )),
            }
        }
    }
}

/// The write of `study`'s document to its autosave file, if it has one.
pub(super) fn autosave_job(study: &OpenStudy) -> Option<WriteJob> {
    let target = study.autosave.file.clone()?;
    let (labels, segments) = study.document.to_export(&study.volume);
    Some(WriteJob {
        format: Format::Nifti,
        volume: study.volume.clone(),
        labels,
        segments,
        target,
        model: String::new(),
    })
}
