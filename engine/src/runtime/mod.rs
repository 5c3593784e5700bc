//! The ONNX Runtime environment: finding the shared library, one environment per process,
//! and sessions with Lumen's thread and optimization settings.

mod library;
mod session;

pub use library::{LIBRARY_FILE, ORT_VERSION, candidate_paths, locate_library};
pub use session::{SessionConfig, cores, load_session, load_session_from_memory};

use std::path::PathBuf;
use std::sync::OnceLock;

/// Why ONNX Runtime could not be used. Every message says what is missing and how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime {ORT_VERSION} ({LIBRARY_FILE}) was not found. Looked in: {searched}. \
         Install it with `python3 packaging/ort/provision.py` (or build Lumen with cargo, which does it), \
         or point ORT_DYLIB_PATH at the library."
    )]
    LibraryNotFound { searched: String },
    #[error(
        "ONNX Runtime library {path} could not be loaded: {reason}. \
         Re-install it with `python3 packaging/ort/provision.py` or point ORT_DYLIB_PATH at a working {LIBRARY_FILE}."
    )]
    LibraryLoad { path: PathBuf, reason: String },
    #[error("ONNX Runtime could not create its environment: {0}")]
    Environment(String),
    #[error("ONNX Runtime could not load model {path}: {reason}")]
    Session { path: String, reason: String },
}

/// The process's one ONNX Runtime environment, kept alive for the life of the process
/// (ort only holds a weak reference to it).
static ENVIRONMENT: OnceLock<Result<(ort::environment::Environment, PathBuf), RuntimeError>> =
    OnceLock::new();

/// Loads ONNX Runtime and creates the environment once; later calls return the first outcome.
/// Returns the path of the library in use.
pub fn init() -> Result<PathBuf, RuntimeError> {
    environment().map(|(_, path)| path.clone())
}

/// The version the library in use reports (`OrtGetApiBase()->GetVersionString()`), loading it
/// first if need be: `ORT_DYLIB_PATH` may name any build, whatever its file name says.
pub fn library_version() -> Result<String, RuntimeError> {
    let path = init()?;
    let failed = |reason: String| RuntimeError::LibraryLoad {
        path: path.clone(),
        reason,
    };
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: the library is already loaded (by `init`), so this only takes another reference to
    // it. `OrtGetApiBase` takes nothing and returns a pointer to a static table, whose
    // `GetVersionString` returns a static NUL-terminated string; both are checked for null.
    #[allow(unsafe_code)]
    unsafe {
        let library = libloading::Library::new(&path).map_err(|e| failed(e.to_string()))?;
        let get_api_base = library
            .get::<GetApiBase>(b"OrtGetApiBase")
            .map_err(|e| failed(e.to_string()))?;
        let base = get_api_base();
        if base.is_null() {
            return Err(failed("OrtGetApiBase returned nothing".into()));
        }
        let version = ((*base).GetVersionString)();
        if version.is_null() {
            return Err(failed("GetVersionString returned nothing".into()));
        }
        Ok(std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned())
    }
}

/// The variable that turns off ONNX Runtime's 1DS telemetry on Linux (on since 1.29). The library
/// reads it when it starts its telemetry provider, before any API call could disable it, so it
/// must be in the environment before the library is loaded; `with_telemetry(false)` alone still
/// lets the start-up events out and writes a device id under `~/.cache/Microsoft`.
pub const TELEMETRY_OPT_OUT: &str = "ORT_DISABLE_TELEMETRY";

/// Puts `ORT_DISABLE_TELEMETRY=1` into the process environment, whatever it was.
///
/// Call it first thing in `main`, while the process has one thread: changing the environment
/// races with C code reading it on other threads (Rust's own reads are locked). `init` calls it
/// again before loading the library, where it is a no-op once set, so library users such as the
/// test binaries are covered as well.
pub fn opt_out_of_telemetry() {
    if std::env::var_os(TELEMETRY_OPT_OUT).is_some_and(|v| v == "1") {
        return;
    }
    // SAFETY: see above: in the binaries this runs before any other thread exists; elsewhere it
    // runs once, before ONNX Runtime (the only C reader of this variable) is loaded.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(TELEMETRY_OPT_OUT, "1");
    }
}

/// One intra-op thread pool, one thread per core, for every session that does not ask for its own
/// thread count. With a pool per session, the threads of the session that ran last spin for work
/// while the next session runs, and on a 2-core machine a box decoder followed by the click
/// decoder each took twice their time alone (docs/benchmarks.md, "Sessions share one thread pool").
fn shared_thread_pool() -> Result<ort::environment::GlobalThreadPoolOptions, RuntimeError> {
    let failed = |e: ort::Error| RuntimeError::Environment(e.to_string());
    ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(session::cores())
        .map_err(failed)?
        .with_inter_threads(1)
        .map_err(failed)
}

/// The process's environment and the library path, created on first use.
fn environment() -> Result<&'static (ort::environment::Environment, PathBuf), RuntimeError> {
    ENVIRONMENT
        .get_or_init(|| {
            opt_out_of_telemetry();
            let path = locate_library()?;
            let builder = ort::init_from(&path).map_err(|e| RuntimeError::LibraryLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let environment = builder
                .with_name("lumen")
                .with_telemetry(false)
                .with_global_thread_pool(shared_thread_pool()?)
                .build()
                .map_err(|e| RuntimeError::Environment(e.to_string()))?;
            Ok((environment, path))
        })
        .as_ref()
        .map_err(Clone::clone)
}
