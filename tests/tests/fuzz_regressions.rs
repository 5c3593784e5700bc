//! Every committed fuzz input (`<crate>/fuzz/regressions/<target>/`: seeds, and findings once
//! understood) replayed through its fuzz target's own entry point on every test run, so what a
//! fuzzer found once stays fixed without the fuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_annotation::fuzzing::SMALL_CT;
use std::path::{Path, PathBuf};

type Entry = fn(&[u8]) -> Result<(), String>;

/// (crate folder, target, entry point), as in each `fuzz/fuzz_targets/`.
const TARGETS: [(&str, &str, Entry); 7] = [
    ("app/study", "read_dicom", lumen_study::fuzzing::dicom_file),
    ("app/study", "read_nifti", lumen_study::fuzzing::nifti_file),
    (
        "app/study",
        "discover_tree",
        lumen_study::fuzzing::discover_tree,
    ),
    ("app/annotation", "read_seg", |d| {
        lumen_annotation::fuzzing::seg_file(d, &SMALL_CT)
    }),
    ("app/annotation", "reimport_nifti", |d| {
        lumen_annotation::fuzzing::labels_nifti(d, &SMALL_CT)
    }),
    (
        "app/datasets",
        "read_npz",
        lumen_datasets::fuzzing::npz_file,
    ),
    (
        "engine",
        "read_manifest",
        lumen_engine::fuzzing::manifest_file,
    ),
];

fn regressions(crate_dir: &str, target: &str) -> Vec<PathBuf> {
    let dir = lumen_tests::repo_root()
        .join(crate_dir)
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_regression_input_reads_or_is_refused_naming_its_file() {
    let mut failures = Vec::new();
    for (crate_dir, target, entry) in TARGETS {
        let files = regressions(crate_dir, target);
        assert!(!files.is_empty(), "{target}: no regression inputs");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if let Err(broken) = entry(&data) {
                failures.push(format!("{target} {}: {broken}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The seeds that need Lumen to make them: a SEG and a NIfTI label map exported on the small CT
/// slice (a disk of label 1), written into the annotation targets' regression folders.
/// `cargo test -p lumen-tests --test fuzz_regressions write_annotation_seeds -- --ignored`
#[test]
#[ignore = "writes seed files into the repository"]
fn write_annotation_seeds() {
    use lumen_annotation::export;
    let volume = &*SMALL_CT;
    let mut labels = lumen_study::LabelVolume::empty_like(volume);
    let [nx, ny, _] = volume.dims;
    for y in 0..ny {
        for x in 0..nx {
            let (dx, dy) = (x as f64 - nx as f64 / 2.0, y as f64 - ny as f64 / 2.0);
            if dx * dx + dy * dy < (nx as f64 / 5.0).powi(2) {
                labels.labels[y * nx + x] = 1;
            }
        }
    }
    let segments = vec![export::Segment::new(1, "liver")];
    let seg_dir = seed_dir("read_seg");
    export::write_seg(
        &seg_dir.join("disk.dcm"),
        volume,
        &labels,
        &segments,
        &export::SegOptions::default(),
    )
    .unwrap();
    let nifti_dir = seed_dir("reimport_nifti");
    let nifti = nifti_dir.join("disk.nii.gz");
    export::write_nifti_labels(&nifti, &labels, &segments).unwrap();
    // the fuzz target reads the map alone, without the names beside it
    std::fs::remove_file(export::sidecar_path(&nifti)).unwrap();

    // seeds that read back whole, so the fuzzer starts from the path that succeeds
    let (from_seg, _) = export::read_seg(&seg_dir.join("disk.dcm"), volume).unwrap();
    let (from_nifti, _) = export::reimport_nifti(&nifti, volume).unwrap();
    assert_eq!(from_seg.labels, labels.labels);
    assert_eq!(from_nifti.labels, labels.labels);
}

fn seed_dir(target: &str) -> PathBuf {
    let dir = Path::new(&lumen_tests::repo_root())
        .join("app/annotation/fuzz/regressions")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
