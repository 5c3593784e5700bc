//! The side panel: series, tools, segments, window, export and model, top to bottom. Its
//! widgets keep the view's own choices (the tool, the brush size); what they ask of the study,
//! the document or the model goes out as commands.

use super::{Direction, LumenApp, Tool};
use crate::ui::command::Command;
use crate::ui::dialogs::Purpose;
use crate::ui::model_panel::Action;
use lumen_annotation::statistics::SegmentStatistics;
use lumen_study::PRESETS;
use lumen_study::reformat::Cut;

impl LumenApp {
    pub(super) fn side_panel(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        self.series_browser(ui, commands);
        self.tools_section(ui, commands);
        ui.separator();
        self.segments_section(ui, commands);
        if self.study.is_some() {
            ui.separator();
            self.window_section(ui, commands);
        }
        ui.separator();
        self.export_section(ui, commands);
        ui.separator();
        self.model_section(ui, commands);
    }

    /// The prompt and brush tools, accept/clear, and propagation with its progress.
    fn tools_section(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.heading("Tools");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tool, Tool::Box, "Box");
            ui.selectable_value(&mut self.tool, Tool::Include, "+ Include");
            ui.selectable_value(&mut self.tool, Tool::Exclude, "- Exclude");
        });
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.tool, Tool::Brush, "Brush");
            ui.selectable_value(&mut self.tool, Tool::Eraser, "Eraser");
            ui.add(egui::Slider::new(&mut self.brush_radius, 1.0..=40.0).text("px"));
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.preview.is_some(), egui::Button::new("Accept (Enter)"))
                .clicked()
            {
                commands.push(Command::AcceptPreview);
            }
            if ui.button("Clear (Esc)").clicked() {
                commands.push(Command::ClearPrompt);
            }
        });
        ui.horizontal(|ui| {
            ui.label("Propagate");
            let can = self.propagation.is_none() && self.active_label.is_some();
            for (text, direction) in [
                ("Up", Direction::Up),
                ("Down", Direction::Down),
                ("Both", Direction::Both),
            ] {
                if ui.add_enabled(can, egui::Button::new(text)).clicked() {
                    commands.push(Command::Propagate(direction));
                }
            }
        });
        if let Some(p) = &self.propagation {
            let fraction = if p.of > 0 {
                p.done as f32 / p.of as f32
            } else {
                0.0
            };
            let unit = match self.prompt_cut {
                Cut::Slice(_) => "slices",
                Cut::Across(..) => "planes",
            };
            ui.add(egui::ProgressBar::new(fraction).text(format!("{} {unit}", p.done)));
            if ui.button("Cancel").clicked() {
                commands.push(Command::CancelPropagation);
            }
        }
    }

    /// The segments: a new one from the organ list, and each one's colour, name, visibility,
    /// lock and volume.
    fn segments_section(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.heading("Segments");
        egui::ComboBox::from_label("new segment")
            .selected_text(&self.new_segment_name)
            .show_ui(ui, |ui| {
                for organ in lumen_annotation::organs::OFFERED {
                    ui.selectable_value(&mut self.new_segment_name, organ.to_string(), organ);
                }
            });
        let Some(study) = &mut self.study else { return };
        if ui.button("Add segment").clicked() {
            commands.push(Command::AddSegment(self.new_segment_name.clone()));
        }
        let z = study.z;
        let table = study
            .statistics
            .update(&study.document, &study.volume)
            .to_vec();
        let labels: Vec<u8> = study.document.segments().iter().map(|s| s.label).collect();
        for label in labels {
            let volume = table
                .iter()
                .find(|s| s.label == label)
                .map_or(0.0, |s| s.volume_ml);
            let on_slice = study.document.slice_count(z, label);
            let pixel_mm2 = study.volume.spacing[0] * study.volume.spacing[1];
            let Some(before) = study.document.segments().iter().find(|s| s.label == label) else {
                continue;
            };
            // Edit a copy; only a real change reaches the document (and its autosave).
            let mut edited = before.clone();
            let active = self.active_label == Some(label);
            ui.horizontal(|ui| {
                ui.color_edit_button_srgb(&mut edited.color);
                if ui.selectable_label(active, &edited.name).clicked() {
                    commands.push(Command::SelectSegment(label));
                }
                ui.checkbox(&mut edited.visible, "show");
                ui.checkbox(&mut edited.locked, "lock");
            });
            if active {
                ui.horizontal(|ui| {
                    let caption = ui.label("   name");
                    ui.text_edit_singleline(&mut edited.name)
                        .labelled_by(caption.id);
                });
            }
            if edited != *before {
                commands.push(Command::EditSegment(edited));
            }
            ui.label(format!(
                "   {volume:.1} mL, {:.0} mm² on this slice",
                on_slice as f64 * pixel_mm2
            ));
        }
        if !table.is_empty() {
            statistics_table(ui, &table, study.volume.modality.value_name());
        }
    }

    /// Window presets, the current window and the histogram.
    fn window_section(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let Some(study) = &mut self.study else { return };
        ui.heading("Window");
        ui.horizontal_wrapped(|ui| {
            for preset in PRESETS {
                if ui.button(preset.name).clicked() {
                    commands.push(Command::SetWindow(preset.window));
                }
            }
        });
        ui.label(format!(
            "W {:.0} / L {:.0}",
            study.window.width, study.window.center
        ));
        if let Some(values) = study.volume.slice(study.z) {
            study.histogram.update(
                values,
                study.document.slice_labels(study.z),
                study.z,
                self.active_label,
                study.document.revision(),
                &study.window,
            );
        }
        study
            .histogram
            .show(ui, &study.window, study.volume.modality.value_name());
    }

    /// The model line (with timings when asked for) and the model panel's list.
    fn model_section(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let can_switch = self.propagation.is_none();
        let timings = if self.show_timings {
            self.latency
        } else {
            (None, None)
        };
        let model = self.model.status();
        let status = match timings {
            (Some(e), Some(d)) => {
                format!("{model}\nlast slice encoded in {e:.0} ms, last mask in {d:.0} ms")
            }
            (Some(e), None) => format!("{model}\nlast slice encoded in {e:.0} ms"),
            _ => model,
        };
        match self.model_panel.show(ui, &status, can_switch, &self.wake) {
            Some(Action::Use(dir)) => commands.push(Command::UseModel(dir)),
            Some(Action::PickImport) => commands.push(Command::Ask(Purpose::ImportModel)),
            None => {}
        }
    }
}

/// Each segment's volume, intensities and extent, as the CSV export writes them.
fn statistics_table(ui: &mut egui::Ui, table: &[SegmentStatistics], unit: &str) {
    egui::CollapsingHeader::new("Statistics")
        .default_open(true)
        .show(ui, |ui| {
            egui::Grid::new("segment statistics")
                .striped(true)
                .show(ui, |ui| {
                    for heading in [
                        "Segment".to_string(),
                        "mL".into(),
                        format!("mean ± SD {unit}"),
                        "min … max".into(),
                        "R-L × A-P × I-S mm".into(),
                    ] {
                        ui.strong(heading);
                    }
                    ui.end_row();
                    for s in table {
                        ui.label(&s.name);
                        ui.label(format!("{:.1}", s.volume_ml));
                        if s.voxels > 0 {
                            let [rl, ap, si] = s.extent_mm;
                            ui.label(format!("{:.0} ± {:.0}", s.mean, s.sd));
                            ui.label(format!("{:.0} … {:.0}", s.min, s.max));
                            ui.label(format!("{rl:.0} × {ap:.0} × {si:.0}"));
                        } else {
                            for _ in 0..3 {
                                ui.label("–");
                            }
                        }
                        ui.end_row();
                    }
                });
        });
}
