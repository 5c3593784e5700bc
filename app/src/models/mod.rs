//! The model catalogue: bundled models and the user's models folder (imported and requantized
//! bundles), read from their manifests; importing a bundle folder into the user's folder.

use lumen_engine::model::{ModelBundle, read_manifest};
use std::path::{Path, PathBuf};

/// Where a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Bundled,
    User,
}

/// One model in the catalogue (manifest read; checksums are verified when it is opened).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub dir: PathBuf,
    pub name: String,
    /// "fp32", or "W4A8" etc. for quantized bundles.
    pub precision: String,
    pub size_bytes: u64,
    pub origin: Origin,
    /// What its model card measured, in a line ("box Dice BTCV 0.866 · …"); empty if nothing.
    pub measured: String,
    pub encoder_sha256: String,
    /// For a quantized bundle, the encoder of the FP32 bundle it was made from.
    pub base_encoder_sha256: Option<String>,
}

/// The `[accuracy]` box Dice keys shown in the catalogue, with their labels.
const MEASURED_DICE: [(&str, &str); 3] = [
    ("btcv_mean_dice", "BTCV"),
    ("chaos_liver_dice", "CHAOS CT liver"),
    ("chaos_mr_mean_dice", "CHAOS MR"),
];

/// The manifest's measured box Dice, one-click Dice and encoder time, as one line.
fn measured(accuracy: &std::collections::BTreeMap<String, toml::Value>) -> String {
    let number = |key: &str| {
        let value = accuracy.get(key)?;
        value
            .as_float()
            .or_else(|| value.as_integer().map(|i| i as f64))
    };
    let mut parts: Vec<String> = MEASURED_DICE
        .iter()
        .filter_map(|(key, label)| number(key).map(|d| format!("{label} {d:.3}")))
        .collect();
    if !parts.is_empty() {
        parts[0] = format!("box Dice {}", parts[0]);
    }
    if let Some(d) = number("chaos_liver_1click_dice") {
        parts.push(format!("one click CHAOS CT liver {d:.3}"));
    }
    if let Some(ms) = number("encoder_p50_ms_2_threads") {
        parts.push(format!("encoder {ms:.0} ms on 2 cores"));
    }
    parts.join(" · ")
}

/// The user's models folder (local data dir), where imports and requantized models go.
pub fn user_models_dir() -> PathBuf {
    crate::paths::user_dirs()
        .map(|d| d.data_local_dir().join("models"))
        .unwrap_or_else(|| std::env::temp_dir().join("lumen-models"))
}

/// Every bundle in the bundled assets and in `user_dir`, bundled first, each sorted by name.
/// Folders without a readable manifest are skipped.
pub fn list_models(bundled_dir: &Path, user_dir: &Path) -> Vec<ModelEntry> {
    let mut all = Vec::new();
    for (dir, origin) in [(bundled_dir, Origin::Bundled), (user_dir, Origin::User)] {
        let mut entries: Vec<ModelEntry> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| entry(&e.path(), origin))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        all.extend(entries);
    }
    all
}

fn entry(dir: &Path, origin: Origin) -> Option<ModelEntry> {
    let manifest = read_manifest(dir).ok()?;
    let precision = manifest.precision.label();
    let size_bytes = manifest
        .files
        .entries()
        .filter_map(|(_, f)| std::fs::metadata(dir.join(&f.path)).ok())
        .map(|m| m.len())
        .sum();
    Some(ModelEntry {
        dir: dir.to_path_buf(),
        name: manifest.name,
        precision,
        size_bytes,
        origin,
        measured: measured(&manifest.accuracy),
        encoder_sha256: manifest.files.encoder.sha256.clone(),
        base_encoder_sha256: manifest
            .precision
            .detail("base_encoder_sha256")
            .map(str::to_string),
    })
}

/// The bundle a requantization of `dir` starts from: `dir` itself when it is full precision,
/// else the FP32 bundle in `catalogue` it was quantized from (quantizing a quantized graph
/// again would compound the error, and only the FP32 bundle ships the synthetic set).
pub fn requantization_source(dir: &Path, catalogue: &[ModelEntry]) -> anyhow::Result<PathBuf> {
    let manifest = read_manifest(dir)?;
    let precision = &manifest.precision;
    if !precision.is_quantized() {
        return Ok(dir.to_path_buf());
    }
    let base_sha = precision.detail("base_encoder_sha256");
    let base_name = precision.detail("base_model").unwrap_or("an unnamed model");
    catalogue
        .iter()
        .find(|e| e.base_encoder_sha256.is_none() && Some(e.encoder_sha256.as_str()) == base_sha)
        .map(|e| e.dir.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} is a quantized copy ({}) of '{base_name}', whose full-precision bundle is \
                 neither bundled nor in your models folder; import it to requantize",
                dir.display(),
                precision.label()
            )
        })
}

