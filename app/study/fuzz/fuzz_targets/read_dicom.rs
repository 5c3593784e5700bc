//! Fuzz target: read one DICOM file (header, geometry, pixel decoding) from arbitrary bytes.
//!
//! ```sh
//! cd app/study/fuzz && mkdir -p corpus/read_dicom && cp ../../../../shared/data/pydicom_testfiles/MR_small*.dcm corpus/read_dicom/
//! cargo +nightly fuzz run read_dicom corpus/read_dicom -- -max_len=16384 -rss_limit_mb=2048 -malloc_limit_mb=8192
//! ```
//!
//! Findings (`artifacts/read_dicom/`) replay without the fuzzer, one per process under
//! `/usr/bin/time -v` for its peak memory:
//! `LUMEN_REPLAY=artifacts/read_dicom/oom-… cargo test -p lumen-tests --test study_dicom replay -- --ignored --nocapture`
//!
//! Lumen turns panics inside third-party parsers/codecs into per-file errors (`catch_unwind`), so the
//! target lets a caught panic unwind (printing it) instead of aborting on it; a panic that escapes
//! `load_bytes`, an abort, or an ASan report is a finding.
#![no_main]

static HOOK: std::sync::Once = std::sync::Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("panic (caught unless it escapes): {info}")
        }));
    });
    // must return Ok or a typed error
    if let Ok(v) = lumen_study::dicom::load_bytes(std::path::Path::new("fuzz.dcm"), data) {
        assert_eq!(v.voxels.len(), v.dims[0] * v.dims[1] * v.dims[2]);
    }
});
