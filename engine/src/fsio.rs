//! The one way Lumen writes a file or a folder that someone keeps: exports, autosaves, settings,
//! models and caches. A write either replaces the target whole or leaves it as it was:
//!
//! - the bytes go to a fresh temporary file beside the target (created exclusively, so two
//!   writers never share one), every write's error is checked, the buffer is flushed and the
//!   file is fsynced before it is renamed over the target, and the folder is fsynced after;
//! - a failure removes the temporary file and reports the OS's reason with the target's path;
//! - only regular files are replaced: a folder, a device node, a FIFO or a socket at the target
//!   is refused (as root, a rename would otherwise swap `/dev/full` for a file);
//! - a folder of files is written into a temporary folder that is renamed into place when
//!   complete, so a multi-file export is all or nothing.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a file or folder could not be written. The message names the target and the reason.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {}", path.display(), self.reason())]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl WriteError {
    fn new(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            source,
        }
    }

    fn refused(path: &Path, reason: &str) -> Self {
        Self::new(path, std::io::Error::other(reason.to_string()))
    }

    /// The OS error in words a user can act on (a full disk says so first).
    pub fn reason(&self) -> String {
        let e = &self.source;
        match e.kind() {
            std::io::ErrorKind::StorageFull => format!("the disk is full ({e})"),
            std::io::ErrorKind::PermissionDenied => format!("permission denied ({e})"),
            std::io::ErrorKind::ReadOnlyFilesystem => format!("the disk is read-only ({e})"),
            _ => e.to_string(),
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_file(path, |w| w.write_all(bytes))
}

/// Writes the file `path` atomically from what `fill` writes into a buffered writer.
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    write_file_at(path, |tmp| {
        let file = std::fs::OpenOptions::new().write(true).open(tmp)?;
        let mut writer = Latch {
            inner: BufWriter::new(file),
            failed: None,
        };
        fill(&mut writer)?;
        writer.flush()?;
        if let Some(e) = writer.failed {
            return Err(e);
        }
        writer
            .inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
    })
}

/// A writer that remembers its first error, so one swallowed by a library (a `BufWriter`
/// dropped inside an encoder, say) still fails the write.
struct Latch<W: Write> {
    inner: W,
    failed: Option<std::io::Error>,
}

impl<W: Write> Latch<W> {
    fn check(&mut self, result: std::io::Result<usize>) -> std::io::Result<usize> {
        result.inspect_err(|e| {
            if self.failed.is_none() {
                self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

impl<W: Write> Write for Latch<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        let written = self.inner.write(buf);
        self.check(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.inner.flush().map(|()| 0);
        self.check(flushed).map(|_| ())
    }
}

/// Writes the file `path` atomically through a writer that wants a path of its own (a library
/// that opens the file itself): `fill` gets an empty temporary file with the target's extension,
/// which is fsynced after `fill` returns. `fill` must report every write error it meets.
pub fn write_file_at(
    path: &Path,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let (target, folder) = checked_target(path)?;
    let tmp = temp_beside(&target, &folder);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| WriteError::new(path, e))?;
    let written = fill(&tmp)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &target))
        .and_then(|()| sync_folder(&folder));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::new(path, e)
    })
}

/// Writes the new folder `path` all or nothing: `fill` fills an empty temporary folder beside it,
/// whose files are then fsynced and which is renamed to `path`. `path` must not exist or be an
/// empty folder: a folder of the user's is never replaced. On failure nothing changes at `path`.
pub fn write_folder<E: From<WriteError>>(
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let (target, parent) = folder_target(path)?;
    let tmp = temp_beside(&target, &parent);
    std::fs::create_dir(&tmp).map_err(|e| WriteError::new(path, e))?;
    let outcome = fill(&tmp).and_then(|()| {
        sync_tree(&tmp)
            .and_then(|()| publish_folder(&tmp, &target, &parent))
            .map_err(|e| E::from(WriteError::new(path, e)))
    });
    if outcome.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    outcome
}

/// `name` with everything but ASCII letters, digits, '-' and '_' replaced by '_', for file names.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether `path` could be written (a regular file or nothing there, in an existing folder),
/// so a long job can refuse its target before it starts rather than after.
pub fn check_target(path: &Path) -> Result<(), WriteError> {
    checked_target(path).map(|_| ())
}