/// Copies the bundle in `source` into `user_dir` after verifying it (manifest and checksums),
/// under a fresh folder name; written to a temporary folder and renamed, so a failed import
/// leaves nothing. Returns the new folder.
pub fn import_model(source: &Path, user_dir: &Path) -> anyhow::Result<PathBuf> {
    let bundle = ModelBundle::open(source)?;
    std::fs::create_dir_all(user_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", user_dir.display()))?;
    let target = free_name(user_dir, &bundle.manifest.name);
    lumen_engine::fsio::write_folder(&target, |tmp| -> anyhow::Result<()> {
        let weights = bundle
            .manifest
            .files
            .entries()
            .map(|(_, f)| f.path.as_str());
        for file in std::iter::once(lumen_engine::model::MANIFEST_FILE).chain(weights) {
            std::fs::copy(source.join(file), tmp.join(file))
                .map_err(|e| anyhow::anyhow!("{}: {e}", source.join(file).display()))?;
        }
        // The model card is optional.
        let _ = std::fs::copy(source.join("MODEL_CARD.md"), tmp.join("MODEL_CARD.md"));
        Ok(())
    })?;
    Ok(target)
}

/// `dir/name`, or `dir/name-2`, `-3`… if taken.
pub fn free_name(dir: &Path, name: &str) -> PathBuf {
    let safe = lumen_engine::fsio::file_safe(name);
    let mut candidate = dir.join(&safe);
    let mut n = 2;
    while candidate.exists() {
        candidate = dir.join(format!("{safe}-{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn starter() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/models")
    }

    #[test]
    fn lists_the_bundled_model_and_imports_a_copy_under_a_free_name() {
        let user = tempfile::tempdir().unwrap();
        let before = list_models(&starter(), user.path());
        let bundled: Vec<_> = before
            .iter()
            .filter(|m| m.origin == Origin::Bundled)
            .collect();
        assert!(
            bundled
                .iter()
                .any(|m| m.name == "ct-starter" && m.precision == "fp32")
        );
        assert!(bundled.iter().all(|m| m.size_bytes > 1_000_000));
        let names: Vec<&str> = bundled.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"litemedsam"), "{names:?}");
        assert!(names.contains(&"litemedsam-w8a8"), "{names:?}");
        // the fast model shows its speed and its accuracy in the panel's line
        let fast = bundled
            .iter()
            .find(|m| m.name == "litemedsam-fast")
            .unwrap();
        assert!(
            fast.measured.starts_with("box Dice BTCV 0.835")
                && fast.measured.ends_with("encoder 41 ms on 2 cores"),
            "{}",
            fast.measured
        );
        let starter_line = &bundled
            .iter()
            .find(|m| m.name == "ct-starter")
            .unwrap()
            .measured;
        assert!(
            starter_line.starts_with("box Dice BTCV 0.866 · CHAOS CT liver 0.954"),
            "{starter_line}"
        );
        // LiteMedSAM's three files, its click decoder among them, are counted and copied
        let lite = bundled.iter().find(|m| m.name == "litemedsam").unwrap();
        assert!(lite.size_bytes > 60_000_000, "{}", lite.size_bytes);
        assert!(
            lite.measured.contains("one click CHAOS CT liver"),
            "{}",
            lite.measured
        );
        let copy = import_model(&lite.dir, user.path()).unwrap();
        let opened = ModelBundle::open(&copy).unwrap();
        assert!(opened.click_decoder_path.is_some_and(|p| p.is_file()));
        std::fs::remove_dir_all(copy).unwrap();

        let first = import_model(&starter().join("ct-starter"), user.path()).unwrap();
        let second = import_model(&starter().join("ct-starter"), user.path()).unwrap();
        assert_ne!(first, second, "a second import gets its own folder");
        let after = list_models(&starter(), user.path());
        assert_eq!(after.iter().filter(|m| m.origin == Origin::User).count(), 2);
        assert!(ModelBundle::open(&second).is_ok(), "the copy verifies");
    }

    #[test]
    fn the_default_w8a8_model_is_requantized_from_its_bundled_fp32_original() {
        let user = tempfile::tempdir().unwrap();
        let catalogue = list_models(&starter(), user.path());
        let fp = starter().join("litemedsam");
        let w8a8 = starter().join("litemedsam-w8a8");
        let entry = catalogue.iter().find(|e| e.dir == w8a8).unwrap();
        assert_eq!(entry.precision, "W8A8");
        assert_eq!(requantization_source(&w8a8, &catalogue).unwrap(), fp);
        assert_eq!(requantization_source(&fp, &catalogue).unwrap(), fp);

        let without_fp: Vec<_> = catalogue.into_iter().filter(|e| e.dir != fp).collect();
        let err = requantization_source(&w8a8, &without_fp).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("W8A8") && text.contains("'litemedsam'"),
            "{text}"
        );
    }

    #[test]
    fn importing_a_folder_that_is_not_a_bundle_names_it_and_leaves_nothing() {
        let user = tempfile::tempdir().unwrap();
        let not_a_model = tempfile::tempdir().unwrap();
        let err = import_model(not_a_model.path(), user.path()).unwrap_err();
        assert!(err.to_string().contains("model.toml"), "{err}");
        assert_eq!(std::fs::read_dir(user.path()).map_or(0, |d| d.count()), 0);
    }
}
