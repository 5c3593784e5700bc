//! What every test binary of the app shares.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// A fresh folder, one per test process, for Lumen's settings, caches and user data, so tests
/// never write into the user's own (`~/.cache/lumen`, …). The running tests get it through
/// `paths::set_home`, the `lumen` binaries they start through `LUMEN_HOME`. A folder outlives
/// its process (statics are never dropped); the next test process removes it.
pub fn isolated_home() -> &'static Path {
    static HOME: LazyLock<PathBuf> = LazyLock::new(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lumen-home");
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let running = Path::new("/proc").join(entry.file_name()).exists();
            if !running {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let home = root.join(std::process::id().to_string());
        // a folder left by an earlier process with the same id
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        assert!(lumen_app::paths::set_home(home.clone()));
        home
    });
    &HOME
}
