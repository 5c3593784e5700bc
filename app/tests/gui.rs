//! The real app, driven headless with egui_kittest: the bundled model on the bundled sample study.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use egui::{Key, Modifiers};
use lumen_app::ui::LumenApp;
use std::time::Duration;

mod common;
#[path = "common/harness.rs"]
#[allow(dead_code)]
mod harness;
use harness::{
    app_harness, app_harness_on, box_the_liver_and_accept, drag_on, drag_through, repo,
    shift_click, step_until, step_until_within,
};

#[test]
fn an_accept_survives_a_kill_and_comes_back_once_on_reopening() {
    use egui_kittest::kittest::Queryable;
    let study = repo().join("assets/sample/totalsegmentator-ct");
    let autosaves = tempfile::tempdir().unwrap();
    let open = |autosaves: &std::path::Path| {
        let mut harness = app_harness(860.0);
        harness
            .state_mut()
            .set_autosave_folder(Some(autosaves.to_path_buf()));
        harness.state_mut().open_folder(&study);
        step_until(&mut harness, "study and model", LumenApp::is_ready);
        harness
    };
    let autosaved = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".nii.gz"))
    };

    let mut harness = open(autosaves.path());
    let (z, _) = box_the_liver_and_accept(&mut harness);
    let document = harness.state().document().unwrap();
    assert_eq!(document.segments().len(), 1);
    let accepted = document.slice_count(z, document.segments()[0].label);
    assert!(accepted > 1000, "{accepted} voxels accepted");
    // Nothing closes the app: the accept reaches the disk by itself, in the background.
    step_until_within(
        &mut harness,
        "the autosave on disk",
        Duration::from_secs(20),
        |_| autosaved(autosaves.path()),
    );
    // As kill -9: no exit handler, no destructor runs.
    std::mem::forget(harness);

    let mut harness = open(autosaves.path());
    harness.run_steps(2);
    harness.get_by_label_contains("Restored the autosaved annotation of");
    let document = harness.state().document().unwrap();
    assert_eq!(document.segments().len(), 1, "the one segment is back");
    assert_eq!(document.segments()[0].name, "Liver");
    assert_eq!(
        document.slice_count(z, document.segments()[0].label),
        accepted,
        "voxel for voxel"
    );
    // Accepting again adds to the restored liver instead of making a second "Liver".
    box_the_liver_and_accept(&mut harness);
    assert_eq!(harness.state().document().unwrap().segments().len(), 1);

    // Export ▸ PNG writes the mask set as a new folder of the export folder.
    let exports = tempfile::tempdir().unwrap();
    harness
        .state_mut()
        .set_export_folder(exports.path().join("not yet made"));
    harness.get_by_label("PNG").click();
    harness.step();
    step_until(&mut harness, "PNG export", |app| !app.is_writing());
    let folder = harness
        .state()
        .last_export()
        .expect("the PNG set was written")
        .to_path_buf();
    let masks: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .flat_map(|segment| std::fs::read_dir(segment.path()).unwrap().flatten())
        .collect();
    assert_eq!(masks.len(), 1, "one slice of one segment: {masks:?}");
    let mask = image::open(masks[0].path()).unwrap().into_luma8();
    let on = mask.pixels().filter(|p| p.0[0] == 255).count();
    let document = harness.state().document().unwrap();
    let voxels = document.slice_count(z, document.segments()[0].label);
    assert_eq!(on, voxels);

    // The statistics table shows the liver's volume; Statistics CSV writes the same numbers.
    let spacing = harness.state().volume().unwrap().spacing;
    let ml = voxels as f64 * spacing.iter().product::<f64>() / 1000.0;
    harness.get_by_label("Statistics");
    harness.get_by_label(&format!("{ml:.1}"));
    harness.get_by_label("Statistics CSV").click();
    harness.step();
    step_until(&mut harness, "CSV export", |app| !app.is_writing());
    let csv = harness.state().last_export().unwrap().to_path_buf();
    assert!(
        csv.to_string_lossy().ends_with("-statistics.csv"),
        "{csv:?}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[0], "Liver", "{text}");
    assert_eq!(row[2], voxels.to_string(), "{text}");
    assert_eq!(row[3], format!("{ml:.3}"), "{text}");
    assert_eq!(row[8], "HU", "{text}");
}

