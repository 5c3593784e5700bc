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
    app_harness, box_the_liver_and_accept, drag_through, repo, snapshot_harness, step_until,
    step_until_within,
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
