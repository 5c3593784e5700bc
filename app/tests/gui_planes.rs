//! The three-plane layout, driven headless with egui_kittest: the planes across the slices, the
//! crosshair that links them, prompts and the brush in a reformatted plane, the 3D view.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use egui::{Key, Modifiers};
use lumen_app::ui::LumenApp;

mod common;
#[path = "common/harness.rs"]
#[allow(dead_code)]
mod harness;
use harness::{
    app_harness, app_harness_on, box_the_liver_and_accept, drag_on, repo, shift_click,
    snapshot_harness, step_until,
};

/// The pixels of `rect` (points) in a rendered frame.
fn pixels_in(image: &image::RgbaImage, rect: egui::Rect, pixels_per_point: f32) -> Vec<[u8; 4]> {
    let (x0, y0) = (
        (rect.min.x * pixels_per_point) as u32,
        (rect.min.y * pixels_per_point) as u32,
    );
    let (x1, y1) = (
        (rect.max.x * pixels_per_point) as u32,
        (rect.max.y * pixels_per_point) as u32,
    );
    let mut out = Vec::new();
    for y in y0..y1.min(image.height()) {
        for x in x0..x1.min(image.width()) {
            out.push(image.get_pixel(x, y).0);
        }
    }
    out
}

/// The liver shows in the coronal plane: its pixels there change when it is hidden, by about
/// the screen area of its voxels on the crosshair's row. The coronal view's placement.
fn check_the_liver_shows_in_the_coronal_view(
    harness: &mut egui_kittest::Harness<'_, LumenApp>,
    coronal: egui::Rect,
) -> lumen_app::ui::viewport::Placement {
    use egui_kittest::kittest::Queryable;
    let volume = harness.state().volume().unwrap().clone();
    let [nx, ny, nz] = volume.dims;
    let document = harness.state().document().unwrap();
    let in_plane: usize = (0..nz)
        .map(|slice| {
            document.slice_labels(slice)[(ny / 2) * nx..(ny / 2 + 1) * nx]
                .iter()
                .filter(|l| **l != 0)
                .count()
        })
        .sum();
    assert!(
        in_plane > 500,
        "the liver crosses the crosshair's row: {in_plane} voxels"
    );
    let ppp = harness.ctx.pixels_per_point();
    let aspect = (volume.spacing[2] / volume.spacing[0]) as f32;
    let placement = lumen_app::ui::viewport::Placement::fit_aspect(
        coronal,
        (nx, nz),
        aspect,
        1.0,
        egui::Vec2::ZERO,
    );
    let expected = in_plane as f32 * placement.scale().powi(2) * aspect * ppp * ppp;
    let shown = pixels_in(&harness.render().unwrap(), coronal, ppp);
    harness.get_by_label("show").click();
    harness.run_steps(2);
    let hidden = pixels_in(&harness.render().unwrap(), coronal, ppp);
    let changed = shown.iter().zip(&hidden).filter(|(a, b)| a != b).count();
    assert!(
        changed as f32 > 0.7 * expected && (changed as f32) < 1.3 * expected,
        "{changed} coronal pixels changed with the liver hidden, {expected:.0} expected"
    );
    harness.get_by_label("show").click();
    harness.run_steps(2);
    placement
}

/// The 3D view gets the liver's surface from the background, closed around its volume; a drag
/// turns it.
fn check_the_surface_encloses_the_segment_and_a_drag_turns_it(
    harness: &mut egui_kittest::Harness<'_, LumenApp>,
) {
    use egui_kittest::kittest::Queryable;
    let ppp = harness.ctx.pixels_per_point();
    step_until(harness, "the liver's surface", |app| {
        let surfaces = app.surfaces().unwrap();
        surfaces.made_of() == Some(app.document().unwrap().revision())
            && surfaces
                .meshes()
                .iter()
                .any(|m| !m.surface.triangles.is_empty())
    });
    harness.run_steps(2);
    let document = harness.state().document().unwrap();
    let segment_ml = document.volume_ml(document.segments()[0].label);
    let mesh_ml = harness.state().surfaces().unwrap().meshes()[0]
        .surface
        .enclosed_volume()
        / 1000.0;
    assert!(
        (mesh_ml - segment_ml).abs() < 0.15 * segment_ml,
        "the surface encloses {mesh_ml:.1} mL, the segment is {segment_ml:.1} mL"
    );
    let view_3d = harness
        .get_by_label(lumen_app::ui::view3d::VIEW_3D_LABEL)
        .rect();
    let front = pixels_in(&harness.render().unwrap(), view_3d, ppp);
    let lit = front.iter().filter(|p| p[0] > 60).count();
    assert!(lit > 1000, "{lit} pixels of the liver's surface drawn");
    let from = view_3d.center();
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    for t in 1..=4 {
        harness.hover_at(from + egui::vec2(20.0 * t as f32, 0.0));
        harness.step();
    }
    harness.drop_at(from + egui::vec2(80.0, 0.0));
    harness.run_steps(2);
    let turned = pixels_in(&harness.render().unwrap(), view_3d, ppp);
    let moved = front.iter().zip(&turned).filter(|(a, b)| a != b).count();
    assert!(
        moved > 500,
        "{moved} pixels of the 3D view changed by a drag"
    );
}