/// The app for a test that takes a snapshot, which must not hold run times (they vary) nor
/// this machine's home folder.
fn snapshot_harness() -> egui_kittest::Harness<'static, LumenApp> {
    let mut harness = app_harness(860.0);
    harness.state_mut().show_timings(false);
    harness
        .state_mut()
        .set_export_folder("/media/usb-stick/Lumen".into());
    harness
}

#[test]
fn box_on_the_liver_accept_undo_redo() {
    let study = repo().join("assets/sample/totalsegmentator-ct");
    let autosaves = tempfile::tempdir().unwrap();
    let mut harness = snapshot_harness();
    harness
        .state_mut()
        .set_autosave_folder(Some(autosaves.path().to_path_buf()));
    harness.state_mut().open_folder(&study);
    step_until(&mut harness, "study and model", LumenApp::is_ready);

    let (z, liver) = box_the_liver_and_accept(&mut harness);

    let [nx, ny, _] = harness.state().volume().unwrap().dims;
    let document = harness.state().document().unwrap();
    let segment = document
        .segments()
        .first()
        .expect("accepting created a segment");
    assert_eq!(segment.name, "Liver");
    let accepted: Vec<bool> = document
        .slice_labels(z)
        .iter()
        .map(|l| *l == segment.label)
        .collect();
    let plane = |mask: &[bool]| ndarray::Array2::from_shape_vec((ny, nx), mask.to_vec()).unwrap();
    let dice = lumen_engine::eval::dice(plane(&accepted).view(), plane(&liver).view());
    assert!(
        dice >= 0.8,
        "accepted liver mask agrees with the label: Dice {dice:.3}"
    );
    // One 2 mm slice of an adult liver's cross-section: tens of millilitres.
    let volume = document.volume_ml(segment.label);
    assert!(
        (15.0..60.0).contains(&volume),
        "liver slab volume {volume:.1} mL"
    );
    let label = segment.label;

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(
        harness.state().document().unwrap().volume_ml(label),
        0.0,
        "undo removed the mask"
    );
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    assert!(
        (harness.state().document().unwrap().volume_ml(label) - volume).abs() < 1e-9,
        "redo brought it back"
    );

    // Propagation fills the neighbouring slices in the background, as one undoable step.
    harness
        .state_mut()
        .propagate(lumen_app::ui::app::Direction::Both);
    step_until(&mut harness, "propagation", |app| !app.is_propagating());
    let document = harness.state().document().unwrap();
    let filled = document.slices_with(label);
    assert!(
        filled.contains(&(z + 1)) && filled.contains(&(z - 1)),
        "neighbours of slice {z} were filled: {filled:?}"
    );
    assert!(
        document.volume_ml(label) > 2.0 * volume,
        "propagation added volume"
    );
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(
        harness.state().document().unwrap().slices_with(label),
        vec![z],
        "one undo removes the whole propagation"
    );

    harness.run_steps(2);
    let (_, decoder_ms) = harness.state().latency();
    assert!(
        decoder_ms.is_some_and(|ms| ms > 0.0),
        "the segmenter reports the mask latency"
    );
    harness.snapshot("main_window_liver");

    // Export to DICOM SEG in the background; it reads back onto the study voxel for voxel.
    let exports = tempfile::tempdir().unwrap();
    harness
        .state_mut()
        .set_export_folder(exports.path().to_path_buf());
    harness
        .state_mut()
        .export(lumen_app::jobs::writer::Format::DicomSeg);
    step_until(&mut harness, "SEG export", |app| !app.is_writing());
    let seg = harness
        .state()
        .last_export()
        .expect("the export was written")
        .to_path_buf();
    let app = harness.state();
    let (read_back, segments) =
        lumen_annotation::export::read_seg(&seg, app.volume().unwrap()).unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].name, "Liver");
    let document = app.document().unwrap();
    let exported: Vec<u16> = document.labels().iter().map(|l| u16::from(*l)).collect();
    assert_eq!(read_back.labels, exported, "SEG reads back voxel-exact");
}

