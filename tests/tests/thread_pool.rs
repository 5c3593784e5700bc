//! Sessions opened as the app opens them share the process's one ONNX Runtime thread pool: a
//! pool per session let the box decoder's spinning threads take the cores from the click decoder
//! (docs/benchmarks.md, "Sessions share one thread pool"). Counted as the operating system's
//! threads of this process, so this file holds one test: others running beside it would start
//! threads of their own.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::model::SamModel;
use lumen_engine::runtime::{self, SessionConfig};
use lumen_tests::starter_model_dir;

fn threads_of_this_process() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn models_opened_with_the_default_config_start_no_threads_and_an_explicit_count_does() {
    runtime::init().unwrap();
    let with_shared_pool = threads_of_this_process();

    let first = SamModel::load(&starter_model_dir(), &SessionConfig::default()).unwrap();
    let second = SamModel::load(&starter_model_dir(), &SessionConfig::default()).unwrap();
    assert_eq!(
        threads_of_this_process(),
        with_shared_pool,
        "two models (four sessions) on the shared pool"
    );

    // The count above can tell: two threads per session is a pool of their own (one more
    // thread for each of the encoder and the decoder, the caller being the other).
    let own_pools = SessionConfig {
        intra_threads: 2,
        ..SessionConfig::default()
    };
    let third = SamModel::load(&starter_model_dir(), &own_pools).unwrap();
    assert!(
        threads_of_this_process() >= with_shared_pool + 2,
        "{} threads, {with_shared_pool} before a model with its own pools",
        threads_of_this_process()
    );
    drop((first, second, third));
}