/// A Shift+click in the coronal view, a quarter across and on the third row of slices from the
/// top, puts the crosshair there (column nx/4, slice 2 from the head end), away from `accepted_z`;
/// the wheel over the sagittal view moves its column and the status bar shows the pointer's voxel;
/// a Shift+click on the acquisition plane moves the crosshair without a prompt.
fn check_the_crosshair_follows_shift_clicks_and_the_wheel(
    harness: &mut egui_kittest::Harness<'_, LumenApp>,
    coronal: &lumen_app::ui::viewport::Placement,
    sagittal: egui::Rect,
    accepted_z: usize,
) {
    use egui_kittest::kittest::Queryable;
    use lumen_app::ui::viewport::Placement;
    let volume = harness.state().volume().unwrap().clone();
    let [nx, ny, nz] = volume.dims;
    let head_first = volume.patient_from_voxel[2][2] > 0.0;
    shift_click(harness, coronal.to_screen(nx as f32 / 4.0 + 0.5, 2.5));
    let expected_z = if head_first { nz - 3 } else { 2 };
    assert_ne!(expected_z, accepted_z);
    assert_eq!(
        harness.state().crosshair().unwrap(),
        [nx / 4, ny / 2, expected_z]
    );
    assert_eq!(harness.state().current_slice(), Some(expected_z));
    harness.get_by_label(&format!("Slice {}/{nz}", expected_z + 1));

    // The wheel over the sagittal view moves its column; the pointer's voxel is in the status bar.
    harness.hover_at(sagittal.center());
    harness.step();
    harness.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, -1.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Modifiers::NONE,
    });
    // the status bar is drawn before the views, so it shows the pointer's voxel a frame later
    harness.run_steps(3);
    assert_eq!(harness.state().crosshair().unwrap()[0], nx / 4 + 1);
    let readout = {
        use egui_kittest::kittest::NodeT;
        let node = harness.get_by_label_contains(" mm · ");
        let node = node.accesskit_node();
        node.label().or_else(|| node.value()).unwrap_or_default()
    };
    assert!(readout.ends_with(" HU"), "{readout}");
    assert!(
        readout.starts_with(&format!("({}, ", nx / 4 + 1)),
        "the pointer is on the sagittal plane's column: {readout}"
    );

    // Shift+click on the acquisition plane moves the crosshair without a prompt.
    let view = harness
        .get_by_label(lumen_app::ui::viewport::VIEW_LABEL)
        .rect();
    let axial = Placement::fit(view, (nx, ny), 1.0, egui::Vec2::ZERO);
    shift_click(harness, axial.to_screen(100.5, 300.5));
    assert_eq!(harness.state().crosshair().unwrap(), [100, 300, expected_z]);
    assert!(
        !harness.state().has_preview(),
        "a Shift+click is not a prompt"
    );
}

#[test]
fn three_planes_link_by_the_crosshair_and_show_the_segment_in_every_plane() {
    use egui_kittest::kittest::Queryable;
    let mut harness = snapshot_harness();
    harness
        .state_mut()
        .open_folder(&repo().join("assets/sample/totalsegmentator-ct"));
    step_until(&mut harness, "study and model", LumenApp::is_ready);
    let (z, _) = box_the_liver_and_accept(&mut harness);
    harness.get_by_label("Both").click();
    harness.step();
    step_until(&mut harness, "propagation", |app| !app.is_propagating());

    harness.get_by_label("Three planes").click();
    harness.run_steps(2);
    let [nx, ny, _] = harness.state().volume().unwrap().dims;
    let [x, y, _] = harness.state().crosshair().unwrap();
    assert_eq!(
        (x, y),
        (nx / 2, ny / 2),
        "the crosshair starts at the slice's centre"
    );
    let coronal = harness.get_by_label("Coronal view").rect();
    let sagittal = harness.get_by_label("Sagittal view").rect();
    assert!(
        coronal.max.y <= sagittal.min.y + 1.0,
        "stacked: {coronal:?} {sagittal:?}"
    );

    let placement = check_the_liver_shows_in_the_coronal_view(&mut harness, coronal);
    check_the_surface_encloses_the_segment_and_a_drag_turns_it(&mut harness);
    check_the_crosshair_follows_shift_clicks_and_the_wheel(&mut harness, &placement, sagittal, z);
    harness.hover_at(egui::pos2(1.0, 1.0));
    harness.run_steps(2);
    harness.snapshot("three_planes_liver");
}

