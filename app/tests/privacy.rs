//! Lumen keeps its promise that nothing leaves the machine: the real `lumen` binary, the GUI
//! under Xvfb and `lumen bench`, traced by strace for every network system call. The ONNX
//! Runtime 1.32 library ships 1DS telemetry that resolves a Microsoft host about ten seconds
//! after start and keeps a device id under `~/.cache/Microsoft`; neither may happen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/xvfb.rs"]
mod xvfb;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use xvfb::Xvfb;

/// A home folder of the test's own, so whatever the process writes under `~` is seen.
struct Sandbox {
    home: tempfile::TempDir,
    /// strace's log, kept out of the home folder it watches
    logs: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn trace_file(&self) -> PathBuf {
        self.logs.path().join("network.strace")
    }

    /// `lumen ARGS` under strace, with HOME here and Lumen's own folders under it.
    fn lumen(&self, args: &[&str]) -> Command {
        // found before HOME moves: the library is provisioned into the real user's cache
        let library = lumen_engine::runtime::locate_library().unwrap();
        let mut command = Command::new("strace");
        command
            .args([
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-e",
                "trace=network,openat",
                "-o",
            ])
            .arg(self.trace_file())
            .arg(env!("CARGO_BIN_EXE_lumen"))
            .args(args)
            .env("HOME", self.home())
            .env("LUMEN_HOME", self.home().join("lumen"))
            .env("ORT_DYLIB_PATH", library)
            .env_remove("ORT_DISABLE_TELEMETRY")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        command
    }

    /// The traced calls that reach beyond the process and the X display.
    fn network_calls(&self) -> Vec<String> {
        let trace = std::fs::read_to_string(self.trace_file()).expect("strace wrote its log");
        trace
            .lines()
            .filter(|line| reaches_out(line))
            .map(str::to_string)
            .collect()
    }

    /// Files the process opened for writing outside Lumen's own folder (devices and the
    /// kernel's files aside), and anything it left in the home folder besides that folder.
    fn written_outside_lumen(&self) -> Vec<String> {
        let lumen = self.home().join("lumen");
        let trace = std::fs::read_to_string(self.trace_file()).unwrap();
        let mut written: Vec<String> = trace
            .lines()
            .filter_map(opened_for_writing)
            .filter(|p| {
                !Path::new(p).starts_with(&lumen)
                    && !["/dev/", "/proc/", "/sys/"]
                        .iter()
                        .any(|k| p.starts_with(k))
            })
            .collect();
        let mut found = Vec::new();
        walk(self.home(), &mut found);
        written.extend(
            found
                .into_iter()
                .filter(|p| !p.starts_with(&lumen))
                .map(|p| p.display().to_string()),
        );
        written
    }
}

/// The path of a successful `openat` for writing in one strace line.
fn opened_for_writing(line: &str) -> Option<String> {
    let call = line.split_once("openat(")?.1;
    let writes = ["O_WRONLY", "O_RDWR", "O_CREAT"]
        .iter()
        .any(|f| call.contains(f));
    let failed = call
        .rsplit_once(" = ")
        .is_none_or(|(_, r)| r.starts_with('-'));
    if !writes || failed {
        return None;
    }
    Some(call.split('"').nth(1)?.to_string())
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found);
        }
        found.push(path);
    }
}

/// In one strace line: a network socket (IPv4, IPv6, raw packets), the resolver's files being
/// read (a host name lookup), or a connection to a local socket other than the desktop's own:
/// the X display, the D-Bus session bus (accessibility, file dialogs) and the name-service cache,
/// which the graphics driver asks for the account's home folder (a host lookup that went that
/// way on a machine running nscd would still show here as the resolver files or a socket when
/// nscd is absent, as on CI).
fn reaches_out(line: &str) -> bool {
    let internet = ["AF_INET", "AF_INET6", "AF_PACKET", "PF_INET"]
        .iter()
        .any(|family| line.contains(family));
    let resolver = [
        "\"/etc/resolv.conf\"",
        "\"/etc/hosts\"",
        "\"/etc/gai.conf\"",
    ]
    .iter()
    .any(|file| line.contains(file));
    let desktop = [
        ".X11-unix/X",
        "/run/user/",
        "/var/run/nscd/socket",
        "/run/nscd/socket",
    ];
    let local_connect = line.contains("connect(")
        && line.contains("AF_UNIX")
        && !desktop.iter().any(|socket| line.contains(socket));
    internet || resolver || local_connect
}

#[test]
fn the_strace_filter_flags_what_it_should() {
    // seen from ONNX Runtime 1.32's telemetry without the opt-out
    let dns = r#"812 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 23"#;
    let v6 = "15308 socket(AF_INET6, SOCK_DGRAM, IPPROTO_IP) = 8";
    let hosts = r#"812 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 9"#;
    let daemon = r#"9 connect(4, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 42) = 0"#;
    assert!(reaches_out(dns) && reaches_out(v6) && reaches_out(hosts) && reaches_out(daemon));
    let display = r#"811 connect(3, {sa_family=AF_UNIX, sun_path=@"/tmp/.X11-unix/X97"}, 20) = 0"#;
    let unix = "811 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3";
    assert!(!reaches_out(display) && !reaches_out(unix));
    let cache = r#"5 openat(AT_FDCWD, "/root/.cache/mesa_shader_cache/index", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 8"#;
    assert_eq!(
        opened_for_writing(cache).as_deref(),
        Some("/root/.cache/mesa_shader_cache/index")
    );
    let read = r#"5 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 8"#;
    let missing =
        r#"5 openat(AT_FDCWD, "/x/y", O_WRONLY|O_CREAT, 0644) = -1 ENOENT (No such file)"#;
    assert_eq!(opened_for_writing(read), None);
    assert_eq!(opened_for_writing(missing), None);
}

#[test]
fn bench_opens_no_network_socket_and_writes_nothing_outside_its_folders() {
    let sandbox = Sandbox::new();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/ct-starter");
    // Long enough (about 20 s on a 2-core machine) for the library's first upload, which comes
    // about ten seconds in; its device id under ~/.cache/Microsoft appears at once.
    let out = sandbox
        .lumen(&["bench", "--model", model.to_str().unwrap(), "--runs", "100"])
        .output()
        .expect("strace runs (packaging/apt-packages.txt installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sandbox.network_calls(), Vec::<String>::new());
    assert_eq!(sandbox.written_outside_lumen(), Vec::<String>::new());
}

#[test]
fn the_gui_stays_offline_and_inside_its_folders_for_thirty_seconds() {
    let sandbox = Sandbox::new();
    let x = Xvfb::start();
    let mut gui = sandbox
        .lumen(&[])
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace runs");
    std::thread::sleep(Duration::from_secs(32));
    let still_running = gui.try_wait().unwrap().is_none();
    // the app itself, strace's child; strace then ends with it
    let _ = Command::new("pkill")
        .args(["-TERM", "-P", &gui.id().to_string()])
        .status();
    let output = gui.wait_with_output().unwrap();
    assert!(
        still_running,
        "the GUI ran for the whole time: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = std::fs::read_to_string(sandbox.trace_file()).unwrap();
    assert!(
        trace.contains(".X11-unix/X"),
        "the trace sees the app's own connection to the display: {trace}"
    );
    assert_eq!(sandbox.network_calls(), Vec::<String>::new());
    assert_eq!(sandbox.written_outside_lumen(), Vec::<String>::new());
    let microsoft = sandbox.home().join(".cache/Microsoft");
    assert!(!microsoft.exists(), "{} was written", microsoft.display());
}
