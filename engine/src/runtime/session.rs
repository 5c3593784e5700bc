//! Sessions with Lumen's settings: full graph optimization, the process's shared thread pool of one
//! thread per core (or a pool of their own, when a thread count is asked for).

use super::{RuntimeError, environment};
use ort::session::{Session, builder::GraphOptimizationLevel};
use std::path::Path;

/// How a session runs. The default uses every core and all graph optimizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Threads for one operator. 0: the process's shared pool, one thread per core, which is what
    /// the app runs. Any other number: a pool of that many threads for this session alone.
    pub intra_threads: usize,
    /// Graph optimizations (constant folding, fusions); off only for debugging.
    pub optimize: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            intra_threads: 0,
            optimize: true,
        }
    }
}

/// The cores this process may use: the size of the shared thread pool.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl SessionConfig {
    fn builder(&self, what: &str) -> Result<ort::session::builder::SessionBuilder, RuntimeError> {
        let (env, _) = environment()?;
        let fail = |e: String| RuntimeError::Session {
            path: what.to_string(),
            reason: e,
        };
        let level = if self.optimize {
            GraphOptimizationLevel::All
        } else {
            GraphOptimizationLevel::Disable
        };
        let builder = Session::builder(env)
            .map_err(|e| fail(e.to_string()))?
            .with_optimization_level(level)
            .map_err(|e| fail(e.to_string()))?;
        if self.intra_threads == 0 {
            return Ok(builder);
        }
        builder
            .with_independent_thread_pool()
            .map_err(|e| fail(e.to_string()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| fail(e.to_string()))
    }
}

/// Opens an ONNX model file as a session.
pub fn load_session(path: &Path, config: &SessionConfig) -> Result<Session, RuntimeError> {
    let what = path.display().to_string();
    config
        .builder(&what)?
        .commit_from_file(path)
        .map_err(|e| RuntimeError::Session {
            path: what,
            reason: e.to_string(),
        })
}

/// Opens an in-memory ONNX model (a graph built by the engine) as a session; `name` is used in errors.
pub fn load_session_from_memory(
    bytes: &[u8],
    name: &str,
    config: &SessionConfig,
) -> Result<Session, RuntimeError> {
    config
        .builder(name)?
        .commit_from_memory(bytes)
        .map_err(|e| RuntimeError::Session {
            path: name.to_string(),
            reason: e.to_string(),
        })
}
