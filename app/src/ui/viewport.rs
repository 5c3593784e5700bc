//! The slice view: fits the slice into the panel, maps screen ↔ image pixels, draws the slice,
//! the overlays and the prompt, and turns mouse input into prompt gestures.

use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, Vec2, pos2};
use lumen_engine::model::{BoxPrompt, Prompt};

/// What the user did on the image this frame, in image pixel coordinates.
pub enum Gesture {
    Box(BoxPrompt),
    Click {
        x: f32,
        y: f32,
    },
    /// Right-drag: (dx, dy) in points, for window/level.
    WindowDrag(Vec2),
    /// Wheel: slices to move (positive = next).
    Scroll(i32),
    /// Brush or eraser: the pointer is at (x, y) while painting.
    Paint {
        x: f32,
        y: f32,
    },
    /// The stroke ended (button released).
    PaintEnd,
}

/// What a primary press or drag does on the image.
pub enum Mode<'a> {
    /// Drag a box prompt.
    Box,
    /// Click points.
    Click,
    /// Paint with a disc of `radius` image pixels; `stroke` is drawn as it grows.
    Paint {
        radius: f32,
        stroke: &'a [(f32, f32)],
    },
}

/// Screen placement of an image of `size` = (width, height) pixels inside `area`.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub rect: Rect,
    pub size: (usize, usize),
}

impl Placement {
    pub fn fit(area: Rect, size: (usize, usize), zoom: f32, pan: Vec2) -> Self {
        let (w, h) = (size.0 as f32, size.1 as f32);
        let scale = (area.width() / w).min(area.height() / h) * zoom;
        let rect = Rect::from_center_size(area.center() + pan, Vec2::new(w * scale, h * scale));
        Self { rect, size }
    }

    /// Screen → image pixel coordinates (may fall outside the image).
    pub fn to_image(&self, p: Pos2) -> (f32, f32) {
        let u = (p.x - self.rect.min.x) / self.rect.width() * self.size.0 as f32;
        let v = (p.y - self.rect.min.y) / self.rect.height() * self.size.1 as f32;
        (u, v)
    }

    pub fn to_screen(&self, x: f32, y: f32) -> Pos2 {
        pos2(
            self.rect.min.x + x / self.size.0 as f32 * self.rect.width(),
            self.rect.min.y + y / self.size.1 as f32 * self.rect.height(),
        )
    }

    /// Screen points per image pixel.
    pub fn scale(&self) -> f32 {
        self.rect.width() / self.size.0 as f32
    }
}

/// Draws the slice and its overlays, and reads the user's gestures.
pub fn show(
    ui: &mut egui::Ui,
    placement: Placement,
    slice: &TextureHandle,
    overlay: &TextureHandle,
    prompt: &Prompt,
    mode: Mode<'_>,
) -> (egui::Response, Vec<Gesture>) {
    let area = ui.available_rect_before_wrap();
    let response = ui.allocate_rect(area, Sense::click_and_drag());
    let painter = ui.painter_at(area);
    painter.rect_filled(area, 0.0, Color32::BLACK);
    let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
    painter.image(slice.id(), placement.rect, uv, Color32::WHITE);
    painter.image(overlay.id(), placement.rect, uv, Color32::WHITE);
    draw_prompt(&painter, placement, prompt);

    let mut gestures = Vec::new();
    let primary = response.dragged_by(egui::PointerButton::Primary)
        || response.drag_stopped_by(egui::PointerButton::Primary);
    if let Mode::Paint { radius, stroke } = mode {
        let fill = Color32::from_rgba_unmultiplied(255, 220, 0, 90);
        for &(x, y) in stroke {
            painter.circle_filled(placement.to_screen(x, y), radius * placement.scale(), fill);
        }
        if (primary || response.clicked())
            && let Some(p) = response.interact_pointer_pos()
        {
            let (x, y) = placement.to_image(p);
            gestures.push(Gesture::Paint { x, y });
        }
        if response.drag_stopped_by(egui::PointerButton::Primary) || response.clicked() {
            gestures.push(Gesture::PaintEnd);
        }
    } else if matches!(mode, Mode::Box) && primary {
        let origin = ui.input(|i| i.pointer.press_origin());
        if let (Some(a), Some(b)) = (origin, response.interact_pointer_pos()) {
            let r = Rect::from_two_pos(a, b);
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(1.5, Color32::from_rgb(255, 220, 0)),
                egui::StrokeKind::Middle,
            );
            if response.drag_stopped_by(egui::PointerButton::Primary)
                && r.width() > 3.0
                && r.height() > 3.0
            {
                let (x0, y0) = placement.to_image(r.min);
                let (x1, y1) = placement.to_image(r.max);
                let clamp_x = |v: f32| v.clamp(0.0, placement.size.0 as f32 - 1.0);
                let clamp_y = |v: f32| v.clamp(0.0, placement.size.1 as f32 - 1.0);
                gestures.push(Gesture::Box(BoxPrompt {
                    x0: clamp_x(x0),
                    y0: clamp_y(y0),
                    x1: clamp_x(x1),
                    y1: clamp_y(y1),
                }));
            }
        }
    } else if response.clicked()
        && let Some(p) = response.interact_pointer_pos()
    {
        let (x, y) = placement.to_image(p);
        gestures.push(Gesture::Click { x, y });
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        gestures.push(Gesture::WindowDrag(response.drag_delta()));
    }
    if response.hovered() {
        // Whole wheel notches, not smoothed deltas: one notch is one slice.
        let scroll: f32 = ui.input(|i| {
            i.raw
                .events
                .iter()
                .map(|e| {
                    if let egui::Event::MouseWheel { delta, .. } = e {
                        delta.y
                    } else {
                        0.0
                    }
                })
                .sum()
        });
        if scroll.abs() > 0.5 {
            gestures.push(Gesture::Scroll(if scroll > 0.0 { -1 } else { 1 }));
        }
    }
    (response, gestures)
}

fn draw_prompt(painter: &egui::Painter, placement: Placement, prompt: &Prompt) {
    if let Some(b) = prompt.bbox {
        let r = Rect::from_two_pos(
            placement.to_screen(b.x0, b.y0),
            placement.to_screen(b.x1, b.y1),
        );
        painter.rect_stroke(
            r,
            0.0,
            Stroke::new(1.5, Color32::from_rgb(255, 220, 0)),
            egui::StrokeKind::Middle,
        );
    }
    for p in &prompt.points {
        let color = if p.positive {
            Color32::from_rgb(60, 220, 90)
        } else {
            Color32::from_rgb(240, 60, 60)
        };
        let at = placement.to_screen(p.x, p.y);
        painter.circle(at, 5.0, color, Stroke::new(1.5, Color32::WHITE));
    }
}
