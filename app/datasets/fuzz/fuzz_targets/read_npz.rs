//! Fuzz target: an `.npz` archive (the BTCV slices' format), opened and every array read.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(broken) = lumen_datasets::fuzzing::npz_file(data) {
        panic!("{broken}");
    }
});
