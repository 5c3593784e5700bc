//! The central views: the acquisition plane alone, or beside the two planes across the slices
//! and the 3D view, the three planes linked by one crosshair.

use super::textures::{preview_yellow, segment_colours, set_texture};
use super::{LumenApp, Tool};
use crate::ui::command::Command;
use crate::ui::viewport::{self, Gesture, Mode, Placement};
use egui::{Color32, ColorImage, Pos2, Rect, TextureHandle, TextureOptions, UiBuilder, Vec2};
use lumen_engine::model::Prompt;
use lumen_study::reformat::{Across, Cut, Reformat};
use lumen_study::{Volume, Window};

/// How the central area is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The acquisition plane, large.
    #[default]
    Single,
    /// The acquisition plane on the left; on the right the planes across the slices and the
    /// 3D view of the segments, stacked.
    ThreePlanes,
}

/// What a reformatted plane's textures show, so they are remade only when it changes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PlaneKey {
    reformat: Reformat,
    window: Window,
    revision: u64,
    /// The generation of the preview drawn on this plane, if one is.
    preview: Option<u64>,
}

/// A plane across the slices, as last drawn.
#[derive(Default)]
pub struct PlaneTextures {
    shown: Option<PlaneKey>,
    slice: Option<TextureHandle>,
    overlay: Option<TextureHandle>,
}

const ACROSS: [Across; 2] = [Across::Row, Across::Column];

impl LumenApp {
    pub(super) fn central(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let Some(study) = &self.study else {
            self.start_screen(ui, commands);
            return;
        };
        let nz = study.volume.dims[2];
        let mut z = study.z;
        ui.horizontal(|ui| {
            let slider = ui.add(egui::Slider::new(&mut z, 0..=nz.saturating_sub(1)).text("slice"));
            if slider.changed() {
                commands.push(Command::GoToSlice(z));
            }
            ui.separator();
            ui.selectable_value(&mut self.layout, Layout::Single, "One plane");
            ui.selectable_value(&mut self.layout, Layout::ThreePlanes, "Three planes");
        });
        let area = ui.available_rect_before_wrap();
        self.hover = None;
        match self.layout {
            Layout::Single => {
                self.acquisition_view(ui, area, commands);
            }
            Layout::ThreePlanes => {
                let (left, right) = area.split_left_right_at_fraction(0.5);
                let (top, rest) = right.split_top_bottom_at_fraction(1.0 / 3.0);
                let (middle, bottom) = rest.split_top_bottom_at_fraction(0.5);
                self.acquisition_view(ui, left.shrink(1.0), commands);
                for (across, rect) in ACROSS.into_iter().zip([top, middle]) {
                    self.plane_view(ui, across, rect.shrink(1.0), commands);
                }
                self.refresh_surfaces();
                if let Some(study) = &mut self.study {
                    study.surfaces.show(ui, bottom.shrink(1.0));
                }
            }
        }
    }

    /// The acquisition plane in `area`: prompts, brush, window/level, zoom and pan. In the
    /// three-plane layout it shows the crosshair, and Shift+click moves it.
    fn acquisition_view(&mut self, ui: &mut egui::Ui, area: Rect, commands: &mut Vec<Command>) {
        let Some(study) = &self.study else { return };
        let (Some(slice), Some(overlay)) =
            (study.slice_texture.clone(), study.overlay_texture.clone())
        else {
            return;
        };
        let [nx, ny, _] = study.volume.dims;
        let z = study.z;
        let placement = Placement::fit(area, (nx, ny), study.zoom, study.pan);
        let labels =
            viewport::ViewLabels::new(&study.volume.patient_from_voxel, study.volume.spacing[0]);
        let no_prompt = Prompt::default();
        let content = viewport::ViewContent {
            placement,
            slice: &slice,
            overlay: &overlay,
            prompt: if self.prompt_cut == Cut::Slice(z) {
                &self.prompt
            } else {
                &no_prompt
            },
            labels: &labels,
            label: viewport::VIEW_LABEL,
        };
        let mode = self.tool_mode(Cut::Slice(z));
        let (response, gestures) = ui
            .scope_builder(UiBuilder::new().max_rect(area), |ui| {
                viewport::show(ui, content, mode)
            })
            .inner;
        if let Some((x, y)) = response.hover_pos().and_then(|p| placement.pixel_at(p))
            && let Some(value) = study.volume.get(x, y, z)
        {
            self.hover = Some(([x, y, z], value));
        }
        if self.layout == Layout::ThreePlanes {
            let [cx, cy] = study.crosshair;
            viewport::draw_crosshair(&ui.painter_at(area), placement, (cx, cy));
        }
        if self.moved_crosshair(ui, &response, commands, |p| {
            placement.pixel_at(p).map(|(x, y)| [x, y, z])
        }) {
            return;
        }
        let cut = Cut::Slice(z);
        commands.extend(gestures.into_iter().map(|g| Command::Gesture(cut, g)));
    }

