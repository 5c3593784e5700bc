//! The real `lumen` binary in a real X session (Xvfb, no window manager), driven by X pointer
//! and key events from `xdotool` as a user's mouse and keyboard would: a box dragged around the
//! liver of the sample study, Enter, Ctrl+Q. What the user made is read back from the autosave the
//! app writes on quitting. Screens are read with `xwd`, to find the slice view and to wait for the
//! mask preview the user waits for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/xvfb.rs"]
mod xvfb;

use egui::{Rect, Vec2, pos2};
use lumen_app::ui::viewport::Placement;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xvfb::Xvfb;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", display)
        .output()
        .expect("xdotool runs (packaging/apt-packages.txt installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The X screen as RGB rows, from `xwd -root` (ZPixmap, 32 bits per pixel).
struct Screen {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

impl Screen {
    fn grab(display: &str) -> Self {
        let out = Command::new("xwd")
            .args(["-root", "-silent"])
            .env("DISPLAY", display)
            .output()
            .expect("xwd runs (packaging/apt-packages.txt installs x11-apps)");
        let xwd = out.stdout;
        let field =
            |i: usize| u32::from_be_bytes(xwd[4 * i..4 * i + 4].try_into().unwrap()) as usize;
        let (header, width, height) = (field(0), field(4), field(5));
        let (lsb_first, bits_per_pixel, bytes_per_line, colours) =
            (field(7) == 0, field(11), field(12), field(19));
        assert_eq!(bits_per_pixel, 32, "a 24-bit Xvfb screen");
        let pixels = &xwd[header + 12 * colours..];
        let rgb = (0..height)
            .flat_map(|y| (0..width).map(move |x| (y, x)))
            .map(|(y, x)| {
                let p = &pixels[y * bytes_per_line + 4 * x..][..4];
                if lsb_first {
                    [p[2], p[1], p[0]]
                } else {
                    [p[1], p[2], p[3]]
                }
            })
            .collect();
        Self { width, height, rgb }
    }

    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }

    /// The slice view: the black area of the window (the view's background and the air around
    /// the patient), as the columns and rows that are mostly black.
    fn slice_view(&self, window: (usize, usize)) -> Option<Rect> {
        let black = |x, y| self.at(x, y) == [0, 0, 0];
        let (w, h) = (window.0.min(self.width), window.1.min(self.height));
        let columns: Vec<usize> = (0..w)
            .filter(|&x| (0..h).filter(|&y| black(x, y)).count() > h / 4)
            .collect();
        let rows: Vec<usize> = (0..h)
            .filter(|&y| (0..w).filter(|&x| black(x, y)).count() > w / 4)
            .collect();
        let (x0, x1) = (*columns.first()?, *columns.last()? + 1);
        let (y0, y1) = (*rows.first()?, *rows.last()? + 1);
        Some(Rect::from_min_max(
            pos2(x0 as f32, y0 as f32),
            pos2(x1 as f32, y1 as f32),
        ))
    }

    /// The share of pixels that differ from `other`'s.
    fn changed_from(&self, other: &Screen) -> f64 {
        let differ = self
            .rgb
            .iter()
            .zip(&other.rgb)
            .filter(|(a, b)| a != b)
            .count();
        differ as f64 / self.rgb.len().max(1) as f64
    }

    /// The share of pixels in `area` whose colour passes `test`.
    fn share(&self, area: Rect, test: impl Fn([u8; 3]) -> bool) -> f64 {
        let (x0, y0) = (area.min.x as usize, area.min.y as usize);
        let (x1, y1) = (area.max.x as usize, area.max.y as usize);
        let hits = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| test(self.at(x, y)))
            .count();
        hits as f64 / ((x1 - x0) * (y1 - y0)).max(1) as f64
    }
}

