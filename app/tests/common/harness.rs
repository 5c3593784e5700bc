//! The real app driven headless with egui_kittest, as a user drives it: what the GUI test
//! binaries share (the harness on the bundled model, waiting for workers, dragging on the view).

use egui::Key;
use egui_kittest::Harness;
use lumen_app::ui::LumenApp;
use std::path::PathBuf;
use std::time::Duration;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real app on the bundled model, at `height` points tall, keeping no settings and no
/// autosaves unless a test asks for them, and its caches in the test process's own folder.
pub fn app_harness(height: f32) -> Harness<'static, LumenApp> {
    app_harness_on("ct-starter", height)
}

/// As `app_harness`, on the bundled model `model`.
pub fn app_harness_on(model: &str, height: f32) -> Harness<'static, LumenApp> {
    super::common::isolated_home();
    let model = repo().join("assets/models").join(model);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, height))
        .wgpu()
        .build_eframe(|cc| LumenApp::new(&cc.egui_ctx, model, None));
    harness.state_mut().set_settings_file(None);
    harness.state_mut().set_autosave_folder(None);
    harness
}

/// Steps the UI until `done` holds, letting the background workers run in between.
pub fn step_until(
    harness: &mut Harness<'_, LumenApp>,
    what: &str,
    done: impl Fn(&LumenApp) -> bool,
) {
    step_until_within(harness, what, Duration::from_secs(120), done);
}

pub fn step_until_within(
    harness: &mut Harness<'_, LumenApp>,
    what: &str,
    limit: Duration,
    done: impl Fn(&LumenApp) -> bool,
) {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        harness.step();
        if done(harness.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for: {what}");
}

/// Drags the left button through image pixels `path` as a user does: move, press, moves in
/// steps, release, over the slice view (found by its label; it shows the whole slice, zoom 1,
/// no pan). One point is a click. The view is found again before every event: a note that
/// appears in the status bar meanwhile makes the view shorter, and the image moves with it.
pub fn drag_through(harness: &mut Harness<'_, LumenApp>, path: &[(f32, f32)]) {
    use egui_kittest::kittest::Queryable;
    use lumen_app::ui::viewport::{Placement, VIEW_LABEL};
    let [nx, ny, _] = harness.state().volume().unwrap().dims;
    drag_placed(harness, path, |harness| {
        let view = harness.get_by_label(VIEW_LABEL).rect();
        Placement::fit(view, (nx, ny), 1.0, egui::Vec2::ZERO)
    });
}

/// As `drag_through`, on the image at `placement` (any view).
pub fn drag_on(
    harness: &mut Harness<'_, LumenApp>,
    placement: lumen_app::ui::viewport::Placement,
    path: &[(f32, f32)],
) {
    drag_placed(harness, path, |_| placement);
}

/// The drag of `drag_through` with the image placed, before each event, by `placed`.
fn drag_placed(
    harness: &mut Harness<'_, LumenApp>,
    path: &[(f32, f32)],
    placed: impl Fn(&Harness<'_, LumenApp>) -> lumen_app::ui::viewport::Placement,
) {
    let at = |harness: &Harness<'_, LumenApp>, (x, y): (f32, f32)| placed(harness).to_screen(x, y);
    let (first, last) = (path[0], path[path.len() - 1]);
    harness.hover_at(at(harness, first));
    harness.step();
    harness.drag_at(at(harness, first));
    harness.step();
    for pair in path.windows(2) {
        for t in [0.25, 0.5, 0.75, 1.0] {
            let point = (
                pair[0].0 + (pair[1].0 - pair[0].0) * t,
                pair[0].1 + (pair[1].1 - pair[0].1) * t,
            );
            harness.hover_at(at(harness, point));
            harness.step();
        }
    }
    harness.drop_at(at(harness, last));
    harness.step();
}

pub fn drag_box(harness: &mut Harness<'_, LumenApp>, from: (f32, f32), to: (f32, f32)) {
    drag_through(harness, &[from, to]);
}

/// The liver on the slice on screen of the sample, from the TotalSegmentator label map of this
/// series: a box around it, the preview, Enter. Returns the slice and the liver's pixels on it.
pub fn box_the_liver_and_accept(harness: &mut Harness<'_, LumenApp>) -> (usize, Vec<bool>) {
    let labels_path = repo().join("../shared/data/totalsegmentator/example_seg_dicom.nii.gz");
    let (labels, _) = lumen_annotation::export::nifti::reimport_nifti(
        &labels_path,
        harness.state().volume().unwrap(),
    )
    .unwrap();
    let z = harness.state().current_slice().unwrap();
    let [nx, ny, _] = labels.dims;
    let liver: Vec<bool> = labels.labels[z * nx * ny..(z + 1) * nx * ny]
        .iter()
        .map(|l| *l == 5)
        .collect();
    let (mut x0, mut y0, mut x1, mut y1) = (nx, ny, 0, 0);
    for (i, _) in liver.iter().enumerate().filter(|(_, on)| **on) {
        let (x, y) = (i % nx, i / nx);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    assert!(x1 > x0 && y1 > y0, "the liver is on slice {z}");

    drag_box(harness, (x0 as f32, y0 as f32), (x1 as f32, y1 as f32));
    step_until(harness, "mask preview", LumenApp::has_preview);
    harness.key_press(Key::Enter);
    harness.step();
    (z, liver)
}

/// A left click at `at` with Shift held, as a keyboard and mouse give it: the modifier changes,
/// the button goes down and up, the modifier is let go.
pub fn shift_click(harness: &mut Harness<'_, LumenApp>, at: egui::Pos2) {
    use egui::Modifiers;
    harness.hover_at(at);
    harness.step();
    harness.event(egui::Event::ModifiersChanged(Modifiers::SHIFT));
    harness.step();
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Modifiers::SHIFT,
        });
        harness.step();
    }
    harness.event(egui::Event::ModifiersChanged(Modifiers::NONE));
    harness.run_steps(2);
}

/// The app for a test that takes a snapshot, which must not hold run times (they vary) nor
/// this machine's home folder.
pub fn snapshot_harness() -> Harness<'static, LumenApp> {
    let mut harness = app_harness(860.0);
    harness.state_mut().show_timings(false);
    harness
        .state_mut()
        .set_export_folder("/media/usb-stick/Lumen".into());
    harness
}
