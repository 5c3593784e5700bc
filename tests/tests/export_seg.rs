//! End-to-end: CHAOS CT + hand-drawn liver masks → DICOM SEG and NIfTI → read back voxel-exact;
//! TotalSegmentator multi-organ labels → multi-segment SEG; PNG masks and overlays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use lumen_annotation::export::{
    self, SegOptions, Segment, read_seg, reimport_nifti, write_nifti_labels, write_png_masks,
    write_png_overlays, write_seg,
};
use lumen_study::{Volume, discover, load_nifti_labels, load_series, preset};
use lumen_tests::{chaos_liver_labels, shared_data};

/// dicom3tools' IOD validator finds no error in `path` (warnings, such as the empty Patient ID
/// of an anonymized source, are allowed).
fn assert_valid_iod(path: &Path) {
    let out = std::process::Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy runs (packaging/apt-packages.txt installs dicom3tools)");
    let report =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy: {errors:#?}");
    assert!(
        report.contains("Segmentation"),
        "validated as a Segmentation: {report}"
    );
}

fn chaos_dir() -> PathBuf {
    shared_data().join("chaos_ct_liver/Data_3D")
}

fn load_dir(dir: &Path) -> Volume {
    let d = discover(dir).unwrap();
    assert_eq!(d.series.len(), 1, "{:?}", d.problems);
    load_series(&d.series[0]).unwrap()
}

#[test]
fn chaos_liver_exports_to_seg_and_nifti_and_reads_back_voxel_exact() {
    let volume = load_dir(&chaos_dir().join("DICOM_anon"));
    assert_eq!(volume.dims, [512, 512, 78]);
    let labels = chaos_liver_labels(&volume);
    let liver_voxels = labels.labels.iter().filter(|&&l| l == 1).count();
    assert_eq!(liver_voxels, 1_342_595);
    // the masks sit on liver: contrast-enhanced parenchyma, mean well above water
    let mean: f64 = labels
        .labels
        .iter()
        .zip(&volume.voxels)
        .filter(|(l, _)| **l == 1)
        .map(|(_, v)| f64::from(*v))
        .sum::<f64>()
        / liver_voxels as f64;
    assert!((100.0..180.0).contains(&mean), "liver mean HU {mean}");

    let segments = vec![Segment::new(1, "Liver")];
    let dir = tempfile::tempdir().unwrap();

    // DICOM SEG
    let seg_path = dir.path().join("liver.seg.dcm");
    let opts = SegOptions {
        algorithm_version: "test-model fp32".into(),
        ..SegOptions::default()
    };
    let summary = write_seg(&seg_path, &volume, &labels, &segments, &opts).unwrap();
    assert_valid_iod(&seg_path);
    let slices_with_liver = (0..78)
        .filter(|&z| labels.labels[z * 512 * 512..(z + 1) * 512 * 512].contains(&1))
        .count();
    assert_eq!(summary.frames, slices_with_liver);
    assert_eq!(summary.segments, vec![1]);
    let (back, segs) = read_seg(&seg_path, &volume).unwrap();
    assert_eq!(
        back.labels, labels.labels,
        "SEG round trip is not voxel-exact"
    );
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].name, "Liver");
    assert_eq!(segs[0].property_type.value, "10200004");
    assert_eq!(segs[0].category.value, "91723000");
    assert_eq!(segs[0].color, segments[0].color);
    // only the SEG file is left in the folder (atomic write, no temp files)
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // NIfTI + sidecar
    let nii = dir.path().join("liver.nii.gz");
    write_nifti_labels(&nii, &labels, &segments).unwrap();
    assert!(export::sidecar_path(&nii).exists());
    let (back, segs) = reimport_nifti(&nii, &volume).unwrap();
    assert_eq!(
        back.labels, labels.labels,
        "NIfTI round trip is not voxel-exact"
    );
    assert_eq!(segs, segments);
    // the raw file's geometry is the volume's (LPS after the RAS flip)
    let raw = load_nifti_labels(&nii).unwrap();
    assert_eq!(raw.dims, volume.dims);
    assert!(
        lumen_study::geometry::max_abs_diff(&raw.patient_from_voxel, &volume.patient_from_voxel)
            < 1e-4
    );
}