#[test]
fn requantize_from_the_model_panel_then_switch_to_the_new_model() {
    use egui_kittest::kittest::Queryable;
    let user_models = tempfile::tempdir().unwrap();
    let mut harness = app_harness(1000.0);
    harness
        .state_mut()
        .model_panel
        .set_user_dir(user_models.path().to_path_buf());
    step_until(&mut harness, "model", |app| app.model().ready().is_some());
    let bundled = harness.state().model_panel.entries().len();
    assert!(bundled >= 1);

    harness.get_by_label("Requantize…").click();
    harness.step();
    harness.step();
    harness.get_by_label("quick").click();
    harness.step();
    assert_eq!(
        harness.state().model_panel.settings.preset,
        lumen_engine::quant::Preset::Quick
    );
    harness.get_by_label("Start").click();
    harness.step();
    harness.step();
    assert!(harness.state().model_panel.is_requantizing());
    // Synthesis of the quick set runs here unless an earlier run cached it.
    step_until_within(
        &mut harness,
        "requantization",
        Duration::from_secs(900),
        |app| !app.model_panel.is_requantizing(),
    );
    let message = harness
        .state()
        .model_panel
        .message
        .clone()
        .unwrap_or_default();
    assert!(message.starts_with("Made "), "{message}");

    let made: Vec<_> = harness
        .state()
        .model_panel
        .entries()
        .iter()
        .filter(|e| e.origin == lumen_app::models::Origin::User)
        .cloned()
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].precision, "W8A8");
    assert!(made[0].dir.starts_with(user_models.path()));

    harness
        .get_by_label_contains("ct-starter-w8a8 · W8A8 ·")
        .click();
    harness.step();
    step_until(&mut harness, "the quantized model", |app| {
        app.model()
            .ready()
            .is_some_and(|m| m.name.starts_with("ct-starter-w8a8"))
    });

    // Requantizing the quantized model starts again from the full-precision bundle it came from.
    harness.get_by_label("Requantize…").click();
    harness.step();
    harness.step();
    harness.get_by_label("Start").click();
    harness.step();
    harness.step();
    step_until_within(
        &mut harness,
        "the second requantization",
        Duration::from_secs(900),
        |app| !app.model_panel.is_requantizing(),
    );
    let message = harness.state().model_panel.message.clone();
    assert!(
        message.as_deref().unwrap_or_default().starts_with("Made "),
        "{message:?}"
    );
    let entries = harness.state().model_panel.entries();
    let starter = entries.iter().find(|e| e.name == "ct-starter").unwrap();
    let made: Vec<_> = entries
        .iter()
        .filter(|e| e.origin == lumen_app::models::Origin::User)
        .collect();
    assert_eq!(made.len(), 2, "{made:?}");
    for copy in made {
        assert_eq!(copy.name, "ct-starter-w8a8", "{copy:?}");
        assert_eq!(
            copy.base_encoder_sha256.as_ref(),
            Some(&starter.encoder_sha256)
        );
    }
}

#[test]
fn start_screen_opens_the_sample_study_remembers_it_in_the_settings_and_f1_shows_the_shortcuts() {
    use egui_kittest::kittest::Queryable;
    let config = tempfile::tempdir().unwrap();
    let settings_file = config.path().join("settings.json");
    let mut harness = app_harness(860.0);
    harness
        .state_mut()
        .set_settings_file(Some(settings_file.clone()));
    harness.step();
    assert!(harness.state().recent_studies().is_empty());
    // The start screen and the menu both offer the sample; click the start screen's.
    let buttons = harness.query_all_by_label("Open sample study").count();
    assert_eq!(buttons, 2, "menu and start screen");
    harness
        .query_all_by_label("Open sample study")
        .last()
        .unwrap()
        .click();
    step_until(&mut harness, "the sample study", LumenApp::is_ready);
    assert_eq!(harness.state().volume().unwrap().dims[2], 20);
    let sample = lumen_app::paths::sample_study_dir();
    assert_eq!(
        harness.state().recent_studies(),
        std::slice::from_ref(&sample)
    );
    // The list is written in the background; it reaches the file.
    let start = std::time::Instant::now();
    while lumen_app::settings::load(&settings_file).recent_studies != std::slice::from_ref(&sample)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "recent list not saved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert!(!harness.state().shortcuts_shown());
    harness.key_press(Key::F1);
    harness.step();
    assert!(harness.state().shortcuts_shown());
    harness.get_by_label("Keyboard and mouse");
}

