//! The slice view: fits the slice into the panel, maps screen ↔ image pixels, draws the slice,
//! the overlays and the prompt, and turns mouse input into prompt gestures.

use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, Vec2, pos2};
use lumen_engine::model::{BoxPrompt, Prompt};

/// What the user did on the image this frame, in image pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// Ctrl + wheel: zoom by this factor about the pointer's image position.
    Zoom(f32),
    /// Middle drag: move the image by (dx, dy) points.
    Pan(Vec2),
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
        Self::fit_aspect(area, size, 1.0, zoom, pan)
    }

    /// As `fit`, for pixels `aspect` times as tall as they are wide (a plane across 5 mm slices
    /// of 0.7 mm pixels).
    pub fn fit_aspect(area: Rect, size: (usize, usize), aspect: f32, zoom: f32, pan: Vec2) -> Self {
        let (w, h) = (size.0 as f32, size.1 as f32 * aspect);
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

    /// Screen points per image pixel (across).
    pub fn scale(&self) -> f32 {
        self.rect.width() / self.size.0 as f32
    }

    /// The image pixel under `p`, if `p` is on the image.
    pub fn pixel_at(&self, p: Pos2) -> Option<(usize, usize)> {
        let (u, v) = self.to_image(p);
        let inside =
            (0.0..self.size.0 as f32).contains(&u) && (0.0..self.size.1 as f32).contains(&v);
        inside.then_some((u as usize, v as usize))
    }
}

/// The crosshair: a line through the centre of pixel `(u, v)` each way, across the image.
pub fn draw_crosshair(painter: &egui::Painter, placement: Placement, (u, v): (usize, usize)) {
    let stroke = Stroke::new(1.0, Color32::from_rgba_unmultiplied(90, 200, 255, 170));
    let at = placement.to_screen(u as f32 + 0.5, v as f32 + 0.5);
    let r = placement.rect;
    painter.line_segment([pos2(r.left(), at.y), pos2(r.right(), at.y)], stroke);
    painter.line_segment([pos2(at.x, r.top()), pos2(at.x, r.bottom())], stroke);
}

/// The slice view's accessible label (screen readers, and tests that find it by label).
pub const VIEW_LABEL: &str = "Slice view";

/// What a view shows and how it is drawn: the image's placement, its slice and overlay
/// textures, the prompt on it, the edge letters, and its accessible label.
pub struct ViewContent<'a> {
    pub placement: Placement,
    pub slice: &'a TextureHandle,
    pub overlay: &'a TextureHandle,
    pub prompt: &'a Prompt,
    pub labels: &'a ViewLabels,
    pub label: &'a str,
}

/// Draws the image and its overlays, and reads the user's gestures.
pub fn show(
    ui: &mut egui::Ui,
    content: ViewContent<'_>,
    mode: Mode<'_>,
) -> (egui::Response, Vec<Gesture>) {
    let ViewContent {
        placement,
        slice,
        overlay,
        prompt,
        labels,
        label,
    } = content;
    let area = ui.available_rect_before_wrap();
    let response = ui.allocate_rect(area, Sense::click_and_drag());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, label));
    let painter = ui.painter_at(area);
    painter.rect_filled(area, 0.0, Color32::BLACK);
    let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
    painter.image(slice.id(), placement.rect, uv, Color32::WHITE);
    painter.image(overlay.id(), placement.rect, uv, Color32::WHITE);
    draw_prompt(&painter, placement, prompt);
    draw_labels(&painter, placement, labels);

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
            // a pass redrawn with no new input holds the pointer still: not a new point
            if stroke.last() != Some(&(x, y)) {
                gestures.push(Gesture::Paint { x, y });
            }
        }
        if response.drag_stopped_by(egui::PointerButton::Primary) || response.clicked() {
            gestures.push(Gesture::PaintEnd);
        }
    } else if matches!(mode, Mode::Box) {
        if let Some((start, end)) = box_drag(ui, &response, area, &placement) {
            let (x0, x1) = (start.0.min(end.0), start.0.max(end.0));
            let (y0, y1) = (start.1.min(end.1), start.1.max(end.1));
            let on_screen = placement.to_screen(x1, y1) - placement.to_screen(x0, y0);
            if on_screen.x > 3.0 && on_screen.y > 3.0 {
                let clamp_x = |v: f32| v.clamp(0.0, placement.size.0 as f32 - 1.0);
                let clamp_y = |v: f32| v.clamp(0.0, placement.size.1 as f32 - 1.0);
                gestures.push(Gesture::Box(BoxPrompt {
                    x0: clamp_x(x0),
                    y0: clamp_y(y0),
                    x1: clamp_x(x1),
                    y1: clamp_y(y1),
                }));
            }
        } else if let Some(r) = box_in_progress(ui, &response, &placement) {
            painter.rect_stroke(
                r,
                0.0,
                Stroke::new(1.5, Color32::from_rgb(255, 220, 0)),
                egui::StrokeKind::Middle,
            );
        }
    } else if response.clicked()
        && let Some(p) = response.interact_pointer_pos()
    {
        let (x, y) = placement.to_image(p);
        gestures.push(Gesture::Click { x, y });
    }
    let moved = response.drag_delta() != Vec2::ZERO;
    if moved && response.dragged_by(egui::PointerButton::Secondary) {
        gestures.push(Gesture::WindowDrag(response.drag_delta()));
    }
    if moved && response.dragged_by(egui::PointerButton::Middle) {
        gestures.push(Gesture::Pan(response.drag_delta()));
    }
    if response.hovered() && ui.input(|i| i.modifiers.command) {
        let zoom = ui.input(|i| i.zoom_delta() * (i.smooth_scroll_delta.y / 200.0).exp());
        if (zoom - 1.0).abs() > 1e-3 {
            gestures.push(Gesture::Zoom(zoom));
        }
    } else if response.hovered()
        && let Some(step) = wheel_step(ui)
    {
        gestures.push(Gesture::Scroll(step));
    }
    (response, gestures)
}

