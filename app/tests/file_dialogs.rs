//! Opening and saving where the user wants, through Lumen's own chooser (what a desktop without an
//! xdg-desktop-portal gets), driven with pointer and key events as a user does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use lumen_app::ui::LumenApp;
use lumen_app::ui::file_chooser::{NAME_LABEL, PATH_LABEL};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
#[path = "common/harness.rs"]
#[allow(dead_code)]
mod harness;
use harness::{app_harness, box_the_liver_and_accept, repo, step_until};

/// The app with Lumen's chooser only (never a desktop dialog, which a test cannot answer).
fn chooser_harness() -> Harness<'static, LumenApp> {
    let mut harness = app_harness(860.0);
    harness.state_mut().use_desktop_dialogs(false);
    harness
}

/// Clicks the widget labelled `label` and lets the window answer (what the click changes
/// shows on the frame after the one that took it).
fn click(harness: &mut Harness<'_, LumenApp>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_steps(2);
}

/// Clicks Open folder… and waits for Lumen's chooser (the start screen repeats the menu's Open
/// buttons: either will do).
fn open_the_folder_chooser(harness: &mut Harness<'_, LumenApp>) {
    harness
        .get_all_by_label("Open folder…")
        .next()
        .unwrap()
        .click();
    step_until_shown(harness, "Open this folder");
}

/// Opens the sample with the start screen's button, and accepts a box around its liver.
fn open_the_sample_and_accept_the_liver(harness: &mut Harness<'_, LumenApp>) {
    harness
        .get_all_by_label("Open sample study")
        .next()
        .unwrap()
        .click();
    step_until(harness, "study and model", LumenApp::is_ready);
    box_the_liver_and_accept(harness);
}