#[test]
fn brush_paints_the_active_segment_and_eraser_and_undo_take_it_back() {
    use egui_kittest::kittest::Queryable;

    let study = repo().join("assets/sample/totalsegmentator-ct");
    let mut harness = app_harness(860.0);
    harness.state_mut().open_folder(&study);
    step_until(&mut harness, "study", |app| app.volume().is_some());
    harness.get_by_label("Add segment").click();
    harness.step();
    let z = harness.state().current_slice().unwrap();
    let count = |app: &LumenApp| app.document().unwrap().slice_count(z, 1);
    assert_eq!(count(harness.state()), 0);

    harness.get_by_label("Brush").click();
    harness.step();
    harness.state_mut().brush_radius = 5.0;
    drag_through(
        &mut harness,
        &[(200.0, 250.0), (230.0, 250.0), (260.0, 250.0)],
    );
    let painted = count(harness.state());
    // A 60 px stroke, 10 px wide, with round ends: about 60·10 + π·5² ≈ 680 voxels.
    assert!((600..=760).contains(&painted), "{painted} voxels painted");

    harness.get_by_label("Eraser").click();
    harness.step();
    drag_through(&mut harness, &[(230.0, 250.0)]);
    let after_erase = count(harness.state());
    assert!(
        after_erase < painted - 50,
        "{after_erase} of {painted} left"
    );
    harness.state_mut().undo();
    assert_eq!(
        count(harness.state()),
        painted,
        "undo brings the erased voxels back"
    );
    harness.state_mut().undo();
    assert_eq!(count(harness.state()), 0, "undo removes the stroke");
}

#[test]
fn series_browser_lists_the_series_of_a_folder_with_thumbnails_and_opens_another() {
    // Two series in one folder: the 20-slice sample CT and three CHAOS slices.
    let dir = tempfile::tempdir().unwrap();
    let copy_all = |from: &std::path::Path, take: usize| {
        let mut files: Vec<_> = std::fs::read_dir(from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.extension().is_some_and(|e| e == "md" || e == "txt"))
            .collect();
        files.sort();
        for f in files.iter().take(take) {
            std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    };
    copy_all(
        &repo().join("assets/sample/totalsegmentator-ct"),
        usize::MAX,
    );
    copy_all(
        &repo().join("../shared/data/chaos_ct_liver/Data_3D/DICOM_anon"),
        3,
    );
    let folder = dir.path().to_path_buf();
    let mut harness = app_harness(860.0);
    harness.state_mut().open_folder(&folder);
    step_until(&mut harness, "the folder", |app| app.volume().is_some());
    let (count, open, _) = harness.state().series_overview();
    assert!(count >= 2, "{count} series");
    step_until(&mut harness, "thumbnails", |app| {
        app.series_overview().2 == count
    });
    let other = (open + 1) % count;
    let before = harness.state().volume().unwrap().series_description.clone();
    harness.state_mut().open_series(other);
    step_until(&mut harness, "the other series", |app| {
        app.series_overview().1 == other
    });
    let after = &harness.state().volume().unwrap().series_description;
    assert_ne!(*after, before, "the other series is open");
    assert_eq!(
        harness.state().series_overview().0,
        count,
        "the list is kept"
    );
}

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

/// Presses `button` at `from`, moves to `to` in four steps, releases: a drag with any button.
fn drag_button(
    harness: &mut egui_kittest::Harness<'_, LumenApp>,
    button: egui::PointerButton,
    from: egui::Pos2,
    to: egui::Pos2,
) {
    harness.hover_at(from);
    harness.step();
    let press = |pressed, pos| egui::Event::PointerButton {
        pos,
        button,
        pressed,
        modifiers: Modifiers::NONE,
    };
    harness.event(press(true, from));
    harness.step();
    for t in 1..=4 {
        harness.hover_at(from + (to - from) * (t as f32 / 4.0));
        harness.step();
    }
    harness.event(press(false, to));
    harness.step();
}

fn wheel(harness: &mut egui_kittest::Harness<'_, LumenApp>, notches: f32, modifiers: Modifiers) {
    harness.event_modifiers(
        egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, notches),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers,
        },
        modifiers,
    );
    harness.run_steps(2);
}