/// The real file to replace (a symlink's target, so the link survives) and its folder, after
/// refusing what must not be replaced.
fn checked_target(path: &Path) -> Result<(PathBuf, PathBuf), WriteError> {
    let name_ok = path
        .file_name()
        .is_some_and(|n| n != "." && n != ".." && !n.is_empty());
    if !name_ok {
        return Err(WriteError::refused(path, "the path names no file"));
    }
    let target = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            std::fs::canonicalize(path).map_err(|e| WriteError::new(path, e))?
        }
        Ok(meta) if meta.is_dir() => return Err(WriteError::refused(path, "it is a folder")),
        Ok(_) => {
            return Err(WriteError::refused(
                path,
                "it is not a regular file (a device, FIFO or socket); Lumen only replaces regular files",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(WriteError::new(path, e)),
    };
    let folder = existing_parent(&target)
        .ok_or_else(|| WriteError::refused(path, "its folder does not exist"))?;
    Ok((target, folder))
}

/// The folder to write and its parent; an existing non-folder there is refused.
fn folder_target(path: &Path) -> Result<(PathBuf, PathBuf), WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut entries = std::fs::read_dir(path).map_err(|e| WriteError::new(path, e))?;
            if entries.next().is_some() {
                return Err(WriteError::refused(
                    path,
                    "the folder already exists and is not empty; choose a new folder",
                ));
            }
        }
        Ok(_) => {
            return Err(WriteError::refused(
                path,
                "something that is not a folder is there",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(WriteError::new(path, e)),
    }
    if path.file_name().is_none() {
        return Err(WriteError::refused(path, "the path names no folder"));
    }
    let parent = existing_parent(path)
        .ok_or_else(|| WriteError::refused(path, "its parent folder does not exist"))?;
    Ok((path.to_path_buf(), parent))
}

fn existing_parent(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.is_dir().then_some(parent)
}

/// A name beside `target` that no other writer uses: hidden, with this process's id and a
/// counter, keeping the target's extension(s) for writers that derive formats from it.
fn temp_beside(target: &Path, folder: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    let suffix = if lower.ends_with(".nii.gz") {
        ".nii.gz".to_string()
    } else {
        target
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    folder.join(format!(
        ".lumen-tmp-{}-{}-{nanos:08x}{suffix}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ))
}

/// Makes a rename in `folder` durable.
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
}

/// Fsyncs every file and folder under `dir`, so its rename publishes complete contents.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_folder(dir)
}

/// Renames the complete `tmp` folder to `target` (an empty folder there gives way).
fn publish_folder(tmp: &Path, target: &Path, parent: &Path) -> std::io::Result<()> {
    if target.is_dir() {
        std::fs::remove_dir(target)?;
    }
    std::fs::rename(tmp, target)?;
    sync_folder(parent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.png");
        write_bytes(&path, b"first").unwrap();
        let error = write_file(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        })
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("mask.png") && message.contains("the disk is full"),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(entries(dir.path()), ["mask.png"]);
        write_bytes(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
    }

    #[test]
    fn an_error_a_library_swallowed_is_remembered() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut latch = Latch {
            inner: Full,
            failed: None,
        };
        // a library's inner buffer dropping the error of its last write
        let _ = latch.write_all(b"pixel data");
        assert!(latch.flush().is_ok());
        let kind = latch.failed.as_ref().map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::StorageFull));
        assert!(
            latch.write(b"more").is_err(),
            "a failed writer takes no more bytes"
        );
    }

    #[test]
    fn special_files_and_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_bytes(dir.path(), b"x").unwrap_err().to_string();
        assert!(error.contains("it is a folder"), "{error}");
        let error = write_bytes(Path::new("/dev/null"), b"x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a regular file"), "{error}");
        use std::os::unix::fs::FileTypeExt;
        assert!(
            Path::new("/dev/null")
                .metadata()
                .unwrap()
                .file_type()
                .is_char_device()
        );
        let missing = dir.path().join("no-such-folder").join("a.nii");
        let error = write_bytes(&missing, b"x").unwrap_err().to_string();
        assert!(error.contains("its folder does not exist"), "{error}");
        assert!(check_target(Path::new("/dev/null")).is_err());
        assert!(check_target(&missing).is_err());
        assert!(check_target(&dir.path().join("new.png")).is_ok());
    }

    #[test]
    fn a_symlinked_target_is_written_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_bytes(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_folder_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("png");
        let failed: Result<(), WriteError> = write_folder(&target, |tmp| {
            write_bytes(&tmp.join("a.png"), b"a")?;
            Err(WriteError::refused(&tmp.join("b.png"), "disk full"))
        });
        assert!(failed.is_err());
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
        std::fs::create_dir(&target).unwrap();
        write_folder::<WriteError>(&target, |tmp| write_bytes(&tmp.join("a.png"), b"a")).unwrap();
        assert_eq!(entries(&target), ["a.png"]);
        let refused: Result<(), WriteError> =
            write_folder(&target, |tmp| write_bytes(&tmp.join("b.png"), b"b"));
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("not empty"), "{message}");
        assert_eq!(entries(&target), ["a.png"]);
        assert_eq!(entries(dir.path()), ["png"]);
    }
}