/// Holds the machine for one test: a real window, its X server and its model runs share two
/// cores, and three at once starve each other's frames.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for the Lumen window; returns its X id.
fn lumen_window(display: &str, app: &mut App) -> String {
    let start = Instant::now();
    while xdotool(display, &["search", "--name", "^Lumen"]).is_empty() {
        if start.elapsed() > Duration::from_secs(120) || app.child.try_wait().unwrap().is_some() {
            let stderr = std::fs::read_to_string(app.home.path().join("stderr.txt"));
            panic!(
                "no Lumen window after {:?} (exit: {:?}); its stderr:\n{}",
                start.elapsed(),
                app.child.try_wait().unwrap(),
                stderr.unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let window = xdotool(display, &["search", "--name", "^Lumen"]);
    window.lines().next().unwrap().to_string()
}

/// `lumen` on the sample study, in a home folder of its own.
struct App {
    child: Child,
    home: tempfile::TempDir,
}

impl App {
    fn start(display: &str) -> Self {
        Self::start_with(display, &[])
    }

    /// As `start`, with `env` set in the app's environment.
    fn start_with(display: &str, env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lumen"))
            .env("DISPLAY", display)
            .env("LUMEN_HOME", home.path())
            .env("HOME", home.path())
            // one X pixel per egui point, whatever DPI the server reports
            .env("WINIT_X11_SCALE_FACTOR", "1")
            .env(
                "ORT_DYLIB_PATH",
                lumen_engine::runtime::locate_library().unwrap(),
            )
            .env_remove("WAYLAND_DISPLAY")
            // a bare X session: no D-Bus, so no desktop portal to show a file dialog
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_RUNTIME_DIR")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            // read back when the window does not come
            .stderr(std::fs::File::create(home.path().join("stderr.txt")).unwrap())
            .spawn()
            .unwrap();
        Self { child, home }
    }

    fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The sample's liver on the slice the app opens at (the middle one), from the TotalSegmentator
/// label map of this series, and the sample volume's size.
fn sample_liver() -> (lumen_study::Volume, usize, Vec<bool>) {
    let sample = lumen_app::paths::sample_study_dir();
    let series = &lumen_study::discover(&sample).unwrap().series[0];
    let volume = lumen_study::load_series(series).unwrap();
    let labels_path = repo().join("../shared/data/totalsegmentator/example_seg_dicom.nii.gz");
    let (labels, _) =
        lumen_annotation::export::nifti::reimport_nifti(&labels_path, &volume).unwrap();
    let [nx, ny, nz] = volume.dims;
    let z = nz / 2;
    let liver = labels.labels[z * nx * ny..(z + 1) * nx * ny]
        .iter()
        .map(|l| *l == 5)
        .collect();
    (volume, z, liver)
}

#[test]
fn a_box_dragged_with_the_x_pointer_segments_the_liver_and_survives_quitting() {
    let _alone = one_at_a_time();
    let x = Xvfb::start();
    let display = x.display.as_str();
    let mut app = App::start(display);
    let window = lumen_window(display, &mut app);

    let (volume, z, liver) = sample_liver();
    let [nx, ny, _] = volume.dims;
    // the slice on screen: the slice view fills with the CT (body tissue is bright)
    let mut view = Rect::NOTHING;
    wait_until(
        "the sample slice on screen",
        Duration::from_secs(120),
        || {
            let screen = Screen::grab(display);
            let Some(found) = screen.slice_view((1280, 860)) else {
                return false;
            };
            view = found;
            view.width() > 300.0 && screen.share(view, |[r, g, b]| r > 60 && r == g && g == b) > 0.1
        },
    );
    let placement = Placement::fit(view, (nx, ny), 1.0, Vec2::ZERO);
    let (mut x0, mut y0, mut x1, mut y1) = (nx, ny, 0, 0);
    for (i, _) in liver.iter().enumerate().filter(|(_, on)| **on) {
        let (x, y) = (i % nx, i / nx);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let from = placement.to_screen(x0 as f32, y0 as f32);
    let to = placement.to_screen(x1 as f32 + 1.0, y1 as f32 + 1.0);
    let at = |p: egui::Pos2| [format!("{}", p.x.round()), format!("{}", p.y.round())];

    // press, move in steps, release: the gesture of a hand on a mouse
    let [fx, fy] = at(from);
    xdotool(display, &["mousemove", &fx, &fy]);
    xdotool(display, &["mousedown", "1"]);
    for t in [0.1, 0.3, 0.5, 0.7, 0.9, 1.0] {
        let [mx, my] = at(from + (to - from) * t);
        xdotool(display, &["mousemove", &mx, &my]);
        std::thread::sleep(Duration::from_millis(50));
    }
    xdotool(display, &["mouseup", "1"]);
    // the preview appears with the pointer still: nothing else wakes the window
    let liver_on_screen = Rect::from_min_max(from, to);
    wait_until("the liver's mask preview", Duration::from_secs(120), || {
        // grey CT tinted by the preview's yellow
        let yellow = |[r, g, b]: [u8; 3]| r > b.saturating_add(60) && g > b.saturating_add(40);
        Screen::grab(display).share(liver_on_screen.shrink(4.0), yellow) > 0.3
    });
    // the keyboard goes to the focused window (no window manager gives focus on a click)
    xdotool(display, &["windowfocus", "--sync", &window]);
    xdotool(display, &["key", "Return"]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(display, &["key", "ctrl+q"]);
    assert!(
        app.wait_for_exit(Duration::from_secs(60)),
        "Ctrl+Q closes the window"
    );

    let autosaves: Vec<PathBuf> = std::fs::read_dir(app.home.path().join("data/autosave"))
        .expect("an autosave folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".nii.gz"))
        .collect();
    assert_eq!(autosaves.len(), 1, "one autosave: {autosaves:?}");
    let (saved, _) =
        lumen_annotation::export::nifti::reimport_nifti(&autosaves[0], &volume).unwrap();
    let accepted: Vec<bool> = saved.labels[z * nx * ny..(z + 1) * nx * ny]
        .iter()
        .map(|l| *l != 0)
        .collect();
    let plane = |mask: &[bool]| ndarray::Array2::from_shape_vec((ny, nx), mask.to_vec()).unwrap();
    let dice = lumen_engine::eval::dice(plane(&accepted).view(), plane(&liver).view());
    assert!(
        dice > 0.85,
        "the accepted liver agrees with its label: Dice {dice:.3}"
    );
    let segmented = saved.labels.iter().filter(|l| **l != 0).count();
    let other_slices = segmented - accepted.iter().filter(|a| **a).count();
    assert_eq!(other_slices, 0, "only the slice on screen was segmented");
}

#[test]
fn open_folder_in_a_session_without_d_bus_shows_lumens_chooser_which_opens_a_typed_folder() {
    open_folder_through_lumens_chooser(&[]);
}

#[test]
fn open_folder_where_d_bus_has_no_portal_falls_back_to_lumens_chooser() {
    // a bus address that answers nothing: the desktop dialog returns at once, empty
    open_folder_through_lumens_chooser(&[(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/lumen-test-bus",
    )]);
}

/// Opens the CHAOS CT folder with the X pointer and keyboard: Open folder…, a typed path, Return.
fn open_folder_through_lumens_chooser(env: &[(&str, &str)]) {
    let _alone = one_at_a_time();
    let chaos = repo()
        .join("../shared/data/chaos_ct_liver/Data_3D/DICOM_anon")
        .canonicalize()
        .unwrap();
    let x = Xvfb::start();
    let display = x.display.as_str();
    let mut app = App::start_with(display, env);
    let window = lumen_window(display, &mut app);
    let settings = app.home.path().join("config/settings.json");
    let recent = || {
        lumen_app::settings::load(&settings)
            .recent_studies
            .first()
            .cloned()
    };
    // the sample study opens first (it is remembered as the recent study)
    wait_until("the sample study", Duration::from_secs(120), || {
        recent().is_some()
    });

    // "Open folder…" is the first button of the menu bar, at the window's top left
    xdotool(display, &["mousemove", "40", "12"]);
    // a still screen first (the slice drawn, the hover shown), so a change is the chooser's
    let mut before = Screen::grab(display);
    wait_until("a still screen", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = Screen::grab(display);
        let still = now.changed_from(&before) == 0.0;
        before = now;
        still
    });
    xdotool(display, &["click", "1"]);
    // the chooser opens over the window (its backdrop dims all of it), its path field
    // taking the keyboard: a path, then Return
    wait_until("the chooser on screen", Duration::from_secs(30), || {
        Screen::grab(display).changed_from(&before) > 0.5
    });
    xdotool(display, &["windowfocus", "--sync", &window]);
    xdotool(display, &["key", "ctrl+a"]);
    xdotool(
        display,
        &["type", "--delay", "20", &chaos.display().to_string()],
    );
    xdotool(display, &["key", "Return"]);
    wait_until("the typed folder open", Duration::from_secs(120), || {
        recent().as_deref() == Some(chaos.as_path())
    });
}
