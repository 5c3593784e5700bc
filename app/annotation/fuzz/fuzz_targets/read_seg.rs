//! Fuzz target: a DICOM SEG read back onto the small CT slice it would belong to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) =
        lumen_annotation::fuzzing::seg_file(data, &lumen_annotation::fuzzing::SMALL_CT)
    {
        panic!("{broken}");
    }
});
