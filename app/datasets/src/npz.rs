//! `.npz` archives: a zip of `.npy` members (stored or deflated).

use crate::npy::{self, NpyArray};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest member read (uncompressed), so a damaged or hostile archive cannot exhaust memory.
const MAX_MEMBER_BYTES: u64 = 4 << 30;
/// Most memory reserved before a member is read: its declared size may be a lie.
const PREALLOCATE_BYTES: u64 = 64 << 20;

/// A failure to read an `.npz`; the message names the file, the member and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct NpzError {
    pub path: PathBuf,
    pub reason: String,
}

/// An open `.npz` archive.
pub struct Npz {
    path: PathBuf,
    archive: zip::ZipArchive<File>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Self, NpzError> {
        let fail = |reason: String| NpzError {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let archive = zip::ZipArchive::new(file)
            .map_err(|e| fail(format!("not a readable .npz (zip) archive: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            archive,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the arrays (member names without `.npy`).
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names_raw()
            .map(|raw| {
                let name = String::from_utf8_lossy(raw);
                name.strip_suffix(".npy").unwrap_or(&name).to_string()
            })
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.archive
            .index_for_name(&format!("{name}.npy"))
            .is_some()
    }

    /// Reads and decodes the array `name`.
    pub fn array(&mut self, name: &str) -> Result<NpyArray, NpzError> {
        let member = format!("{name}.npy");
        let names = self.names();
        let fail = |reason: String| NpzError {
            path: self.path.clone(),
            reason,
        };
        let mut entry = match self.archive.by_name(&member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(fail(format!("has no array `{name}` (it has {names:?})")));
            }
            Err(e) => return Err(fail(format!("{member}: {e}"))),
        };
        if entry.size() > MAX_MEMBER_BYTES {
            return Err(fail(format!(
                "{member}: {} bytes is more than this reader accepts",
                entry.size()
            )));
        }
        // the size is what the archive declares; memory grows only with what really inflates
        let mut bytes = Vec::with_capacity(entry.size().min(PREALLOCATE_BYTES) as usize);
        (&mut entry)
            .take(MAX_MEMBER_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("{member}: cannot decompress: {e}")))?;
        drop(entry);
        npy::parse(&bytes).map_err(|e| fail(format!("{member}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::NpyData;
    use crate::npy::tests::npy;
    use std::io::Write;

    fn write_npz(path: &Path, members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
        let file = File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in members {
            zip.start_file(format!("{name}.npy"), options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn reads_members_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        write_npz(
            &path,
            &[("image", npy("|u1", "(1, 2)", &[3, 4]))],
            zip::CompressionMethod::Stored,
        );
        let mut npz = Npz::open(&path).unwrap();
        assert_eq!(npz.names(), vec!["image".to_string()]);
        assert!(npz.contains("image") && !npz.contains("label"));
        assert_eq!(npz.array("image").unwrap().data, NpyData::U8(vec![3, 4]));
        let missing = npz.array("label").unwrap_err().to_string();
        assert!(
            missing.contains("a.npz") && missing.contains("no array `label`"),
            "{missing}"
        );
    }

    #[test]
    fn damaged_archives_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npz");
        std::fs::write(&path, b"this is not a zip archive at all").unwrap();
        let e = Npz::open(&path).err().unwrap().to_string();
        assert!(e.contains("bad.npz") && e.contains("zip"), "{e}");
        let truncated = dir.path().join("short.npz");
        write_npz(
            &truncated,
            &[("label", npy("|u1", "(8, 8)", &[1; 5]))],
            zip::CompressionMethod::Stored,
        );
        let e = Npz::open(&truncated)
            .unwrap()
            .array("label")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("short.npz") && e.contains("label.npy") && e.contains("truncated"),
            "{e}"
        );
    }
}