#[test]
fn totalsegmentator_organs_export_as_multi_segment_seg() {
    let ts = shared_data().join("totalsegmentator");
    let volume = load_dir(&ts.join("example_ct_dicom"));
    let (labels, _) = reimport_nifti(&ts.join("example_seg_dicom.nii.gz"), &volume).unwrap();
    // name the TotalSegmentator ids from labels_total.tsv
    let names: std::collections::BTreeMap<u16, String> =
        std::fs::read_to_string(ts.join("labels_total.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut it = l.split('\t');
                Some((
                    it.next()?.trim().parse().ok()?,
                    it.next()?.trim().to_string(),
                ))
            })
            .collect();
    let present = labels.present_labels();
    assert!(present.len() >= 20, "{present:?}");
    let segments: Vec<Segment> = present
        .iter()
        .map(|&l| Segment::new(l, &names[&l]))
        .collect();
    let liver = segments.iter().find(|s| s.name == "liver").unwrap();
    assert_eq!(liver.property_type.value, "10200004");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("organs.seg.dcm");
    let summary = write_seg(&p, &volume, &labels, &segments, &SegOptions::default()).unwrap();
    assert_eq!(summary.segments, present);
    write_nifti_labels(&dir.path().join("organs.nii.gz"), &labels, &segments).unwrap();
    // other tools read both as written: pydicom, highdicom voxel for voxel, nibabel
    let check = std::process::Command::new(lumen_tests::seg_check_python().unwrap())
        .arg(lumen_tests::repo_root().join("tests/tests/export_seg_validate.py"))
        .arg(dir.path())
        .arg(&ts)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "export_seg_validate.py: {said}");
    assert!(said.contains("SEG: every voxel matches"), "{said}");
    let (back, segs) = read_seg(&p, &volume).unwrap();
    assert_eq!(segs.len(), present.len());
    // segment numbers are 1..n in label order; map back and compare every voxel
    let mut to_label = vec![0u16; segs.len() + 1];
    for (i, &l) in present.iter().enumerate() {
        to_label[i + 1] = l;
        assert_eq!(segs[i].name, names[&l]);
    }
    let remapped: Vec<u16> = back
        .labels
        .iter()
        .map(|&n| to_label[usize::from(n)])
        .collect();
    assert_eq!(remapped, labels.labels);

    // PNG masks of the liver and overlays
    let png_dir = dir.path().join("png");
    let masks = write_png_masks(&png_dir, &labels, std::slice::from_ref(liver)).unwrap();
    assert!(masks.iter().all(|m| m.is_file()), "{:?}", masks.first());
    let liver_slices = (0..volume.dims[2])
        .filter(|&z| {
            labels.labels[z * volume.slice_len()..(z + 1) * volume.slice_len()]
                .contains(&liver.label)
        })
        .count();
    assert_eq!(masks.len(), liver_slices);
    let first = image::open(&masks[0]).unwrap().to_luma8();
    let z0: usize = masks[0].file_stem().unwrap().to_string_lossy()[6..]
        .parse()
        .unwrap();
    let plane = &labels.labels[z0 * volume.slice_len()..(z0 + 1) * volume.slice_len()];
    for (p, &l) in first.pixels().zip(plane) {
        assert_eq!(p.0[0] == 255, l == liver.label);
    }
    let overlays = write_png_overlays(
        &dir.path().join("overlays"),
        &volume,
        &labels,
        &segments,
        preset("soft tissue").unwrap(),
        0.5,
    )
    .unwrap();
    assert_eq!(overlays.len(), volume.dims[2]);
    let img = image::open(&overlays[0]).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (512, 512));
}

#[test]
fn reimport_refuses_a_label_map_from_another_grid() {
    let ts = shared_data().join("totalsegmentator");
    let volume = load_dir(&ts.join("example_ct_dicom"));
    // example_seg.nii.gz belongs to example_ct.nii.gz (3 mm), not to the DICOM series
    let e = reimport_nifti(&ts.join("example_seg.nii.gz"), &volume)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("example_seg.nii.gz") && e.contains("does not lie on the study"),
        "{e}"
    );
    // a SEG read onto the wrong study is refused too
    let chaos = load_dir(&chaos_dir().join("DICOM_anon"));
    let labels = chaos_liver_labels(&chaos);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("liver.dcm");
    write_seg(
        &p,
        &chaos,
        &labels,
        &[Segment::new(1, "liver")],
        &SegOptions::default(),
    )
    .unwrap();
    let e = read_seg(&p, &volume).unwrap_err().to_string();
    assert!(
        e.contains("liver.dcm") && e.contains("does not match the study"),
        "{e}"
    );
}
