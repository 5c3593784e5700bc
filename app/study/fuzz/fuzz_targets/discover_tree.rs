//! Fuzz target: a folder tree (folders, copies of a real slice cut at any length, links back
//! up, DICOMDIR names) built from the bytes, then discovered as the viewer discovers a study.
//! The slice is CHAOS CT's first, from `../shared/data` beside the repository.
#![no_main]

static SLICE: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/data/chaos_ct_liver/Data_3D/DICOM_anon/i0000,0000b.dcm"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_study::fuzzing::discover_tree(data, &SLICE) {
        panic!("{broken}");
    }
});
