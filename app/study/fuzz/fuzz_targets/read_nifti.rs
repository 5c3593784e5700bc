//! Fuzz target: a NIfTI file (`.nii`, or `.nii.gz` when gzip) read as a volume and as labels.
//! See `docs/hostile-input.md` for how to run it and its counts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_study::fuzzing::nifti_file(data) {
        panic!("{broken}");
    }
});
