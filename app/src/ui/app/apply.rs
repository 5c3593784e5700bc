//! The one place a command changes the app: the study, the document (with its undo), the
//! workers and the dialogs.

use super::LumenApp;
use crate::ui::command::Command;
use egui::Vec2;

impl LumenApp {
    /// Carries out `commands`, in the order they were asked, and empties the list. The regions
    /// already drawn this frame showed the state before them, so egui is asked to draw the frame
    /// again (its second pass gets no input events: a click is not applied twice); a repaint
    /// covers the case where no second pass is left.
    pub(super) fn apply_all(&mut self, commands: &mut Vec<Command>, ctx: &egui::Context) {
        if commands.is_empty() {
            return;
        }
        for command in commands.drain(..) {
            self.apply(command, ctx);
        }
        ctx.request_discard("a command changed what this frame drew");
        ctx.request_repaint();
    }

    /// Carries out what a key or a widget asked for.
    fn apply(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::OpenFolder => self.pick_folder(),
            Command::OpenFile => self.pick_file(),
            Command::OpenStudy(folder) => self.open_folder(&folder),
            Command::OpenSeries(i) => self.open_series(i),
            Command::CancelLoading => self
                .load_control
                .cancel
                .store(true, std::sync::atomic::Ordering::Relaxed),
            Command::GoToSlice(z) => self.go_to_slice(z),
            Command::Gesture(cut, gesture) => self.apply_gesture(cut, gesture),
            Command::MoveCrosshair(voxel) => self.move_crosshair(voxel),
            Command::NextSlice => self.step_slices(1),
            Command::PreviousSlice => self.step_slices(-1),
            Command::TenSlicesOn => self.step_slices(10),
            Command::TenSlicesBack => self.step_slices(-10),
            Command::FitView => {
                if let Some(study) = &mut self.study {
                    study.zoom = 1.0;
                    study.pan = Vec2::ZERO;
                }
            }
            Command::AcceptPreview => self.accept_preview(),
            Command::ClearPrompt => self.clear_prompt(),
            Command::Undo => self.undo(),
            Command::Redo => self.redo(),
            Command::Propagate(direction) => self.propagate(direction),
            Command::CancelPropagation => self.cancel_propagation(),
            Command::AddSegment(name) => {
                if let Some(study) = &mut self.study {
                    self.active_label = study.document.add_segment(&name);
                }
            }
            Command::SelectSegment(label) => self.active_label = Some(label),
            Command::EditSegment(edited) => {
                if let Some(segment) = self
                    .study
                    .as_mut()
                    .and_then(|study| study.document.segment_mut(edited.label))
                {
                    *segment = edited;
                }
            }
            Command::SetWindow(window) => {
                if let Some(study) = &mut self.study {
                    study.window = window;
                }
            }
            Command::Export(format) => self.export(format),
            Command::Ask(purpose) => self.ask(purpose),
            Command::UseModel(dir) => self.use_model(dir),
            Command::ToggleHelp => self.show_shortcuts = !self.show_shortcuts,
            // on_exit saves the annotation before the window goes
            Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }
}
