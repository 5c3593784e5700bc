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
/// failure arrives on the receiver in words.
pub fn show_folder(opener: &Path, folder: &Path, wake: crate::jobs::Waker) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (opener, folder) = (opener.to_path_buf(), folder.to_path_buf());
    let _ = std::thread::Builder::new()
        .name("show-folder".into())
        .spawn(move || {
            let failed = match std::process::Command::new(&opener).arg(&folder).status() {
                Ok(status) if status.success() => None,
                Ok(status) => Some(format!(
                    "{} could not open {}: {status}",
                    opener.display(),
                    folder.display()
                )),
                Err(e) => Some(format!("{} could not start: {e}", opener.display())),
            };
            if let Some(message) = failed {
                let _ = tx.send(message);
                wake();
            }
        });
    rx
}
