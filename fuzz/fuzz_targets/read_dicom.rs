//! Fuzz target: read one DICOM file (header, geometry, pixel decoding) from arbitrary bytes.
//!
//! `cd fuzz && cargo +nightly fuzz run read_dicom corpus/read_dicom -- -max_len=65536`
//! Seed the corpus with small real files, e.g. `../../shared/data/pydicom_testfiles/*.dcm`.
#![no_main]

#[path = "../../app/src/study/mod.rs"]
#[allow(dead_code, unused_imports)]
mod study;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // must return Ok or a typed error; a panic or abort is a finding
    if let Ok(v) = study::dicom::load_bytes(std::path::Path::new("fuzz.dcm"), data) {
        assert_eq!(v.voxels.len(), v.dims[0] * v.dims[1] * v.dims[2]);
    }
});
