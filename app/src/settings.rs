//! The user's settings, kept as JSON in the config dir: recent studies (newest first), brush
//! radius, the Requantize dialog's choices, the export folder and where each study was last
//! saved as. Read once at start; the app saves a changed copy
//! on a named thread (temp file + rename) so the UI never waits for the disk.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many studies the recent list keeps.
pub const RECENT_LIMIT: usize = 8;
/// How many Save as… choices are remembered.
pub const SAVED_AS_LIMIT: usize = 32;

/// Where the user last saved a study's export in one format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAs {
    /// The folder the study was opened from.
    pub study: PathBuf,
    /// `Format::describe` of the export.
    pub format: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent_studies: Vec<PathBuf>,
    pub brush_radius: f32,
    pub requantize_weights: u32,
    /// None: float activations.
    pub requantize_activations: Option<u32>,
    pub requantize_preset: String,
    /// Where quick exports go; None: the default (`Documents/Lumen`).
    pub export_folder: Option<PathBuf>,
    /// The latest Save as… per study and format, newest first.
    pub saved_as: Vec<SavedAs>,
}

impl Default for Settings {
    fn default() -> Self {
        let requantize = crate::ui::model_panel::RequantizeSettings::default();
        Self {
            recent_studies: Vec::new(),
            brush_radius: 6.0,
            requantize_weights: requantize.weights,
            requantize_activations: requantize.activations,
            requantize_preset: requantize.preset.name().into(),
            export_folder: None,
            saved_as: Vec::new(),
        }
    }
}

/// The settings file.
pub fn settings_file() -> Option<PathBuf> {
    crate::paths::user_dirs().map(|d| d.config_dir().join("settings.json"))
}

/// The stored settings; defaults where there are none or the file cannot be read.
pub fn load(file: &Path) -> Settings {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// `list` with `folder` moved to the front, without duplicates, at most `RECENT_LIMIT` long.
pub fn remember(list: &[PathBuf], folder: &Path) -> Vec<PathBuf> {
    std::iter::once(folder.to_path_buf())
        .chain(list.iter().filter(|p| p.as_path() != folder).cloned())
        .take(RECENT_LIMIT)
        .collect()
}

/// `list` with `saved` in front, replacing the earlier choice for its study and format.
pub fn remember_saved_as(list: &[SavedAs], saved: SavedAs) -> Vec<SavedAs> {
    let same = |s: &SavedAs| s.study == saved.study && s.format == saved.format;
    let rest: Vec<SavedAs> = list.iter().filter(|s| !same(s)).cloned().collect();
    std::iter::once(saved)
        .chain(rest)
        .take(SAVED_AS_LIMIT)
        .collect()
}

/// Writes the settings atomically.
pub fn save(file: &Path, settings: &Settings) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(settings)?;
    lumen_annotation::export::write_atomic(file, |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    Ok(())
}

/// Saves on a background thread; a failure only costs the settings, so it is not reported.
pub fn save_in_background(file: PathBuf, settings: Settings) {
    let _ = crate::jobs::spawn_job("settings", std::sync::Arc::new(|| {}), move || {
        save(&file, &settings)
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recent_list_is_newest_first_without_duplicates_and_bounded() {
        let mut list = Vec::new();
        for i in 0..12 {
            list = remember(&list, Path::new(&format!("/studies/{i}")));
        }
        list = remember(&list, Path::new("/studies/9"));
        assert_eq!(list.len(), RECENT_LIMIT);
        assert_eq!(list[0], PathBuf::from("/studies/9"));
        assert_eq!(list[1], PathBuf::from("/studies/11"));
        assert_eq!(list.iter().filter(|p| p.ends_with("9")).count(), 1);
    }

    #[test]
    fn save_as_memory_keeps_one_choice_per_study_and_format() {
        let saved = |study: &str, format: &str, path: &str| SavedAs {
            study: study.into(),
            format: format.into(),
            path: path.into(),
        };
        let mut list = Vec::new();
        for i in 0..40 {
            list = remember_saved_as(&list, saved(&format!("/s{i}"), "PNG", "/x"));
        }
        assert_eq!(list.len(), SAVED_AS_LIMIT);
        list = remember_saved_as(&list, saved("/s39", "NIfTI", "/n1"));
        list = remember_saved_as(&list, saved("/s39", "NIfTI", "/n2"));
        assert_eq!(list[0], saved("/s39", "NIfTI", "/n2"));
        assert_eq!(
            list[1],
            saved("/s39", "PNG", "/x"),
            "the other format is kept"
        );
        assert_eq!(list.iter().filter(|s| s.format == "NIfTI").count(), 1);
    }

    #[test]
    fn round_trips_through_the_file_and_tolerates_garbage_and_missing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/settings.json");
        assert_eq!(load(&file), Settings::default());
        let settings = Settings {
            recent_studies: vec![PathBuf::from("/a"), PathBuf::from("/b c")],
            brush_radius: 12.0,
            requantize_weights: 4,
            requantize_activations: None,
            requantize_preset: "quick".into(),
            export_folder: Some(PathBuf::from("/media/usb/exports")),
            saved_as: vec![SavedAs {
                study: PathBuf::from("/a"),
                format: "NIfTI".into(),
                path: PathBuf::from("/media/usb/liver.nii.gz"),
            }],
        };
        save(&file, &settings).unwrap();
        assert_eq!(load(&file), settings);
        std::fs::write(&file, "not json").unwrap();
        assert_eq!(load(&file), Settings::default());
        // An older file without the newer keys keeps its values and takes defaults for the rest.
        std::fs::write(&file, r#"{"brush_radius": 3.0}"#).unwrap();
        let partial = load(&file);
        assert_eq!(partial.brush_radius, 3.0);
        assert_eq!(partial.requantize_weights, 8);
    }
}