/// One slice on (+1) or back (−1) for this frame's wheel, from whole notches rather than the
/// smoothed delta, so one notch is one slice; None without a turn.
pub fn wheel_step(ui: &egui::Ui) -> Option<i32> {
    let notches: f32 = ui.input(|i| {
        i.raw
            .events
            .iter()
            .map(|e| match e {
                egui::Event::MouseWheel { delta, .. } => delta.y,
                _ => 0.0,
            })
            .sum()
    });
    (notches.abs() > 0.5).then_some(if notches > 0.0 { -1 } else { 1 })
}

/// The corners (image pixels) of a primary-button drag that ended this frame, from the raw
/// button events in their order: when the window repaints slowly (software rendering, a busy
/// CPU) the press, the moves and the release of a quick drag arrive in one frame, and egui's own
/// drag state never sees a drag. The press must land on the view itself (not on a window above
/// it); the image pixel it landed on is kept across frames, so a view that moves meanwhile (a
/// note appearing below it) does not move the box's first corner.
fn box_drag(
    ui: &egui::Ui,
    response: &egui::Response,
    area: Rect,
    placement: &Placement,
) -> Option<((f32, f32), (f32, f32))> {
    let key = response.id.with("box start");
    let mut origin: Option<(f32, f32)> = ui.data(|d| d.get_temp(key)).flatten();
    let presses: Vec<(Pos2, bool)> = ui.input(|i| {
        i.raw
            .events
            .iter()
            .filter_map(|event| match *event {
                egui::Event::PointerButton {
                    pos,
                    button: egui::PointerButton::Primary,
                    pressed,
                    ..
                } => Some((pos, pressed)),
                _ => None,
            })
            .collect()
    });
    let mut made = None;
    for (pos, pressed) in presses {
        if pressed {
            let on_view = area.contains(pos) && ui.ctx().layer_id_at(pos) == Some(ui.layer_id());
            origin = on_view.then(|| placement.to_image(pos));
        } else if let Some(start) = origin.take() {
            made = Some((start, placement.to_image(pos)));
        }
    }
    ui.data_mut(|d| d.insert_temp(key, origin));
    made
}

/// The box being dragged, from where the press landed to the pointer, while the button is held.
fn box_in_progress(
    ui: &egui::Ui,
    response: &egui::Response,
    placement: &Placement,
) -> Option<Rect> {
    let origin: Option<(f32, f32)> = ui
        .data(|d| d.get_temp(response.id.with("box start")))
        .flatten();
    let (x, y) = origin?;
    let current = ui.input(|i| i.pointer.latest_pos());
    Some(Rect::from_two_pos(placement.to_screen(x, y), current?))
}

/// Patient-direction letters at the image's edges and the size of a pixel, for the annotations
/// a radiologist expects on a slice view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewLabels {
    /// Letters at the left, right, top and bottom edges (e.g. "R", "L", "A", "P").
    pub edges: [String; 4],
    /// Millimetres per image pixel along x.
    pub mm_per_pixel: f64,
}

/// The LPS letter(s) a direction points to, strongest component first ("L", "PS", …); components
/// under a third of the largest are left out, so oblique views show two letters.
pub fn direction_letters(d: [f64; 3]) -> String {
    let names = [('L', 'R'), ('P', 'A'), ('S', 'I')];
    let largest = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut axes: Vec<usize> = (0..3)
        .filter(|&i| d[i].abs() >= largest / 3.0 && largest > 0.0)
        .collect();
    axes.sort_by(|&a, &b| d[b].abs().total_cmp(&d[a].abs()));
    axes.iter()
        .map(|&i| if d[i] >= 0.0 { names[i].0 } else { names[i].1 })
        .collect()
}

impl ViewLabels {
    /// From the volume's voxel → patient transform: +column points right, +row points down.
    pub fn new(patient_from_voxel: &lumen_study::Mat4, spacing_x: f64) -> Self {
        let col = lumen_study::geometry::column(patient_from_voxel, 0);
        let row = lumen_study::geometry::column(patient_from_voxel, 1);
        Self::from_axes(col, row, spacing_x)
    }

