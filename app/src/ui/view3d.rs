//! The 3D view: the segments' surfaces, shaded and drawn back to front with egui's painter.
//! Drag rotates, the wheel zooms. The meshes come from a background job (`ui::app::surfaces`).

use egui::{Color32, Mesh, Pos2, Rect, Sense, Shape, Vec2, epaint::Vertex};
use lumen_annotation::surface::Surface;
use std::sync::Arc;

/// One segment's surface and its colour.
#[derive(Debug, Clone)]
pub struct SegmentMesh {
    pub label: u8,
    pub colour: [u8; 3],
    pub surface: Surface,
}

/// How the surfaces are looked at: turned about the patient's long axis (yaw) and tipped
/// (pitch), radians; `zoom` 1 fits them in the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub yaw: f32,
    pub pitch: f32,
    pub zoom: f32,
}

impl Default for Camera {
    /// From the front (anterior), head up, the patient's left on the right.
    fn default() -> Self {
        Self {
            yaw: 0.0,
            pitch: 0.0,
            zoom: 1.0,
        }
    }
}

/// The accessible label of the view.
pub const VIEW_3D_LABEL: &str = "3D view";

/// The drawn mesh, kept while neither the surfaces, the camera nor the view's size change.
#[derive(Default)]
pub struct View3d {
    pub camera: Camera,
    drawn: Option<(u64, Camera, Rect, Arc<Mesh>)>,
}

impl View3d {
    /// Draws `meshes` (made at `generation`) into `area` and turns drags and the wheel into
    /// camera moves.
    pub fn show(&mut self, ui: &mut egui::Ui, area: Rect, meshes: &[SegmentMesh], generation: u64) {
        let response = ui.allocate_rect(area, Sense::click_and_drag());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, VIEW_3D_LABEL));
        if response.dragged_by(egui::PointerButton::Primary) {
            let d = response.drag_delta();
            self.camera.yaw += d.x * 0.01;
            self.camera.pitch = (self.camera.pitch + d.y * 0.01).clamp(-1.5, 1.5);
        }
        if response.hovered()
            && let Some(step) = super::viewport::wheel_step(ui)
        {
            self.camera.zoom =
                (self.camera.zoom * if step < 0 { 1.1 } else { 1.0 / 1.1 }).clamp(0.2, 10.0);
        }
        let painter = ui.painter_at(area);
        painter.rect_filled(area, 0.0, Color32::from_gray(12));
        painter.text(
            area.left_top() + Vec2::splat(6.0),
            egui::Align2::LEFT_TOP,
            "3D",
            egui::FontId::proportional(13.0),
            Color32::from_gray(200),
        );
        if meshes.iter().all(|m| m.surface.triangles.is_empty()) {
            return;
        }
        let fresh = matches!(&self.drawn, Some((g, c, r, _))
            if *g == generation && *c == self.camera && *r == area);
        if !fresh {
            let mesh = Arc::new(project(meshes, self.camera, area));
            self.drawn = Some((generation, self.camera, area, mesh));
        }
        if let Some((_, _, _, mesh)) = &self.drawn {
            painter.add(Shape::Mesh(mesh.clone()));
        }
    }
}

/// LPS → view: x right, y down, depth away from the viewer, turned by the camera.
fn to_view(p: [f32; 3], camera: Camera) -> [f32; 3] {
    // from the front: the patient's left (+L) to the right, superior (+S) up, posterior away
    let (x, y, depth) = (p[0], -p[2], p[1]);
    let (sy, cy) = camera.yaw.sin_cos();
    let (x, depth) = (x * cy + depth * sy, depth * cy - x * sy);
    let (sp, cp) = camera.pitch.sin_cos();
    let (y, depth) = (y * cp - depth * sp, depth * cp + y * sp);
    [x, y, depth]
}

/// The surfaces as one screen mesh: fitted to `area`, front faces only, lit from the viewer,
/// far triangles first so near ones cover them.
fn project(meshes: &[SegmentMesh], camera: Camera, area: Rect) -> Mesh {
    let mut low = [f32::MAX; 3];
    let mut high = [f32::MIN; 3];
    for p in meshes.iter().flat_map(|m| &m.surface.positions) {
        for d in 0..3 {
            low[d] = low[d].min(p[d]);
            high[d] = high[d].max(p[d]);
        }
    }
    let centre: [f32; 3] = std::array::from_fn(|d| (low[d] + high[d]) / 2.0);
    let radius = (0..3)
        .map(|d| (high[d] - low[d]) / 2.0)
        .fold(0.0f32, |a, b| a.hypot(b))
        .max(1.0);
    let scale = area.width().min(area.height()) / (2.0 * radius) * camera.zoom;
    let screen = |p: [f32; 3]| {
        let v = to_view(
            [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]],
            camera,
        );
        (
            Pos2::new(
                area.center().x + v[0] * scale,
                area.center().y + v[1] * scale,
            ),
            v[2],
        )
    };
    // (depth, colour, corners) of each front-facing triangle
    let mut faces: Vec<(f32, Color32, [Pos2; 3])> = Vec::new();
    for mesh in meshes {
        let [r, g, b] = mesh.colour;
        let points: Vec<(Pos2, f32)> = mesh.surface.positions.iter().map(|p| screen(*p)).collect();
        for t in &mesh.surface.triangles {
            let [a, b2, c] = t.map(|i| points[i as usize]);
            // counter-clockwise seen from outside; with y down on screen, a face toward the
            // viewer has a negative signed area here
            let turn = (b2.0 - a.0).x * (c.0 - a.0).y - (b2.0 - a.0).y * (c.0 - a.0).x;
            if turn >= 0.0 {
                continue;
            }
            let normal = t
                .map(|i| mesh.surface.normals[i as usize])
                .into_iter()
                .fold([0.0f32; 3], |s, n| [s[0] + n[0], s[1] + n[1], s[2] + n[2]]);
            let facing = -to_view(normal, camera)[2]
                / (normal.iter().map(|c| c * c).sum::<f32>()).sqrt().max(1e-6);
            let light = 0.25 + 0.75 * facing.max(0.0);
            let shade = |c: u8| (f32::from(c) * light) as u8;
            let colour = Color32::from_rgb(shade(r), shade(g), shade(b));
            faces.push(((a.1 + b2.1 + c.1) / 3.0, colour, [a.0, b2.0, c.0]));
        }
    }
    faces.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Mesh::default();
    for (_, colour, corners) in faces {
        let base = out.vertices.len() as u32;
        for pos in corners {
            out.vertices.push(Vertex {
                pos,
                uv: egui::epaint::WHITE_UV,
                color: colour,
            });
        }
        out.indices.extend([base, base + 1, base + 2]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_the_front_left_is_right_and_head_is_up_and_a_quarter_turn_shows_the_side() {
        let camera = Camera::default();
        assert_eq!(to_view([1.0, 0.0, 0.0], camera), [1.0, 0.0, 0.0]);
        assert_eq!(to_view([0.0, 0.0, 1.0], camera), [0.0, -1.0, 0.0]);
        assert_eq!(
            to_view([0.0, 1.0, 0.0], camera)[2],
            1.0,
            "posterior is away"
        );
        let side = Camera {
            yaw: std::f32::consts::FRAC_PI_2,
            ..camera
        };
        let v = to_view([0.0, 1.0, 0.0], side);
        assert!((v[0] - 1.0).abs() < 1e-6 && v[2].abs() < 1e-6, "{v:?}");
    }
}
