//! Fuzz target: a folder tree (folders, copies of a real slice cut at any length, links back
//! up, DICOMDIR names) built from the bytes, then discovered as the viewer discovers a study.
//! The slice is CHAOS CT's first, from `../shared/data` beside the repository.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_study::fuzzing::discover_tree(data) {
        panic!("{broken}");
    }
});
