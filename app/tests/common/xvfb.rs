//! An X server of a test's own (Xvfb), for tests that run the real `lumen` window.
//! Included by path in the test binaries that need it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An X server of the test's own on a free display number.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Self {
        // one at a time: tests of one binary run in parallel and would pick the same number
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        // a killed server leaves its lock and its socket behind: free means neither is there
        let number = (90..190)
            .find(|n| {
                !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x900x24",
                "-nolisten",
                "tcp",
                // no server reset when the last client leaves (an xdotool call): a window
                // connecting during the reset is refused
                "-noreset",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (packaging/apt-packages.txt installs it)");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "Xvfb did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // the socket comes before the server answers: wait for an answer
        let answers = || {
            Command::new("xdotool")
                .arg("getdisplaygeometry")
                .env("DISPLAY", &display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        while !answers() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Xvfb {display} did not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, display }
    }
}

impl Drop for Xvfb {
    /// SIGTERM, so the server removes its lock and socket.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