/// A box around the CHAOS liver in a plane across the slices through the liver's centre of
/// mass, Enter: the liver voxels of that plane, and none elsewhere. On the default model, W8A8
/// LiteMedSAM: the starter model has seen axial slices only (its Dice here is about 0.4).
fn box_the_chaos_liver_across(
    across: lumen_study::reformat::Across,
    name: &str,
) -> (
    egui_kittest::Harness<'static, LumenApp>,
    lumen_study::LabelVolume,
    lumen_study::reformat::Reformat,
) {
    use egui_kittest::kittest::Queryable;
    use lumen_app::ui::viewport::Placement;
    use lumen_study::reformat::Reformat;
    let mut harness = app_harness_on("litemedsam-w8a8", 860.0);
    let chaos = lumen_tests::shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon");
    harness.state_mut().open_folder(&chaos);
    step_until(&mut harness, "study and model", LumenApp::is_ready);
    harness.get_by_label("Three planes").click();
    harness.run_steps(2);
    let volume = harness.state().volume().unwrap().clone();
    let labels = lumen_tests::chaos_liver_labels(&volume);
    // through the liver's centre of mass
    let (mut sx, mut sy, mut n) = (0usize, 0usize, 0usize);
    let [nx, ny, _] = volume.dims;
    for (i, l) in labels.labels.iter().enumerate() {
        if *l == 1 {
            (sx, sy, n) = (sx + i % nx, sy + (i / nx) % ny, n + 1);
        }
    }
    let z = harness.state().current_slice().unwrap();
    harness.state_mut().move_crosshair([sx / n, sy / n, z]);
    harness.run_steps(2);
    let [cx, cy, _] = harness.state().crosshair().unwrap();
    let reformat = Reformat::new(across, &volume, [cx, cy, z]);
    let liver: Vec<bool> = reformat
        .gather(&labels.labels)
        .iter()
        .map(|l| *l == 1)
        .collect();
    let (w, h) = reformat.size();
    let plane = |m: &[bool]| ndarray::Array2::from_shape_vec((h, w), m.to_vec()).unwrap();
    let tight = lumen_engine::eval::tight_box(plane(&liver).view()).unwrap();

    let rect = harness.get_by_label(&format!("{name} view")).rect();
    let aspect = reformat.pixel_aspect(volume.spacing);
    let placement = Placement::fit_aspect(rect, (w, h), aspect, 1.0, egui::Vec2::ZERO);
    drag_on(
        &mut harness,
        placement,
        &[
            (tight.x0 as f32, tight.y0 as f32),
            (tight.x1 as f32 + 1.0, tight.y1 as f32 + 1.0),
        ],
    );
    step_until(&mut harness, "mask preview", LumenApp::has_preview);
    harness.key_press(Key::Enter);
    harness.step();
    harness.get_by_label_contains(&format!("in the {} plane", name.to_lowercase()));

    let document = harness.state().document().unwrap();
    let accepted: Vec<bool> = reformat
        .gather(document.labels())
        .iter()
        .map(|l| *l != 0)
        .collect();
    let dice = lumen_engine::eval::dice(plane(&accepted).view(), plane(&liver).view());
    let in_plane = accepted.iter().filter(|v| **v).count();
    let everywhere = document.labels().iter().filter(|l| **l != 0).count();
    eprintln!(
        "{name} box: Dice {dice:.3}, {in_plane} voxels accepted of {} labelled",
        liver.iter().filter(|v| **v).count()
    );
    assert_eq!(
        in_plane, everywhere,
        "voxels were written outside the {name} plane"
    );
    assert!(dice >= 0.85, "{name} liver Dice {dice:.3}");
    (harness, labels, reformat)
}

