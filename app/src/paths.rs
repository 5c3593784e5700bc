//! Where Lumen finds its bundled assets and keeps its per-user files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundled assets folder: `LUMEN_ASSETS`, else `assets/` next to the executable (a portable
/// bundle), else the source tree's `assets/` (a `cargo run` from a clone).
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LUMEN_ASSETS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("assets")));
    match beside_exe {
        Some(dir) if dir.is_dir() => dir,
        // the app crate's parent is the repository root
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new(".."))
            .join("assets"),
    }
}

/// Lumen's per-user folders: settings (config), caches (embeddings, synthetic calibration sets)
/// and local data (user models, autosaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDirs {
    config: PathBuf,
    cache: PathBuf,
    data_local: PathBuf,
}

impl UserDirs {
    /// All three folders under one root: `config/`, `cache/`, `data/`.
    fn under(home: &Path) -> Self {
        Self {
            config: home.join("config"),
            cache: home.join("cache"),
            data_local: home.join("data"),
        }
    }

    /// Where the settings live.
    pub fn config_dir(&self) -> &Path {
        &self.config
    }

    /// Where the caches live (anything here can be deleted and is remade).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Where the user's models and autosaves live.
    pub fn data_local_dir(&self) -> &Path {
        &self.data_local
    }
}

/// The root set by [`set_home`], which outranks `LUMEN_HOME`.
static HOME: OnceLock<PathBuf> = OnceLock::new();

/// Keeps all of this process's per-user folders under `home`, as `LUMEN_HOME` does. For tests,
/// which run in threads and so cannot change the environment safely. The first call wins; a
/// later one with another folder changes nothing and returns false.
pub fn set_home(home: PathBuf) -> bool {
    HOME.get_or_init(|| home.clone()) == &home
}

/// Lumen's per-user folders: under `LUMEN_HOME` when it is set, else the platform's
/// (`~/.config/lumen`, `~/.cache/lumen`, `~/.local/share/lumen` on Linux); None without a home.
/// The ONNX Runtime library is not looked for here (see `lumen_engine::runtime::library`): it is
/// provisioned at build time into the platform cache dir, whatever `LUMEN_HOME` says at run time.
pub fn user_dirs() -> Option<UserDirs> {
    if let Some(home) = HOME.get() {
        return Some(UserDirs::under(home));
    }
    if let Some(home) = std::env::var_os("LUMEN_HOME").filter(|v| !v.is_empty()) {
        return Some(UserDirs::under(Path::new(&home)));
    }
    directories::ProjectDirs::from("org", "Lumen", "lumen").map(|d| UserDirs {
        config: d.config_dir().to_path_buf(),
        cache: d.cache_dir().to_path_buf(),
        data_local: d.data_local_dir().to_path_buf(),
    })
}

/// The per-user cache of synthetic calibration sets (requantization).
pub fn synth_cache_dir() -> PathBuf {
    user_dirs()
        .map(|d| d.cache_dir().join("synthetic"))
        .unwrap_or_else(|| std::env::temp_dir().join("lumen-synthetic"))
}

/// Where the bundled models are.
pub fn bundled_models_dir() -> PathBuf {
    assets_dir().join("models")
}

/// The default model bundle: LiteMedSAM quantized to W8A8 without patient data, within 0.35
/// Dice points of its FP32 bundle on BTCV, CHAOS CT and CHAOS MR (its model card). LiteMedSAM is
/// the starter model's equal on CT and far better on MR.
pub fn default_model_dir() -> PathBuf {
    bundled_models_dir().join("litemedsam-w8a8")
}

/// The bundled sample study (a 20-slice abdominal CT).
pub fn sample_study_dir() -> PathBuf {
    assets_dir().join("sample").join("totalsegmentator-ct")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn set_home_puts_config_cache_and_data_under_it_and_the_first_call_wins() {
        let home = std::env::temp_dir().join(format!("lumen-home-unit-{}", std::process::id()));
        assert!(set_home(home.clone()));
        assert!(set_home(home.clone()), "the same folder again is fine");
        assert!(!set_home(home.join("other")));
        let dirs = user_dirs().unwrap();
        assert_eq!(dirs.config_dir(), home.join("config"));
        assert_eq!(dirs.cache_dir(), home.join("cache"));
        assert_eq!(dirs.data_local_dir(), home.join("data"));
        assert_eq!(synth_cache_dir(), home.join("cache").join("synthetic"));
        assert_eq!(
            crate::settings::settings_file().unwrap(),
            home.join("config").join("settings.json")
        );
        assert_eq!(
            crate::models::user_models_dir(),
            home.join("data").join("models")
        );
    }
}