/// Steps until a widget labelled `label` is on screen, and a few frames more: a new dialog
/// settles its size and place over two frames, and a hand aims at where things stay.
fn step_until_shown(harness: &mut Harness<'_, LumenApp>, label: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        harness.step();
        if harness.query_by_label(label).is_some() {
            harness.run_steps(3);
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {label:?} to show");
}

/// Replaces the text of the field labelled `field` with `text` as typed, then presses Enter
/// (`enter`) or leaves the field as it is.
fn type_into(harness: &mut Harness<'_, LumenApp>, field: &str, text: &str, enter: bool) {
    // press and release in separate frames, as a hand does (a text field takes focus on that)
    let at = harness.get_by_label(field).rect().center();
    harness.hover_at(at);
    harness.step();
    harness.drag_at(at);
    harness.step();
    harness.drop_at(at);
    harness.step();
    assert!(
        harness.get_by_label(field).is_focused(),
        "{field} has the keyboard"
    );
    harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    harness.step();
    harness.get_by_label(field).type_text(text);
    harness.step();
    if enter {
        harness.key_press(Key::Enter);
        harness.step();
    }
}

/// Types `folder/` into the path field (the trailing `/` opens it) and waits for its listing.
fn go_to(harness: &mut Harness<'_, LumenApp>, folder: &Path) {
    type_into(harness, PATH_LABEL, &format!("{}/", folder.display()), true);
    let shown = folder.canonicalize().unwrap().display().to_string();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        harness.step();
        if harness.get_by_label(PATH_LABEL).value().as_deref() == Some(shown.as_str()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the chooser did not show {shown}: {:?}",
        harness.get_by_label(PATH_LABEL).value()
    );
}

#[test]
fn open_folder_without_a_portal_opens_lumens_chooser_and_the_chaos_series_through_it() {
    let chaos = repo().join("../shared/data/chaos_ct_liver/Data_3D");
    let mut harness = chooser_harness();
    open_the_folder_chooser(&mut harness);

    go_to(&mut harness, &chaos);
    // its sub-folders are listed with a trailing slash, and a click opens one
    click(&mut harness, "DICOM_anon/");
    let inside = chaos.join("DICOM_anon").canonicalize().unwrap();
    let inside = inside.display().to_string();
    step_until_shown(&mut harness, "i0000,0000b.dcm");
    assert_eq!(
        harness.get_by_label(PATH_LABEL).value().as_deref(),
        Some(inside.as_str())
    );
    click(&mut harness, "Open this folder");
    step_until(&mut harness, "the CHAOS series", |app| {
        app.volume().is_some()
    });

    let volume = harness.state().volume().unwrap();
    assert_eq!(volume.dims, [512, 512, 78], "the 78-slice CHAOS CT");
    assert_eq!(volume.modality, lumen_study::Modality::Ct);
    assert!(
        harness.query_by_label("Open this folder").is_none(),
        "the chooser closed"
    );
    assert!(harness.state().recent_studies()[0].ends_with("DICOM_anon"));
}

#[test]
fn a_typed_path_that_is_not_there_is_named_and_cancel_opens_nothing() {
    let mut harness = chooser_harness();
    open_the_folder_chooser(&mut harness);
    let missing = tempfile::tempdir().unwrap().path().join("no study here");
    type_into(
        &mut harness,
        PATH_LABEL,
        &missing.display().to_string(),
        true,
    );
    step_until_shown(
        &mut harness,
        &format!("{}: there is no such file or folder", missing.display()),
    );
    click(&mut harness, "Cancel");
    assert!(harness.query_by_label("Open this folder").is_none());
    assert!(harness.state().volume().is_none(), "nothing opened");
}

#[test]
fn save_as_writes_the_seg_where_the_user_chose_remembers_it_and_asks_before_replacing() {
    let chosen = tempfile::tempdir().unwrap();
    let mut harness = chooser_harness();
    open_the_sample_and_accept_the_liver(&mut harness);

    click(&mut harness, "Save as…");
    step_until_shown(&mut harness, "DICOM SEG…");
    click(&mut harness, "DICOM SEG…");
    step_until_shown(&mut harness, "Save");
    go_to(&mut harness, chosen.path());
    type_into(&mut harness, NAME_LABEL, "liver-seg.dcm", false);
    click(&mut harness, "Save");
    step_until(&mut harness, "the SEG on disk", |app| {
        !app.is_writing() && app.last_export().is_some()
    });

    let written = chosen.path().join("liver-seg.dcm");
    assert_eq!(harness.state().last_export(), Some(written.as_path()));
    // Copy path puts the written file's path on the clipboard
    step_until_shown(&mut harness, "Copy path");
    harness.get_by_label("Copy path").click();
    let mut commands = Vec::new();
    for _ in 0..3 {
        harness.step();
        commands.extend(harness.output().platform_output.commands.clone());
    }
    let copy = egui::OutputCommand::CopyText(written.display().to_string());
    assert!(commands.contains(&copy), "{commands:?}");
    let app = harness.state();
    let volume = app.volume().unwrap();
    let (expected, _) = app.document().unwrap().to_export(volume);
    let (read, segments) = lumen_annotation::export::seg::read_seg(&written, volume).unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(segments[0].name, "Liver");
    assert_eq!(read.labels, expected.labels, "voxel for voxel");

    // Again: the chooser starts where the user saved, with the name they gave, and asks
    // before replacing the file.
    click(&mut harness, "Save as…");
    step_until_shown(&mut harness, "DICOM SEG…");
    click(&mut harness, "DICOM SEG…");
    step_until_shown(&mut harness, "liver-seg.dcm");
    assert_eq!(
        harness.get_by_label(NAME_LABEL).value().as_deref(),
        Some("liver-seg.dcm")
    );
    click(&mut harness, "Save");
    harness.get_by_label_contains("already exists. Replace it?");
    let before = std::fs::metadata(&written).unwrap().modified().unwrap();
    click(&mut harness, "Keep it");
    click(&mut harness, "Cancel");
    assert!(!harness.state().is_writing(), "nothing written");
    assert_eq!(
        std::fs::metadata(&written).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn the_export_folder_is_a_setting_chosen_in_the_chooser() {
    let settings = tempfile::tempdir().unwrap();
    let settings_file = settings.path().join("settings.json");
    let exports = tempfile::tempdir().unwrap();
    let mut harness = chooser_harness();
    harness
        .state_mut()
        .set_settings_file(Some(settings_file.clone()));
    open_the_sample_and_accept_the_liver(&mut harness);

    click(&mut harness, "Change…");
    step_until_shown(&mut harness, "Open this folder");
    // Enter on a folder's path (no trailing slash) chooses it
    type_into(
        &mut harness,
        PATH_LABEL,
        &exports.path().display().to_string(),
        true,
    );
    step_until(&mut harness, "the new export folder", |app| {
        app.export_folder() == exports.path()
    });
    click(&mut harness, "NIfTI");
    step_until(&mut harness, "the NIfTI export", |app| {
        !app.is_writing() && app.last_export().is_some()
    });
    let written = harness.state().last_export().unwrap().to_path_buf();
    assert_eq!(written.parent(), Some(exports.path()));
    assert!(written.to_string_lossy().ends_with("-labels.nii.gz"));

    let start = Instant::now();
    while lumen_app::settings::load(&settings_file)
        .export_folder
        .as_deref()
        != Some(exports.path())
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the setting is saved"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn import_folder_takes_a_model_bundle_chosen_in_the_chooser() {
    let bundle = repo()
        .join("assets/models/ct-starter")
        .canonicalize()
        .unwrap();
    let mut harness = chooser_harness();
    let yours = |app: &LumenApp| {
        app.model_panel
            .entries()
            .iter()
            .filter(|e| e.origin == lumen_app::models::Origin::User)
            .count()
    };
    let before = yours(harness.state());
    click(&mut harness, "Import folder…");
    step_until_shown(&mut harness, "Open this folder");
    type_into(
        &mut harness,
        PATH_LABEL,
        &bundle.display().to_string(),
        true,
    );
    step_until(&mut harness, "the imported bundle", |app| {
        yours(app) == before + 1
    });
    let message = harness.state().model_panel.message.clone().unwrap();
    assert!(message.starts_with("Imported "), "{message}");
}
