//! Recently opened studies, newest first, kept in the user's config dir as JSON. Reading is
//! done once at start; writes go to a named thread (temp file + rename) so the UI never waits.

use std::path::{Path, PathBuf};

/// How many studies the list keeps.
pub const RECENT_LIMIT: usize = 8;

/// The file the list lives in.
pub fn recent_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "Lumen", "lumen")
        .map(|d| d.config_dir().join("recent-studies.json"))
}

/// The stored list (empty when there is none or it cannot be read).
pub fn load(file: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| serde_json::from_str::<Vec<PathBuf>>(&text).ok())
        .unwrap_or_default()
}

/// `list` with `folder` moved to the front, without duplicates, at most `RECENT_LIMIT` long.
pub fn remember(list: &[PathBuf], folder: &Path) -> Vec<PathBuf> {
    std::iter::once(folder.to_path_buf())
        .chain(list.iter().filter(|p| p.as_path() != folder).cloned())
        .take(RECENT_LIMIT)
        .collect()
}

/// Writes the list atomically.
pub fn save(file: &Path, list: &[PathBuf]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(list).map_err(std::io::Error::other)?;
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

/// Saves on a background thread; a failure only costs the list, so it is not reported.
pub fn save_in_background(file: PathBuf, list: Vec<PathBuf>) {
    let _ = std::thread::Builder::new()
        .name("recent-studies".into())
        .spawn(move || save(&file, &list));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn newest_first_without_duplicates_and_bounded() {
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
    fn round_trips_through_the_file_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/recent.json");
        assert!(load(&file).is_empty());
        let list = vec![PathBuf::from("/a"), PathBuf::from("/b c")];
        save(&file, &list).unwrap();
        assert_eq!(load(&file), list);
        std::fs::write(&file, "not json").unwrap();
        assert!(load(&file).is_empty());
    }
}
