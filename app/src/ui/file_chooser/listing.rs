//! What the in-app file chooser shows, read off the disk on a background thread: the entries of
//! a folder and the places to start from (home, removable media). A folder on a slow share or a
//! dead mount then stalls the listing, never the window.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

/// The most entries one listing keeps; a folder of many thousand slices still lists quickly.
pub const MAX_ENTRIES: usize = 5000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
}

/// A folder's entries, folders first, then by name (ignoring case); hidden ones left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub folder: PathBuf,
    pub entries: Vec<Entry>,
    /// Whether entries beyond `MAX_ENTRIES` were left out.
    pub truncated: bool,
}

/// What a path the user typed or clicked turned out to be.
#[derive(Debug)]
pub enum Looked {
    Folder(Listing),
    /// An existing file (not a folder).
    File(PathBuf),
    /// Nothing there, or it cannot be read: the reason in words, naming the path.
    Failed(String),
}

/// Reads `path` on its own thread; the answer comes on the receiver, then `wake` runs.
pub fn look_at(path: PathBuf, wake: crate::jobs::Waker) -> Receiver<Looked> {
    crate::jobs::spawn_job("file-chooser", wake, move || look(&path)).unwrap_or_else(|e| {
        let (tx, failed) = channel();
        let _ = tx.send(Looked::Failed(format!("The folder could not be read: {e}")));
        failed
    })
}

/// What `path` is: a folder's listing, a file, or why neither.
pub fn look(path: &Path) -> Looked {
    // the real path: `..` and links resolved, so Up goes where the user expects
    let path = &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => match list(path) {
            Ok(listing) => Looked::Folder(listing),
            Err(e) => Looked::Failed(format!("{}: {}", path.display(), words(&e))),
        },
        Ok(_) => Looked::File(path.to_path_buf()),
        Err(e) => Looked::Failed(format!("{}: {}", path.display(), words(&e))),
    }
}

/// An I/O error as a user reads it ("No such file or directory", not `Os { code: 2, … }`).
fn words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "there is no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn list(folder: &Path) -> std::io::Result<Listing> {
    let mut entries = Vec::new();
    let mut truncated = false;
    for entry in std::fs::read_dir(folder)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if entries.len() == MAX_ENTRIES {
            truncated = true;
            break;
        }
        // through links: a link to a folder is a folder to the user
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        entries.push(Entry { name, is_dir });
    }
    entries.sort_by_cached_key(|e| (!e.is_dir, e.name.to_lowercase()));
    Ok(Listing {
        folder: folder.to_path_buf(),
        entries,
        truncated,
    })
}

/// Mounted media: the mount points in the folders where desktops mount USB sticks and CDs
/// (`/media/USER/NAME`, `/run/media/USER/NAME`, `/media/NAME`, `/mnt/NAME`).
pub fn removable_media() -> Vec<PathBuf> {
    media_under(&[
        Path::new("/media"),
        Path::new("/run/media"),
        Path::new("/mnt"),
    ])
}

/// The mount points one or two levels below each of `roots`.
pub fn media_under(roots: &[&Path]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in roots {
        for child in subfolders(root) {
            if is_mount_point(&child) {
                found.push(child);
            } else {
                found.extend(subfolders(&child).into_iter().filter(|p| is_mount_point(p)));
            }
        }
    }
    found
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A folder on another file system than its parent's.
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Some(parent), Ok(meta)) = (dir.parent(), std::fs::metadata(dir)) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_folders_first_by_name_without_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.dcm", "A.dcm", ".hidden"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        for d in ["zeta", "Alpha", ".git"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink(dir.path().join("zeta"), dir.path().join("link")).unwrap();
        let Looked::Folder(listing) = look(dir.path()) else {
            panic!("a folder")
        };
        let names: Vec<(&str, bool)> = listing
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.is_dir))
            .collect();
        assert_eq!(
            names,
            [
                ("Alpha", true),
                ("link", true),
                ("zeta", true),
                ("A.dcm", false),
                ("b.dcm", false)
            ]
        );
        assert!(!listing.truncated);
    }

    #[test]
    fn a_file_is_a_file_and_a_missing_path_says_so_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slice.dcm");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(look(&file), Looked::File(f) if f == file));
        let missing = dir.path().join("gone");
        let Looked::Failed(message) = look(&missing) else {
            panic!("missing")
        };
        assert!(message.contains("gone"), "{message}");
        assert!(message.contains("no such file or folder"), "{message}");
    }

    #[test]
    fn media_are_mount_points_only() {
        // /proc is a mount point below /, /usr usually is not: one root with both as children
        // is modelled by / itself, whose children include /proc and /sys.
        let found = media_under(&[Path::new("/")]);
        assert!(found.iter().any(|p| p == Path::new("/proc")), "{found:?}");
        assert!(!found.iter().any(|p| p == Path::new("/etc")), "{found:?}");
        // an ordinary folder tree has none
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("user/stick")).unwrap();
        assert!(media_under(&[dir.path()]).is_empty());
    }
}