#[test]
fn a_box_in_the_coronal_plane_segments_the_liver_there_and_propagation_carries_it_on() {
    use egui_kittest::kittest::Queryable;
    use lumen_study::reformat::{Across, Cut, Reformat};
    let (mut harness, labels, coronal) = box_the_chaos_liver_across(Across::Row, "Coronal");
    // Propagate from the coronal plane: the next rows front and back, until Cancel.
    harness.get_by_label("Both").click();
    harness.step();
    step_until(&mut harness, "a few planes", |app| {
        app.propagation_done().is_some_and(|done| done >= 4)
    });
    harness.get_by_label("Cancel").click();
    harness.step();
    step_until(&mut harness, "the cancelled propagation", |app| {
        !app.is_propagating()
    });
    harness.get_by_label_contains("Cancelled propagation; kept");
    let volume = harness.state().volume().unwrap().clone();
    let document = harness.state().document().unwrap();
    let Cut::Across(_, y) = coronal.cut() else {
        unreachable!()
    };
    let filled: Vec<usize> = (0..volume.dims[1])
        .filter(|row| {
            let plane = Reformat::of(Across::Row, *row, &volume);
            plane.gather(document.labels()).iter().any(|l| *l != 0)
        })
        .collect();
    assert!(filled.len() >= 5, "planes filled: {filled:?}");
    assert!(
        filled.iter().all(|row| row.abs_diff(y) <= filled.len()),
        "the planes filled are the neighbours of row {y}: {filled:?}"
    );
    // over those planes, the propagated liver against the ground truth
    let (mut both, mut ours, mut truth) = (0usize, 0usize, 0usize);
    for row in &filled {
        let plane = Reformat::of(Across::Row, *row, &volume);
        let found = plane.gather(document.labels());
        for (a, b) in found.iter().zip(plane.gather(&labels.labels)) {
            let (a, b) = (*a != 0, b == 1);
            both += usize::from(a && b);
            ours += usize::from(a);
            truth += usize::from(b);
        }
    }
    let dice = 2.0 * both as f64 / (ours + truth) as f64;
    eprintln!(
        "coronal propagation: {} planes, Dice {dice:.3}",
        filled.len()
    );
    assert!(dice >= 0.85, "propagated coronal planes' Dice {dice:.3}");
}

#[test]
fn a_box_in_the_sagittal_plane_segments_the_liver_there_and_nowhere_else() {
    box_the_chaos_liver_across(lumen_study::reformat::Across::Column, "Sagittal");
}

#[test]
fn the_brush_paints_a_disc_round_in_millimetres_in_the_coronal_plane_only() {
    use egui_kittest::kittest::Queryable;
    use lumen_app::ui::viewport::Placement;
    use lumen_study::reformat::{Across, Reformat};
    let mut harness = app_harness(860.0);
    harness
        .state_mut()
        .open_folder(&repo().join("assets/sample/totalsegmentator-ct"));
    step_until(&mut harness, "study", |app| app.volume().is_some());
    harness.get_by_label("Three planes").click();
    harness.get_by_label("Add segment").click();
    harness.step();
    harness.get_by_label("Brush").click();
    harness.step();
    harness.state_mut().brush_radius = 10.0;
    let volume = harness.state().volume().unwrap().clone();
    let [_, ny, _] = volume.dims;
    let coronal = Reformat::of(Across::Row, ny / 2, &volume);
    let (w, h) = coronal.size();
    let aspect = coronal.pixel_aspect(volume.spacing);
    let rect = harness.get_by_label("Coronal view").rect();
    let placement = Placement::fit_aspect(rect, (w, h), aspect, 1.0, egui::Vec2::ZERO);
    // one dab in the middle of the plane: a disc 20 pixels wide is 20 / aspect slices tall
    let centre = (w as f32 / 2.0, h as f32 / 2.0);
    drag_on(&mut harness, placement, &[centre]);
    harness.get_by_label_contains("in the coronal plane");

    let document = harness.state().document().unwrap();
    let in_plane = coronal
        .gather(document.labels())
        .iter()
        .filter(|l| **l != 0)
        .count();
    let everywhere = document.labels().iter().filter(|l| **l != 0).count();
    assert_eq!(
        in_plane, everywhere,
        "the stroke reached outside the coronal plane"
    );
    // π r² in pixel widths², over the `aspect` widths a row is tall
    let expected = std::f32::consts::PI * 100.0 / aspect;
    assert!(
        (in_plane as f32 - expected).abs() < 0.25 * expected,
        "{in_plane} voxels painted, about {expected:.0} expected (aspect {aspect:.2})"
    );
    let slices: std::collections::BTreeSet<usize> = document
        .labels()
        .iter()
        .enumerate()
        .filter(|(_, l)| **l != 0)
        .map(|(i, _)| i / (volume.dims[0] * ny))
        .collect();
    let rows = 2.0 * 10.0 / aspect;
    assert!(
        (slices.len() as f32 - rows).abs() <= 1.5,
        "{} slices painted, about {rows:.1} expected",
        slices.len()
    );
}
