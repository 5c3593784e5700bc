//! Fuzz target: a NIfTI label map (an autosave, an export) read back onto the small CT slice.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) =
        lumen_annotation::fuzzing::labels_nifti(data, &lumen_annotation::fuzzing::SMALL_CT)
    {
        panic!("{broken}");
    }
});
