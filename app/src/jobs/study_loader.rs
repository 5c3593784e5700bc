//! Opens a study on a named background thread: discover the series, load the largest volume.

use super::Waker;
use crate::export;
use crate::jobs::writer::autosave_path;
use crate::study::{self, LabelVolume, Volume};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

/// What opening a folder produced.
pub struct LoadedStudy {
    pub folder: PathBuf,
    pub volume: Volume,
    /// The annotation autosaved for this series in an earlier session, if any.
    pub autosaved: Option<(LabelVolume, Vec<export::Segment>)>,
    /// Files skipped or series left out, each with its reason, to show the user.
    pub notes: Vec<String>,
}

/// Starts loading `folder`; the reply arrives once on the returned channel.
pub fn open_folder(
    folder: &Path,
    autosaves: Option<PathBuf>,
    wake: Waker,
) -> Receiver<Result<LoadedStudy, String>> {
    let (reply, replies) = channel();
    let folder = folder.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("study-loader".into())
        .spawn(move || {
            let _ = reply.send(load(&folder, autosaves.as_deref()));
            wake();
        });
    if let Err(e) = spawned {
        let (reply, failed) = channel();
        let _ = reply.send(Err(format!("could not start the study loader: {e}")));
        return failed;
    }
    replies
}

fn load(folder: &Path, autosaves: Option<&Path>) -> Result<LoadedStudy, String> {
    let discovery = study::discover(folder).map_err(|e| e.to_string())?;
    let mut notes: Vec<String> = discovery.problems.iter().map(|p| p.to_string()).collect();
    let Some(series) = discovery.series.iter().max_by_key(|s| s.slice_count) else {
        return Err(format!(
            "no DICOM image series found in {}",
            folder.display()
        ));
    };
    if discovery.series.len() > 1 {
        notes.push(format!(
            "{} series found; opened the largest, {} ({} slices)",
            discovery.series.len(),
            series.description,
            series.slice_count
        ));
    }
    let volume = study::load_series(series).map_err(|e| e.to_string())?;
    notes.extend(volume.warnings.iter().cloned());
    let autosaved = autosaves
        .map(|folder| autosave_path(folder, &volume.study.series_instance_uid))
        .filter(|path| path.is_file())
        .and_then(|path| match export::reimport_nifti(&path, &volume) {
            Ok(restored) => Some(restored),
            Err(e) => {
                notes.push(format!(
                    "The autosaved annotation could not be restored: {e}"
                ));
                None
            }
        });
    Ok(LoadedStudy {
        folder: folder.to_path_buf(),
        volume,
        autosaved,
        notes,
    })
}
