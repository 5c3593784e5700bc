//! Showing a folder in the desktop's file manager, where the desktop has one (`xdg-open`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

/// The program that opens a folder in the file manager, if it is installed.
pub fn folder_opener() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("xdg-open"))
        .find(|candidate| candidate.is_file())
}

/// Opens `folder` with `opener` on its own thread (it may wait for the file manager); a
/// failure arrives on the receiver in words, success as `None`.
pub fn show_folder(
    opener: &Path,
    folder: &Path,
    wake: crate::jobs::Waker,
) -> std::io::Result<Receiver<Option<String>>> {
    let (opener, folder) = (opener.to_path_buf(), folder.to_path_buf());
    crate::jobs::spawn_job(
        "show-folder",
        wake,
        move || match std::process::Command::new(&opener).arg(&folder).status() {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!(
                "{} could not open {}: {status}",
                opener.display(),
                folder.display()
            )),
            Err(e) => Some(format!("{} could not start: {e}", opener.display())),
        },
    )
}
