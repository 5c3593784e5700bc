//! End-to-end: NIfTI volumes and label maps open, and label maps written by Lumen read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_annotation::export::{Segment, write_nifti_labels};
use lumen_study::{geometry, load_nifti, load_nifti_labels};
use lumen_tests::shared_data;

#[test]
fn totalsegmentator_ct_and_labels_open_on_the_same_grid() {
    let ts = shared_data().join("totalsegmentator");
    let full = load_nifti(ts.join("example_ct.nii.gz")).unwrap();
    assert_eq!(full.dims, [122, 101, 112]);
    // example_seg.nii.gz belongs to the 30-slice crop
    let ct = load_nifti(ts.join("example_ct_sm.nii.gz")).unwrap();
    assert_eq!(ct.dims, [122, 101, 30]);
    for s in ct.spacing {
        assert!((s - 3.0).abs() < 1e-3, "{:?}", ct.spacing);
    }
    let (lo, hi) = ct.value_range();
    assert!(lo <= -1000.0 && hi > 500.0, "not HU: {lo}..{hi}");
    let seg = load_nifti_labels(ts.join("example_seg.nii.gz")).unwrap();
    assert_eq!(seg.dims, ct.dims);
    assert!(geometry::max_abs_diff(&seg.patient_from_voxel, &ct.patient_from_voxel) < 1e-4);
    // liver (5) is soft tissue in HU
    let (sum, n) = seg
        .labels
        .iter()
        .zip(&ct.voxels)
        .filter(|(l, _)| **l == 5)
        .fold((0f64, 0usize), |(s, n), (_, v)| (s + f64::from(*v), n + 1));
    assert!(n > 1000);
    let mean = sum / n as f64;
    assert!((20.0..200.0).contains(&mean), "liver mean {mean}");

    // MR opens too
    let mr = load_nifti(ts.join("example_mr_sm.nii.gz")).unwrap();
    assert!(mr.dims.iter().all(|&d| d > 1));
}

#[test]
fn label_maps_written_by_lumen_read_back_identically() {
    let ts = shared_data().join("totalsegmentator");
    let seg = load_nifti_labels(ts.join("example_seg.nii.gz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "labels.nii.gz",
        "labels.nii",
        "case.01.nii.gz",
        "case.02.nii",
    ] {
        let p = dir.path().join(name);
        write_nifti_labels(&p, &seg, &[Segment::new(5, "liver")]).unwrap();
        let back = load_nifti_labels(&p).unwrap();
        assert_eq!(back.dims, seg.dims);
        assert_eq!(back.labels, seg.labels);
        assert!(geometry::max_abs_diff(&back.patient_from_voxel, &seg.patient_from_voxel) < 1e-4);
    }
    // uint16 when labels exceed 255
    let mut big = seg.clone();
    big.labels[0] = 300;
    let p = dir.path().join("big.nii.gz");
    write_nifti_labels(&p, &big, &[]).unwrap();
    assert_eq!(load_nifti_labels(&p).unwrap().labels[0], 300);
    // bad input is a clear error, not a panic
    let junk = dir.path().join("junk.nii.gz");
    std::fs::write(&junk, b"definitely not nifti").unwrap();
    let e = load_nifti(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.nii.gz") && e.contains("NIfTI"), "{e}");
}

#[test]
fn a_truncated_nifti_file_is_refused_in_words_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = shared_data().join("totalsegmentator/example_seg_dicom.nii.gz");
    let bytes = std::fs::read(&source).unwrap();
    // the first 100 bytes of a gzip stream: the header cannot be read whole
    let cut = dir.path().join("cut-short.nii.gz");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let message = load_nifti(&cut).unwrap_err().to_string();
    assert!(message.contains("cut-short.nii.gz"), "{message}");
    assert!(message.contains("not a readable NIfTI file"), "{message}");
    assert!(
        !message.contains("Io(") && !message.contains("kind:"),
        "in words, not Rust debug text: {message}"
    );
}
