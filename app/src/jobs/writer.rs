//! Writes exports and autosaves on a named background thread, so the UI never waits on a disk.

use super::Waker;
use lumen_annotation::export::{self, SegOptions};
use lumen_study::{LabelVolume, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DicomSeg,
    Nifti,
    Png,
    /// The segment statistics table.
    Csv,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::DicomSeg, Format::Nifti, Format::Png, Format::Csv];

    /// The format in words, as the Export buttons name it.
    pub fn describe(self) -> &'static str {
        match self {
            Format::DicomSeg => "DICOM SEG",
            Format::Nifti => "NIfTI",
            Format::Png => "PNG",
            Format::Csv => "Statistics CSV",
        }
    }
}

/// Everything a write needs, owned, so the thread shares nothing with the UI.
pub struct WriteJob {
    pub format: Format,
    pub volume: Arc<Volume>,
    pub labels: LabelVolume,
    pub segments: Vec<export::Segment>,
    /// The file (SEG, NIfTI) or folder (PNG) to write.
    pub target: PathBuf,
    /// Model name and precision, recorded in the SEG as the algorithm version.
    pub model: String,
}

/// The outcome of a write: the written path, or the reason it failed.
pub type WriteReply = Receiver<Result<PathBuf, String>>;

/// Starts the write; the written path or the reason it failed arrives once on the channel.
pub fn write(job: WriteJob, wake: Waker) -> WriteReply {
    write_after(None, job, wake)
}

/// As `write`, once the `earlier` write (of the same file) has finished, so an older version
/// never lands after a newer one.
pub fn write_after(earlier: Option<WriteReply>, job: WriteJob, wake: Waker) -> WriteReply {
    super::spawn_fallible("writer", wake, move || {
        if let Some(earlier) = earlier {
            let _ = earlier.recv();
        }
        run(&job).map(|()| job.target.clone())
    })
}

fn run(job: &WriteJob) -> Result<(), String> {
    if let Some(folder) = job.target.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    match job.format {
        Format::DicomSeg => {
            let options = SegOptions {
                algorithm_version: job.model.clone(),
                ..SegOptions::default()
            };
            export::write_seg(
                &job.target,
                &job.volume,
                &job.labels,
                &job.segments,
                &options,
            )
            .map(|_| ())
        }
        Format::Nifti => export::write_nifti_labels(&job.target, &job.labels, &job.segments),
        Format::Png => export::write_png_masks(&job.target, &job.labels, &job.segments).map(|_| ()),
        Format::Csv => {
            export::write_statistics_csv(&job.target, &job.volume, &job.labels, &job.segments)
        }
    }
    .map_err(|e| e.to_string())
}

/// Where exports go: `Documents/Lumen`, else the home folder's `Lumen`.
pub fn export_folder() -> PathBuf {
    let base = directories::UserDirs::new()
        .and_then(|u| {
            u.document_dir()
                .map(Path::to_path_buf)
                .or_else(|| Some(u.home_dir().to_path_buf()))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("Lumen")
}

/// A file in `folder` for an export of `volume` in `format`, unique by time.
pub fn export_target(folder: &Path, volume: &Volume, format: Format) -> PathBuf {
    folder.join(export_name(volume, format))
}

/// The name an export of `volume` in `format` gets: its series, the time, the kind.
pub fn export_name(volume: &Volume, format: Format) -> String {
    let name: String = volume
        .series_description
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = if name.trim_matches('_').is_empty() {
        "study".to_string()
    } else {
        name
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match format {
        Format::DicomSeg => format!("{name}-{stamp}-seg.dcm"),
        Format::Nifti => format!("{name}-{stamp}-labels.nii.gz"),
        Format::Png => format!("{name}-{stamp}-png"),
        Format::Csv => format!("{name}-{stamp}-statistics.csv"),
    }
}