    /// From the patient directions (LPS) of +u (right on screen) and +v (down), and the mm a
    /// pixel spans across.
    pub fn from_axes(right: [f64; 3], down: [f64; 3], mm_per_pixel: f64) -> Self {
        let neg = |v: [f64; 3]| v.map(|c| -c);
        Self {
            edges: [
                direction_letters(neg(right)),
                direction_letters(right),
                direction_letters(neg(down)),
                direction_letters(down),
            ],
            mm_per_pixel,
        }
    }
}

/// The longest round length (mm) whose bar fits in `max_points` at `points_per_mm`.
pub fn scale_bar_mm(points_per_mm: f64, max_points: f64) -> Option<f64> {
    [200.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0]
        .into_iter()
        .find(|mm| mm * points_per_mm <= max_points)
}

/// Draws the edge letters and a scale bar inside the image's visible part, or just above and
/// below it where the view has room there (a short plane across a few slices).
pub fn draw_labels(painter: &egui::Painter, placement: Placement, labels: &ViewLabels) {
    let view = painter.clip_rect();
    let clip = view.intersect(placement.rect);
    let font = egui::FontId::proportional(15.0);
    let color = Color32::from_rgb(255, 210, 90);
    let m = 6.0;
    let room = 24.0;
    let above = clip.top() - view.top() > room;
    let below = view.bottom() - clip.bottom() > 2.0 * room;
    let [left, right, top, bottom] = &labels.edges;
    let spots = [
        (
            left,
            pos2(clip.left() + m, clip.center().y),
            egui::Align2::LEFT_CENTER,
        ),
        (
            right,
            pos2(clip.right() - m, clip.center().y),
            egui::Align2::RIGHT_CENTER,
        ),
        if above {
            (
                top,
                pos2(clip.center().x, clip.top() - 2.0),
                egui::Align2::CENTER_BOTTOM,
            )
        } else {
            (
                top,
                pos2(clip.center().x, clip.top() + m),
                egui::Align2::CENTER_TOP,
            )
        },
        if below {
            (
                bottom,
                pos2(clip.center().x, clip.bottom() + 2.0),
                egui::Align2::CENTER_TOP,
            )
        } else {
            (
                bottom,
                pos2(clip.center().x, clip.bottom() - m),
                egui::Align2::CENTER_BOTTOM,
            )
        },
    ];
    for (text, at, align) in spots {
        painter.text(at, align, text, font.clone(), color);
    }
    let points_per_mm = f64::from(placement.scale()) / labels.mm_per_pixel.max(1e-6);
    if let Some(mm) = scale_bar_mm(points_per_mm, f64::from(clip.width()) / 4.0) {
        let length = (mm * points_per_mm) as f32;
        let y = if below {
            clip.bottom() + 2.0 * room
        } else {
            clip.bottom() - 28.0
        };
        let x0 = clip.left() + 16.0;
        let stroke = Stroke::new(2.0, color);
        painter.line_segment([pos2(x0, y), pos2(x0 + length, y)], stroke);
        for x in [x0, x0 + length] {
            painter.line_segment([pos2(x, y - 4.0), pos2(x, y + 4.0)], stroke);
        }
        painter.text(
            pos2(x0 + length / 2.0, y - 6.0),
            egui::Align2::CENTER_BOTTOM,
            format!("{mm:.0} mm"),
            egui::FontId::proportional(12.0),
            color,
        );
    }
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

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn axial_directions_give_the_radiological_letters() {
        // Axial DICOM: +column → patient left, +row → posterior.
        assert_eq!(direction_letters([1.0, 0.0, 0.0]), "L");
        assert_eq!(direction_letters([-1.0, 0.0, 0.0]), "R");
        assert_eq!(direction_letters([0.0, 1.0, 0.0]), "P");
        assert_eq!(direction_letters([0.0, -1.0, 0.0]), "A");
        assert_eq!(direction_letters([0.0, 0.0, -1.0]), "I");
        // Oblique: strongest first; small components left out.
        assert_eq!(direction_letters([0.8, 0.0, -0.6]), "LI");
        assert_eq!(direction_letters([0.99, 0.1, 0.0]), "L");
        let m = lumen_study::geometry::from_columns(
            [0.7, 0.0, 0.0],
            [0.0, 0.7, 0.0],
            [0.0, 0.0, 2.0],
            [0.0; 3],
        );
        let labels = ViewLabels::new(&m, 0.7);
        assert_eq!(labels.edges, ["R", "L", "A", "P"].map(String::from));
    }

    #[test]
    fn the_scale_bar_is_the_longest_round_length_that_fits() {
        // 2 points per mm, room for 150 points: 50 mm (100 points) fits, 100 mm does not.
        assert_eq!(scale_bar_mm(2.0, 150.0), Some(50.0));
        assert_eq!(scale_bar_mm(0.5, 150.0), Some(200.0));
        assert_eq!(scale_bar_mm(1000.0, 150.0), None);
    }
}
