//! Fuzz target: a NIfTI label map (an autosave, an export) read back onto the small CT slice.
#![no_main]

/// The study the annotations belong to: pydicom's small CT slice, from `../shared/data`.
static VOLUME: std::sync::LazyLock<lumen_study::Volume> = std::sync::LazyLock::new(|| {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../shared/data/pydicom_testfiles/CT_small.dcm"
    );
    lumen_study::load_file(path).unwrap_or_else(|e| panic!("{e}"))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_annotation::fuzzing::labels_nifti(data, &VOLUME) {
        panic!("{broken}");
    }
});