    /// What a primary press does on a view of `cut` with the current tool; the brush's stroke
    /// is drawn on the cut it is painted on only.
    fn tool_mode(&self, cut: Cut) -> Mode<'_> {
        match self.tool {
            Tool::Box => Mode::Box,
            Tool::Include | Tool::Exclude => Mode::Click,
            Tool::Brush | Tool::Eraser => Mode::Paint {
                radius: self.brush_radius,
                stroke: if self.stroke_cut == cut {
                    &self.stroke
                } else {
                    &[]
                },
            },
        }
    }

    /// In the three-plane layout, a Shift+click puts the crosshair on the voxel under the
    /// pointer (by `voxel_at`) instead of prompting; true when it did.
    fn moved_crosshair(
        &self,
        ui: &egui::Ui,
        response: &egui::Response,
        commands: &mut Vec<Command>,
        voxel_at: impl Fn(Pos2) -> Option<[usize; 3]>,
    ) -> bool {
        if self.layout != Layout::ThreePlanes || !ui.input(|i| i.modifiers.shift) {
            return false;
        }
        let clicked = response.clicked() || response.dragged_by(egui::PointerButton::Primary);
        if clicked && let Some(voxel) = response.interact_pointer_pos().and_then(voxel_at) {
            commands.push(Command::MoveCrosshair(voxel));
        }
        true
    }

    /// A plane across the slices in `area`, through the crosshair: prompts with the Box and
    /// click tools, paints with the brush and eraser; Shift+click moves the crosshair there (and
    /// the slice view to its slice), the wheel steps the plane, right-drag sets the window.
    fn plane_view(
        &mut self,
        ui: &mut egui::Ui,
        across: Across,
        area: Rect,
        commands: &mut Vec<Command>,
    ) {
        let Some((reformat, slice, overlay)) = self.plane_textures(ui.ctx(), across) else {
            return;
        };
        let Some(study) = &self.study else { return };
        let volume = &study.volume;
        let name = reformat.name(volume);
        let placement = Placement::fit_aspect(
            area,
            reformat.size(),
            reformat.pixel_aspect(volume.spacing),
            1.0,
            Vec2::ZERO,
        );
        let (right, down, mm) = reformat.axes(volume);
        let labels = viewport::ViewLabels::from_axes(right, down, mm);
        let no_prompt = Prompt::default();
        let label = format!("{name} view");
        let content = viewport::ViewContent {
            placement,
            slice: &slice,
            overlay: &overlay,
            prompt: if self.prompt_cut == reformat.cut() {
                &self.prompt
            } else {
                &no_prompt
            },
            labels: &labels,
            label: &label,
        };
        let mode = self.tool_mode(reformat.cut());
        let (response, gestures) = ui
            .scope_builder(UiBuilder::new().max_rect(area), |ui| {
                viewport::show(ui, content, mode)
            })
            .inner;
        let painter = ui.painter_at(area);
        let [cx, cy] = study.crosshair;
        let z = study.z;
        viewport::draw_crosshair(&painter, placement, reformat.pixel([cx, cy, z]));
        painter.text(
            area.left_top() + Vec2::splat(6.0),
            egui::Align2::LEFT_TOP,
            name,
            egui::FontId::proportional(13.0),
            Color32::from_gray(200),
        );
        let voxel_at = |p: Pos2| {
            let (u, v) = placement.pixel_at(p)?;
            Some(reformat.voxel(u, v))
        };
        if let Some([x, y, z]) = response.hover_pos().and_then(voxel_at)
            && let Some(value) = volume.get(x, y, z)
        {
            self.hover = Some(([x, y, z], value));
        }
        if self.moved_crosshair(ui, &response, commands, voxel_at) {
            return;
        }
        for gesture in gestures {
            commands.push(match gesture {
                // the wheel steps this plane through the volume
                Gesture::Scroll(step) => {
                    let step = step as isize;
                    Command::MoveCrosshair(match across {
                        Across::Row => [cx, cy.saturating_add_signed(step), z],
                        Across::Column => [cx.saturating_add_signed(step), cy, z],
                    })
                }
                // the planes keep their fit; zoom and pan belong to the slice view
                Gesture::Zoom(_) | Gesture::Pan(_) => continue,
                _ => Command::Gesture(reformat.cut(), gesture),
            });
        }
    }

    /// Puts the crosshair on `[x, y, z]` (kept inside the volume); the acquisition plane follows
    /// to slice z.
    pub fn move_crosshair(&mut self, [x, y, z]: [usize; 3]) {
        let Some(study) = &mut self.study else { return };
        let [nx, ny, _] = study.volume.dims;
        study.crosshair = [x.min(nx.saturating_sub(1)), y.min(ny.saturating_sub(1))];
        if z != study.z {
            self.go_to_slice(z);
        }
    }

    /// The crosshair's voxel `[x, y, z]`.
    pub fn crosshair(&self) -> Option<[usize; 3]> {
        let study = self.study.as_ref()?;
        Some([study.crosshair[0], study.crosshair[1], study.z])
    }

    pub fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    /// The plane's textures, remade when its plane, the window or the annotation changed.
    fn plane_textures(
        &mut self,
        ctx: &egui::Context,
        across: Across,
    ) -> Option<(Reformat, TextureHandle, TextureHandle)> {
        let study = self.study.as_mut()?;
        let [cx, cy] = study.crosshair;
        let reformat = Reformat::new(across, &study.volume, [cx, cy, study.z]);
        let preview = self
            .preview
            .as_ref()
            .filter(|_| self.prompt_cut == reformat.cut());
        let key = PlaneKey {
            reformat,
            window: study.window,
            revision: study.document.revision(),
            preview: preview.map(|_| self.generation),
        };
        let textures = &mut study.planes[ACROSS.iter().position(|a| *a == across)?];
        if textures.shown != Some(key) {
            let (w, h) = reformat.size();
            let grey = study
                .volume
                .to_grey(&reformat.values(&study.volume), study.window);
            let colours = segment_colours(&study.document);
            let mut overlay: Vec<Color32> = reformat
                .gather(study.document.labels())
                .iter()
                .map(|l| colours[*l as usize])
                .collect();
            if let Some(p) = preview.filter(|p| p.mask.dim() == (h, w)) {
                for (pixel, inside) in overlay.iter_mut().zip(p.mask.iter()) {
                    if *inside {
                        *pixel = preview_yellow();
                    }
                }
            }
            let name = format!("plane {across:?}");
            set_texture(
                ctx,
                &mut textures.slice,
                &name,
                ColorImage::from_gray([w, h], &grey),
                TextureOptions::LINEAR,
            );
            set_texture(
                ctx,
                &mut textures.overlay,
                &format!("{name} overlay"),
                ColorImage::new([w, h], overlay),
                TextureOptions::NEAREST,
            );
            textures.shown = Some(key);
        }
        Some((reformat, textures.slice.clone()?, textures.overlay.clone()?))
    }
}

/// The status bar's readout of the voxel under the pointer: its indices, its position in the
/// patient (mm, with the side each axis points to) and its value (HU on CT only).
pub fn hover_readout(volume: &Volume, [x, y, z]: [usize; 3], value: f32) -> String {
    let p =
        lumen_study::geometry::apply(&volume.patient_from_voxel, [x as f64, y as f64, z as f64]);
    let side = |v: f64, positive: char, negative: char| {
        format!(
            "{} {:.1}",
            if v >= 0.0 { positive } else { negative },
            v.abs()
        )
    };
    let unit = volume.modality.unit().unwrap_or("");
    format!(
        "({x}, {y}, {z}) {}, {}, {} mm · {value:.0} {unit}",
        side(p[0], 'L', 'R'),
        side(p[1], 'P', 'A'),
        side(p[2], 'S', 'I')
    )
    .trim_end()
    .to_string()
}
