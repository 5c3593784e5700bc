//! A model bundle on disk: a folder with `model.toml`, `encoder.onnx` and `decoder.onnx` (and
//! perhaps a click decoder).

use super::error::ModelError;
use super::manifest::{FileEntry, Manifest};
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
    /// The decoder for prompts with clicks, when the bundle has one (`files.click_decoder`).
    pub click_decoder_path: Option<PathBuf>,
}

impl ModelBundle {
    /// Reads and verifies the bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let manifest = read_manifest(dir)?;
        let encoder_path = verified_file(dir, &manifest.files.encoder)?;
        let decoder_path = verified_file(dir, &manifest.files.decoder)?;
        let click_decoder_path = match &manifest.files.click_decoder {
            Some(entry) => Some(verified_file(dir, entry)?),
            None => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            encoder_path,
            decoder_path,
            click_decoder_path,
        })
    }

    /// Total size of the ONNX files in bytes.
    pub fn size_bytes(&self) -> u64 {
        [Some(&self.encoder_path), Some(&self.decoder_path)]
            .into_iter()
            .chain([self.click_decoder_path.as_ref()])
            .flatten()
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
        if let Some(click) = &files.click_decoder {
            digest.update(click.sha256.as_bytes());
        }
        hex::encode(&digest.finalize()[..8])
    }

    /// A short identity of everything that decides the embeddings: weights and every
    /// pre-processing field of the manifest ([`Manifest::embedding_id`]), for the caches of
    /// embeddings and synthetic images.
    pub fn embedding_id(&self) -> String {
        self.manifest.embedding_id()
    }
}

/// Parses `dir/model.toml` and checks every value the engine uses ([`Manifest::validate`]).
pub fn read_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    let path = dir.join(MANIFEST_FILE);
    regular_file(&path)?;
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::Io {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| ModelError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    manifest
        .validate()
        .map_err(|reason| ModelError::Manifest { path, reason })?;
    Ok(manifest)
}

/// Checks that `path` is a regular file (or a link to one): a folder, a FIFO or a device
/// under a model file's name is refused before anything reads it.
fn regular_file(path: &Path) -> Result<(), ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => ModelError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "it is a folder"
    } else {
        "it is a special file (FIFO, socket or device)"
    };
    Err(ModelError::NotAFile {
        path: path.to_path_buf(),
        what: what.into(),
    })
}

/// The file's path after checking that it is a regular file and its sha256 matches the manifest.
fn verified_file(dir: &Path, entry: &FileEntry) -> Result<PathBuf, ModelError> {
    let path = dir.join(&entry.path);
    regular_file(&path)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The starter model's manifest text.
    fn starter_manifest() -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/ct-starter");
        std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()
    }

    /// `read_manifest` of the starter manifest with `from` replaced by `to`: the error text.
    fn refused(from: &str, to: &str) -> String {
        let text = starter_manifest();
        assert!(text.contains(from), "{from}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), text.replacen(from, to, 1)).unwrap();
        let err = read_manifest(dir.path()).unwrap_err();
        assert!(matches!(err, ModelError::Manifest { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&dir.path().join(MANIFEST_FILE).display().to_string()),
            "names the manifest: {message}"
        );
        message
    }

    #[test]
    fn the_starter_manifest_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), starter_manifest()).unwrap();
        read_manifest(dir.path()).unwrap();
    }

    #[test]
    fn non_finite_or_non_positive_normalization_is_refused_naming_the_key() {
        let std = "std = [58.395, 57.12, 57.375]";
        let message = refused(std, "std = [58.395, nan, 57.375]");
        assert!(
            message.contains("normalize.std[1] must be a finite number > 0, found NaN"),
            "{message}"
        );
        let message = refused(std, "std = [58.395, 57.12, -inf]");
        assert!(
            message.contains("normalize.std[2] must be a finite number > 0, found -inf"),
            "{message}"
        );
        let message = refused(std, "std = [0.0, 57.12, 57.375]");
        assert!(message.contains("normalize.std[0]"), "{message}");
        let message = refused(
            "mean = [123.675, 116.28, 103.53]",
            "mean = [inf, 116.28, 103.53]",
        );
        assert!(
            message.contains("normalize.mean[0] must be a finite number, found inf"),
            "{message}"
        );
    }

    #[test]
    fn a_ct_window_needs_a_positive_finite_width_and_a_finite_centre() {
        for width in ["0.0", "-5.0", "nan", "inf"] {
            let message = refused("width = 475.0", &format!("width = {width}"));
            assert!(
                message.contains("intensity.ct.width must be a finite number > 0"),
                "{width}: {message}"
            );
        }
        let message = refused("center = 115.0", "center = nan");
        assert!(
            message.contains("intensity.ct.center must be a finite number, found NaN"),
            "{message}"
        );
    }

    #[test]
    fn mr_percentiles_must_be_ordered_percentages() {
        let message = refused("high = 99.5", "high = 0.5");
        assert!(
            message.contains("intensity.mr.low must be below intensity.mr.high"),
            "{message}"
        );
        let message = refused("high = 99.5", "high = 150.0");
        assert!(
            message.contains("intensity.mr.high must be a percentage from 0 to 100, found 150"),
            "{message}"
        );
        let message = refused("low = 0.5", "low = nan");
        assert!(message.contains("intensity.mr.low"), "{message}");
    }

    #[test]
    fn format_input_size_paths_and_checksums_are_checked() {
        let message = refused("format = 1", "format = 2");
        assert!(message.contains("format 2 is not supported"), "{message}");
        for size in ["0", "100000"] {
            let message = refused("input_size = 256", &format!("input_size = {size}"));
            assert!(
                message.contains(&format!("input_size must be 1–4096 pixels, found {size}")),
                "{message}"
            );
        }
        let message = refused("path = \"encoder.onnx\"", "path = \"../../etc/passwd\"");
        assert!(
            message.contains("files.encoder.path must be a file name inside the bundle folder"),
            "{message}"
        );
        let message = refused("path = \"decoder.onnx\"", "path = \"/tmp/decoder.onnx\"");
        assert!(message.contains("files.decoder.path"), "{message}");
        let message = refused(
            "sha256 = \"62ff7db2566d14d36e222b5fe3f916bf81223ecd2bbd9ac9d7618706069b6f78\"",
            "sha256 = \"not-a-checksum\"",
        );
        assert!(
            message
                .contains("files.encoder.sha256 must be 64 hex digits, found \"not-a-checksum\""),
            "{message}"
        );
    }

    #[test]
    fn a_folder_under_a_model_file_name_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), starter_manifest()).unwrap();
        std::fs::create_dir(dir.path().join("encoder.onnx")).unwrap();
        let err = ModelBundle::open(dir.path()).unwrap_err();
        assert!(matches!(err, ModelError::NotAFile { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("encoder.onnx is not a regular file: it is a folder"),
            "{message}"
        );

        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join(MANIFEST_FILE)).unwrap();
        let err = read_manifest(folder.path()).unwrap_err();
        assert!(
            err.to_string().contains("model.toml is not a regular file"),
            "{err}"
        );
    }
}
