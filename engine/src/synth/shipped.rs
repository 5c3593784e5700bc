//! A synthetic calibration set shipped inside a model bundle. Synthesis through a large encoder
//! takes hours on a clinic's CPU; the set depends only on the model, so it is made once where
//! there is time, shipped with the bundle (its hash in `model.toml`), and requantizing to
//! another bit width then only calibrates.

use super::{SyntheticSet, load_cached, set_hash};
use crate::model::{MANIFEST_FILE, ModelBundle, ShippedSynthetic};
use crate::quant::{QuantError, io_error};
use std::path::Path;

/// The folder of the bundle that holds shipped sets.
const SHIPPED_DIR: &str = "synthetic";

/// The bundle's shipped set, if its manifest names one; an error naming the folder when the
/// files are missing or do not hash to what the manifest says.
pub fn load_shipped(bundle: &ModelBundle) -> Result<Option<SyntheticSet>, QuantError> {
    let Some(shipped) = &bundle.manifest.synthetic else {
        return Ok(None);
    };
    let dir = bundle.dir.join(&shipped.path);
    let (images, labels) = load_cached(&dir, shipped.images)?;
    if images.len() != shipped.images {
        return Err(QuantError::Bundle(format!(
            "{}: the shipped synthetic set has {} of its {} images",
            dir.display(),
            images.len(),
            shipped.images
        )));
    }
    let hash = set_hash(&images);
    if hash != shipped.sha256.trim().to_ascii_lowercase() {
        return Err(QuantError::Bundle(format!(
            "{}: the shipped synthetic images do not match the sha256 in {MANIFEST_FILE} \
             (changed or damaged)",
            dir.display()
        )));
    }
    Ok(Some(SyntheticSet {
        images,
        labels,
        hash,
        dir,
    }))
}

/// Copies `set` (made with the configuration `key`) into `bundle_dir` and records it in the
/// bundle's `model.toml`, replacing a set shipped before. Returns the manifest entry.
pub fn ship(
    bundle_dir: &Path,
    set: &SyntheticSet,
    key: &str,
) -> Result<ShippedSynthetic, QuantError> {
    let relative = format!("{SHIPPED_DIR}/{key}");
    let target = bundle_dir.join(&relative);
    let parent = bundle_dir.join(SHIPPED_DIR);
    std::fs::create_dir_all(&parent).map_err(|e| io_error(&parent, e))?;
    crate::fsio::write_folder(&target, |tmp| {
        for (index, (image, label)) in set.images.iter().zip(&set.labels).enumerate() {
            super::save_png(&tmp.join(format!("image_{index:03}.png")), image)?;
            super::save_png(&tmp.join(format!("label_{index:03}.png")), label)?;
        }
        let config = set.dir.join("config.json");
        std::fs::copy(&config, tmp.join("config.json")).map_err(|e| io_error(&config, e))?;
        Ok::<(), QuantError>(())
    })?;
    let entry = ShippedSynthetic {
        path: relative,
        images: set.images.len(),
        sha256: set.hash.clone(),
    };
    let manifest = bundle_dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).map_err(|e| io_error(&manifest, e))?;
    let table = toml::to_string(&entry).map_err(|e| io_error(&manifest, e))?;
    let updated = format!(
        "{}\n[synthetic]\n{table}",
        without_table(&text, "synthetic").trim_end()
    );
    crate::graph::write_atomic(&manifest, updated.as_bytes())?;
    Ok(entry)
}

/// `text` (TOML) without the table `[name]`: its header and every line up to the next header.
fn without_table(text: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut kept = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == header;
        }
        if !inside {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_removed_with_its_lines_only() {
        let text = "a = 1\n[synthetic]\npath = \"x\"\nimages = 2\n[accuracy]\nb = 2\n";
        assert_eq!(
            without_table(text, "synthetic"),
            "a = 1\n[accuracy]\nb = 2\n"
        );
        assert_eq!(without_table("a = 1\n", "synthetic"), "a = 1\n");
    }
}