#[test]
fn right_drag_sets_the_window_middle_drag_pans_the_wheel_steps_and_ctrl_wheel_zooms() {
    use egui_kittest::kittest::Queryable;
    let mut harness = app_harness(860.0);
    harness
        .state_mut()
        .open_folder(&repo().join("assets/sample/totalsegmentator-ct"));
    step_until(&mut harness, "study", |app| app.volume().is_some());
    harness.run_steps(2);
    let view = harness
        .get_by_label(lumen_app::ui::viewport::VIEW_LABEL)
        .rect();
    let centre = view.center();
    let (window, zoom, pan) = harness.state().view_state().unwrap();

    // right-drag: rightwards widens the window, downwards raises the level, 2 units a point of
    // the pointer's travel, once (each drag frame is redrawn after its command is applied)
    drag_button(
        &mut harness,
        egui::PointerButton::Secondary,
        centre,
        centre + egui::vec2(40.0, 20.0),
    );
    let (after, _, _) = harness.state().view_state().unwrap();
    assert!(
        (after.width - window.width - 80.0).abs() < 1e-6
            && (after.center - window.center - 40.0).abs() < 1e-6,
        "{window:?} → {after:?}"
    );
    harness.get_by_label(&format!("W {:.0} / L {:.0}", after.width, after.center));

    // middle-drag pans by the pointer's travel
    drag_button(
        &mut harness,
        egui::PointerButton::Middle,
        centre,
        centre + egui::vec2(-30.0, 25.0),
    );
    let (_, _, panned) = harness.state().view_state().unwrap();
    let travel = panned - pan;
    assert!(
        (travel - egui::vec2(-30.0, 25.0)).length() < 1e-3,
        "panned by {travel:?}"
    );

    // the wheel steps one slice a notch; with Ctrl it zooms
    let z = harness.state().current_slice().unwrap();
    harness.hover_at(centre);
    harness.step();
    wheel(&mut harness, -1.0, Modifiers::NONE);
    assert_eq!(harness.state().current_slice(), Some(z + 1));
    wheel(&mut harness, 1.0, Modifiers::NONE);
    assert_eq!(harness.state().current_slice(), Some(z));
    wheel(&mut harness, 1.0, Modifiers::COMMAND);
    let (_, zoomed, _) = harness.state().view_state().unwrap();
    assert!(zoomed > zoom * 1.05, "zoom {zoom} → {zoomed}");
    assert_eq!(
        harness.state().current_slice(),
        Some(z),
        "Ctrl+wheel is not a slice step"
    );
}

#[test]
fn a_long_status_note_wraps_inside_the_window_instead_of_running_off_it() {
    use egui_kittest::kittest::Queryable;
    let mut harness = app_harness(860.0);
    harness
        .state_mut()
        .open_folder(&repo().join("assets/sample/totalsegmentator-ct"));
    step_until(&mut harness, "study", |app| app.volume().is_some());
    harness.get_by_label("Add segment").click();
    harness.step();
    // an export folder that cannot be made, with a long name: the failure names it whole
    let long = format!("/proc/no-such-folder-{}", "with-a-long-name-".repeat(12));
    harness.state_mut().set_export_folder(long.clone().into());
    harness.get_by_label("NIfTI").click();
    harness.step();
    step_until(&mut harness, "the failed export", |app| !app.is_writing());
    harness.run_steps(2);
    let note = harness.get_by_label_contains("Export failed");
    let rect = note.rect();
    assert!(
        rect.max.x <= 1280.0 + 0.5 && rect.height() > 20.0,
        "the note runs to x = {} in a 1280-point window, {} tall",
        rect.max.x,
        rect.height()
    );
}

/// A study folder holding a link to the whole disk: while the search runs, the status bar counts
/// the files it has found and read, and Cancel loading stops it (the GUI used to show "Opening
/// the study…" with nothing moving).
#[test]
fn a_folder_search_shows_its_progress_and_cancel_stops_it() {
    use egui_kittest::kittest::{NodeT, Queryable};
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("everything")).unwrap();
    let mut harness = app_harness(860.0);
    harness.state_mut().open_folder(dir.path());
    let searching = |harness: &egui_kittest::Harness<'_, LumenApp>| {
        let node = harness.query_by_label_contains("files read")?;
        let node = node.accesskit_node();
        let text = node.label().or_else(|| node.value()).unwrap_or_default();
        let counts = text
            .strip_prefix("searching: ")?
            .strip_suffix(" files read")?;
        let (read, found) = counts.split_once('/')?;
        Some((read.parse::<usize>().ok()?, found.parse::<usize>().ok()?))
    };
    let start = std::time::Instant::now();
    let (read, found) = loop {
        harness.step();
        if let Some((read, found)) = searching(&harness).filter(|&(_, found)| found > 100) {
            break (read, found);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no search progress shown"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(read <= found, "{read}/{found}");
    harness.get_by_label("Cancel loading").click();
    let start = std::time::Instant::now();
    while searching(&harness).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the search went on after Cancel"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(25));
    }
    harness.run_steps(2);
    harness.get_by_label_contains("cancelled");
    assert!(harness.state().volume().is_none(), "nothing was opened");
}
