//! A model bundle on disk: a folder with `model.toml`, `encoder.onnx` and `decoder.onnx`.

use super::error::ModelError;
use super::manifest::{FileEntry, MANIFEST_FORMAT, Manifest};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The manifest file's name inside a bundle folder.
pub const MANIFEST_FILE: &str = "model.toml";

/// A bundle whose manifest parsed and whose files exist and match their checksums.
#[derive(Debug, Clone)]
pub struct ModelBundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub encoder_path: PathBuf,
    pub decoder_path: PathBuf,
}

impl ModelBundle {
    /// Reads and verifies the bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let manifest = read_manifest(dir)?;
        let encoder_path = verified_file(dir, &manifest.files.encoder)?;
        let decoder_path = verified_file(dir, &manifest.files.decoder)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            encoder_path,
            decoder_path,
        })
    }

    /// Total size of the ONNX files in bytes.
    pub fn size_bytes(&self) -> u64 {
        [&self.encoder_path, &self.decoder_path]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// A short identity of the weights (from the manifest's checksums), for cache keys.
    pub fn weights_id(&self) -> String {
        let files = &self.manifest.files;
        let mut digest = Sha256::new();
        digest.update(files.encoder.sha256.as_bytes());
        digest.update(files.decoder.sha256.as_bytes());
        hex::encode(&digest.finalize()[..8])
    }
}

/// Parses `dir/model.toml`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::MissingFile { path: path.clone() },
        _ => ModelError::Io {
            path: path.clone(),
            reason: e.to_string(),
        },
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| ModelError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(ModelError::Manifest {
            path,
            reason: format!(
                "format {} is not supported (this Lumen reads format {MANIFEST_FORMAT})",
                manifest.format
            ),
        });
    }
    if manifest.input_size == 0 || manifest.normalize.std.iter().any(|s| *s <= 0.0) {
        return Err(ModelError::Manifest {
            path,
            reason: "input_size and every normalize.std must be positive".into(),
        });
    }
    Ok(manifest)
}

/// The file's path after checking that it exists and its sha256 matches the manifest.
fn verified_file(dir: &Path, entry: &FileEntry) -> Result<PathBuf, ModelError> {
    let path = dir.join(&entry.path);
    if !path.is_file() {
        return Err(ModelError::MissingFile { path });
    }
    let actual = sha256_file(&path)?;
    if !actual.eq_ignore_ascii_case(entry.sha256.trim()) {
        return Err(ModelError::Checksum {
            path,
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(path)
}

/// The hex sha256 of a file, read in blocks.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let io = |e: std::io::Error| ModelError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut digest = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block).map_err(io)?;
        if n == 0 {
            break;
        }
        digest.update(&block[..n]);
    }
    Ok(hex::encode(digest.finalize()))
}
