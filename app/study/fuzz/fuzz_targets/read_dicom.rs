//! Fuzz target: read one DICOM file (header, geometry, pixel decoding) from arbitrary bytes.
//!
//! ```sh
//! cd app/study/fuzz && mkdir -p corpus/read_dicom && cp ../../../../shared/data/pydicom_testfiles/MR_small*.dcm corpus/read_dicom/
//! cargo +nightly fuzz run read_dicom corpus/read_dicom -- -max_len=16384 -rss_limit_mb=2048 -malloc_limit_mb=8192
//! ```
//!
//! Findings (`artifacts/read_dicom/`) go, once understood, into `regressions/read_dicom/`, which
//! `tests/tests/fuzz_regressions.rs` replays on every test run; `docs/hostile-input.md` has the
//! counts.
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
    if let Err(broken) = lumen_study::fuzzing::dicom_file(data) {
        panic!("{broken}");
    }
});
