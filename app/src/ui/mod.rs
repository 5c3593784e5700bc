//! The desktop window. Until the full app lands this shows which model and ONNX Runtime are in use;
//! the model is opened on a background thread so the window never waits on it.

use std::sync::mpsc::{Receiver, channel};

struct StartupWindow {
    model_status: Receiver<String>,
    status: String,
}

impl eframe::App for StartupWindow {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if let Ok(status) = self.model_status.try_recv() {
            self.status = status;
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("Lumen");
            ui.label("Segment organs with SAM, offline, on this computer. Nothing leaves the machine.");
            ui.separator();
            ui.label(&self.status);
        });
    }
}

/// Opens the main window and blocks until it is closed.
pub fn run_gui() -> anyhow::Result<()> {
    let (sender, model_status) = channel();
    let model_dir = crate::paths::default_model_dir();
    let ctx_slot: std::sync::Arc<std::sync::OnceLock<egui::Context>> = Default::default();
    let ctx_for_worker = ctx_slot.clone();
    std::thread::Builder::new().name("model-loader".into()).spawn(move || {
        let status = match lumen_engine::model::SamModel::load(&model_dir, &Default::default()) {
            Ok(model) => {
                let m = &model.bundle().manifest;
                format!("Model ready: {} ({}, {}×{} input)", m.name, m.precision.kind, m.input_size, m.input_size)
            }
            Err(e) => format!("The model could not be opened: {e}"),
        };
        let _ = sender.send(status);
        if let Some(ctx) = ctx_for_worker.get() {
            ctx.request_repaint();
        }
    })?;
    let options = eframe::NativeOptions::default();
    eframe::run_native(
        "Lumen",
        options,
        Box::new(move |cc| {
            let _ = ctx_slot.set(cc.egui_ctx.clone());
            Ok(Box::new(StartupWindow { model_status, status: "Opening the model…".into() }))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}
