//! The desktop window.

pub mod app;
pub mod command;
pub mod desktop;
pub mod dialogs;
pub mod file_chooser;
pub mod histogram;
pub mod model_panel;
pub mod model_state;
pub mod shortcuts;
pub mod view3d;
pub mod viewport;

pub use app::{LumenApp, Tool};
use std::path::PathBuf;

/// Opens the main window on `model_dir` and, if given, `study_dir`; blocks until it is closed.
pub fn run_gui(model_dir: PathBuf, study_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 860.0])
            .with_title("Lumen"),
        ..Default::default()
    };
    eframe::run_native(
        "Lumen",
        options,
        Box::new(move |cc| {
            Ok(Box::new(LumenApp::new(
                &cc.egui_ctx,
                model_dir,
                study_dir.as_deref(),
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}
