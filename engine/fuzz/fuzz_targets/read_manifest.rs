//! Fuzz target: a model bundle's `model.toml`, parsed and checked as the engine loads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_engine::fuzzing::manifest_file(data) {
        panic!("{broken}");
    }
});
