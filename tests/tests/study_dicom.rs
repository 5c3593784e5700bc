//! End-to-end: DICOM series discovery, sorting, geometry and decoding on the real data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use lumen_annotation::export::nifti::grid_mapping;
use lumen_study::{Volume, discover, load_file, load_nifti, load_series};
use lumen_tests::shared_data;

fn d2n(rel: &str) -> PathBuf {
    shared_data().join("dicom2nifti_tests/tests/data").join(rel)
}

fn load_only_series(dir: &Path) -> lumen_study::Result<Volume> {
    let d = discover(dir).unwrap();
    assert_eq!(
        d.series.len(),
        1,
        "{}: {:?} / {:?}",
        dir.display(),
        d.series,
        d.problems
    );
    load_series(&d.series[0])
}

/// Every voxel of `a` lies on a voxel of `b` (same physical grid, any axis order/flip) with the
/// same value (within `tol`). Returns the number of voxels compared.
fn assert_same_voxels(a: &Volume, b: &Volume, tol: f32) -> usize {
    assert_eq!(
        a.voxels.len(),
        b.voxels.len(),
        "voxel counts differ: {:?} vs {:?}",
        a.dims,
        b.dims
    );
    let map = grid_mapping(
        &b.patient_from_voxel,
        b.dims,
        &a.patient_from_voxel,
        a.dims,
        2e-3,
    )
    .unwrap_or_else(|| {
        panic!(
            "grids differ:\n{:?}\n{:?}",
            a.patient_from_voxel, b.patient_from_voxel
        )
    });
    let [nx, ny, nz] = a.dims;
    let mut worst = 0f32;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let from = lumen_annotation::export::nifti::map_index(
                    &map,
                    [x as i64, y as i64, z as i64],
                );
                let va = a.get(x, y, z).unwrap();
                let vb = b
                    .get(from[0] as usize, from[1] as usize, from[2] as usize)
                    .unwrap();
                worst = worst.max((va - vb).abs());
            }
        }
    }
    assert!(worst <= tol, "largest voxel difference {worst} > {tol}");
    nx * ny * nz
}

#[test]
fn anatomical_series_match_dicom2nifti_ground_truth() {
    for case in ["anatomical/001", "anatomical/001_implicit"] {
        let v = load_only_series(&d2n(case)).unwrap();
        let gt = load_nifti(d2n(&format!("{case}_ground_truth.nii.gz"))).unwrap();
        assert_eq!(v.dims, [256, 256, 4], "{case}");
        assert_eq!(v.modality, lumen_study::Modality::Mr);
        let n = assert_same_voxels(&v, &gt, 0.0);
        assert_eq!(n, 256 * 256 * 4);
        // not a constant image
        let (lo, hi) = v.value_range();
        assert!(hi - lo > 100.0, "{case}: range {lo}..{hi}");
        assert!(v.warnings.is_empty(), "{case}: {:?}", v.warnings);
    }
}

#[test]
fn compressed_and_rescaled_series_match_ground_truth() {
    // (case, tolerance): lossless codecs must be exact; rescaled float ground truth within rounding
    for (case, tol) in [
        ("generic/anatomical/001", 0.0),
        ("generic/anatomical/002_non_isotropic", 1e-3),
        ("generic/compressed/001", 0.0),
        ("generic/compressed_j2k/001", 0.0),
        ("generic/compressed_jpeg/001", 0.0),
        ("generic/compressed_jpegls/001", 0.0),
        ("generic/compressed_rle/001", 0.0),
    ] {
        let dir = d2n(case);
        let gt_path = d2n(&format!("{case}_ground_truth.nii.gz"));
        let v = load_only_series(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
        let gt = load_nifti(&gt_path).unwrap();
        assert_same_voxels(&v, &gt, tol);
    }
}

#[test]
fn failing_cases_give_a_warning_or_a_clear_error() {
    // gantry tilt: loads, with a visible warning
    let v = load_only_series(&d2n("failing/gantrytilting/001")).unwrap();
    assert!(
        v.warnings.iter().any(|w| w.contains("gantry tilt of 14.")),
        "{:?}",
        v.warnings
    );

    // not a volume: all images at one position
    let e = load_only_series(&d2n("failing/notavolume/001"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("notavolume") && e.contains("same position"),
        "{e}"
    );

    // two slices: a (thin) volume
    let v = load_only_series(&d2n("failing/slicecount/001")).unwrap();
    assert_eq!(v.dims[2], 2);
    let gt = load_nifti(d2n("failing/slicecount/001_ground_truth.nii.gz")).unwrap();
    assert_same_voxels(&v, &gt, 0.0);

    // missing slice: loads with a warning naming the gap
    for case in ["failing/sliceincrement/001", "failing/sliceincrement/002"] {
        let v = load_only_series(&d2n(case)).unwrap();
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("1 slice(s) appear to be missing")),
            "{case}: {:?}",
            v.warnings
        );
    }

    // mixed orientation: the series is split, each part says so
    let d = discover(d2n("failing/sliceorientation/001")).unwrap();
    assert_eq!(d.series.len(), 2, "{:?}", d.series);
    for s in &d.series {
        assert!(
            s.warnings.iter().any(|w| w.contains("mixed orientations")),
            "{:?}",
            s.warnings
        );
        let v = load_series(s).unwrap();
        assert_eq!(v.dims[2], 2);
        assert!(v.warnings.iter().any(|w| w.contains("split")));
    }
}

#[test]
fn tilted_ge_head_ct_loads_with_tilt_and_spacing_warnings() {
    let dir = shared_data().join("dcm_qa_ct_ge/In/GE");
    let v = load_only_series(&dir).unwrap();
    assert_eq!(v.dims, [512, 512, 28]);
    assert_eq!(v.modality, lumen_study::Modality::Ct);
    assert!(
        v.warnings.iter().any(|w| w.contains("gantry tilt of 18.5")),
        "{:?}",
        v.warnings
    );
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("uneven slice spacing")),
        "{:?}",
        v.warnings
    );
    // slices sorted along the normal: per-slice positions strictly increase along it
    let n = lumen_study::geometry::cross(
        lumen_study::geometry::normalize(lumen_study::geometry::column(&v.patient_from_voxel, 0)),
        lumen_study::geometry::normalize(lumen_study::geometry::column(&v.patient_from_voxel, 1)),
    );
    let d: Vec<f64> = v
        .slices
        .iter()
        .map(|s| lumen_study::geometry::dot(s.position, n))
        .collect();
    assert!(d.windows(2).all(|w| w[1] > w[0]), "{d:?}");
    // HU: air outside the head, bone somewhere
    let (lo, hi) = v.value_range();
    assert!(lo <= -1000.0 && hi >= 1000.0, "{lo}..{hi}");
}

#[test]
fn every_pydicom_test_file_decodes_or_says_why() {
    let dir = shared_data().join("pydicom_testfiles");
    let mut ok = 0;
    let mut refused = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    assert!(files.len() >= 12);
    for f in &files {
        match load_file(f) {
            Ok(v) => {
                assert!(!v.voxels.is_empty());
                assert!(v.voxels.iter().all(|x| x.is_finite()), "{}", f.display());
                let (lo, hi) = v.value_range();
                assert!(hi > lo, "{}: constant image", f.display());
                ok += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                assert!(msg.contains(&name), "error does not name the file: {msg}");
                refused.push(msg);
            }
        }
    }
    eprintln!("decoded {ok}/{}; refused: {refused:#?}", files.len());
    assert!(ok >= files.len() - 1, "too many refused: {refused:#?}");
    // the 12-bit lossy JPEG is refused with the reason
    assert!(
        refused
            .iter()
            .all(|m| m.contains("JPEG-lossy.dcm") && m.contains("unsupported: 12-bit JPEG")),
        "{refused:#?}"
    );

    // every encoding of MR_small decodes to the same pixels
    let reference = load_file(dir.join("MR_small.dcm")).unwrap();
    assert_eq!(reference.dims, [64, 64, 1]);
    for other in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ] {
        let v = load_file(dir.join(other)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.voxels, reference.voxels, "{other}");
    }
    // enhanced multi-frame MR: 10 frames; lossless J2K copy is identical
    let emri = load_file(dir.join("pydicom-data_emri_small.dcm")).unwrap();
    assert_eq!(emri.dims[2], 10);
    let emri_j2k = load_file(dir.join("pydicom-data_emri_small_jpeg_2k_lossless.dcm")).unwrap();
    assert_eq!(emri.voxels, emri_j2k.voxels);
    // enhanced CT: 2 frames, in HU
    let ect = load_file(dir.join("pydicom-data_eCT_Supplemental.dcm")).unwrap();
    assert_eq!(ect.dims[2], 2);
    assert_eq!(ect.modality, lumen_study::Modality::Ct);
    // CT_small: HU after rescale
    let ct = load_file(dir.join("CT_small.dcm")).unwrap();
    assert_eq!(ct.dims, [128, 128, 1]);
    let (lo, _) = ct.value_range();
    assert!(lo < -500.0, "CT_small min {lo} is not in HU");
}

#[test]
fn totalsegmentator_jpeg2000_series_matches_its_label_map() {
    let dir = shared_data().join("totalsegmentator/example_ct_dicom");
    let v = load_only_series(&dir).unwrap();
    assert_eq!(v.dims, [512, 512, 20]);
    assert!(
        (v.spacing[0] - 0.9765625).abs() < 1e-6 && (v.spacing[2] - 2.0).abs() < 1e-6,
        "{:?}",
        v.spacing
    );
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let seg = lumen_study::load_nifti_labels(
        shared_data().join("totalsegmentator/example_seg_dicom.nii.gz"),
    )
    .unwrap();
    // same shape
    let mut a = v.dims;
    let mut b = seg.dims;
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    // same affine: the label map's voxels lie exactly on the series' voxels
    let map = grid_mapping(
        &seg.patient_from_voxel,
        seg.dims,
        &v.patient_from_voxel,
        v.dims,
        1e-3,
    )
    .expect("label map and DICOM series are on different grids");
    // and the labels sit on the right anatomy: liver (5) is soft tissue, vertebrae are bone
    let mut sums = std::collections::BTreeMap::<u16, (f64, usize)>::new();
    let [nx, ny, nz] = v.dims;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let from = lumen_annotation::export::nifti::map_index(
                    &map,
                    [x as i64, y as i64, z as i64],
                );
                let l = seg
                    .get(from[0] as usize, from[1] as usize, from[2] as usize)
                    .unwrap();
                let e = sums.entry(l).or_default();
                e.0 += f64::from(v.get(x, y, z).unwrap());
                e.1 += 1;
            }
        }
    }
    let mean = |l: u16| sums.get(&l).map(|(s, n)| s / *n as f64).unwrap();
    assert!(
        (20.0..=200.0).contains(&mean(5)),
        "liver mean HU {}",
        mean(5)
    );
    assert!(mean(0) < -100.0, "background mean HU {}", mean(0));
}

#[test]
fn discovery_of_a_tree_lists_series_and_problems() {
    let d = discover(d2n("generic")).unwrap();
    // 001, 001_implicit, 002_non_isotropic, rgb, and one series stored five times in different
    // encodings (same SOP instances): five series
    assert_eq!(
        d.series.len(),
        5,
        "{:#?}",
        d.series.iter().map(|s| &s.folder).collect::<Vec<_>>()
    );
    let copies = d
        .series
        .iter()
        .find(|s| s.slice_count == 20)
        .expect("the 5×4 copies are one series");
    assert!(
        copies
            .warnings
            .iter()
            .any(|w| w.contains("16 duplicate image(s)")),
        "{:?}",
        copies.warnings
    );
    let v = load_series(copies).unwrap();
    assert_eq!(v.dims[2], 4);
    let rgb = d
        .series
        .iter()
        .find(|s| s.folder.ends_with("rgb/001"))
        .unwrap();
    let v = load_series(rgb).unwrap();
    assert!(
        v.warnings.iter().any(|w| w.contains("colour image")),
        "{:?}",
        v.warnings
    );
    for s in &d.series {
        assert!(s.rows > 0 && s.columns > 0);
    }
    // the ground-truth NIfTI files are reported, by name, as not DICOM
    assert!(
        d.problems.iter().any(
            |p| p.path.to_string_lossy().ends_with("_ground_truth.nii.gz")
                && p.reason == "not a DICOM file"
        ),
        "{:?}",
        d.problems
    );
    let e = discover(d2n("does-not-exist")).unwrap_err().to_string();
    assert!(
        e.contains("does-not-exist") && e.contains("not a folder"),
        "{e}"
    );
}

#[test]
fn in_memory_files_decode_and_damaged_files_never_panic() {
    let dir = shared_data().join("pydicom_testfiles");
    // a corrupted length is refused before anything is allocated for it
    let mut bytes = std::fs::read(dir.join("MR_small.dcm")).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    bytes[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let e = lumen_study::dicom::load_bytes(Path::new("MR_small.dcm"), &bytes)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MR_small.dcm") && e.contains("(7FE0,0010) declares 4294967280 bytes"),
        "{e}"
    );
    for name in [
        "MR_small.dcm",
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "pydicom-data_emri_small_jpeg_2k_lossless.dcm",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let from_file = load_file(dir.join(name)).unwrap();
        let from_bytes = lumen_study::dicom::load_bytes(Path::new(name), &bytes).unwrap();
        assert_eq!(from_bytes.voxels, from_file.voxels, "{name}");
        assert_eq!(
            from_bytes.patient_from_voxel, from_file.patient_from_voxel,
            "{name}"
        );
        // truncated and bit-flipped copies give errors (or volumes), never panics
        let mut refused = 0;
        for cut in (0..bytes.len()).step_by(bytes.len() / 61 + 1) {
            if lumen_study::dicom::load_bytes(Path::new(name), &bytes[..cut]).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 50, "{name}: only {refused} truncations refused");
        for k in (0..bytes.len()).step_by(bytes.len() / 37 + 1) {
            let mut b = bytes.clone();
            b[k] ^= 0xA5;
            if let Err(e) = lumen_study::dicom::load_bytes(Path::new(name), &b) {
                assert!(e.to_string().contains(name), "{e}");
            }
        }
    }
}

#[test]
fn a_load_counts_its_images_and_a_cancelled_one_stops_with_a_clear_error() {
    use std::sync::atomic::Ordering;
    let dir = shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon");
    let d = discover(&dir).unwrap();
    let control = lumen_study::LoadControl::default();
    let v = lumen_study::load_series_with(&d.series[0], &control).unwrap();
    assert_eq!(control.decoded.load(Ordering::Relaxed), v.dims[2]);

    let cancelled = lumen_study::LoadControl::default();
    cancelled.cancel.store(true, Ordering::Relaxed);
    let err = lumen_study::load_series_with(&d.series[0], &cancelled).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(
        err.to_string().contains("DICOM_anon"),
        "names the series: {err}"
    );
    assert_eq!(cancelled.decoded.load(Ordering::Relaxed), 0);
}

#[test]
fn monochrome1_is_shown_and_fed_to_the_model_inverted_with_the_same_values() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let manifest = lumen_engine::model::read_manifest(&lumen_tests::starter_model_dir()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (source, rule) in [
        (
            shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon/i0000,0000b.dcm"),
            &manifest.intensity.ct,
        ),
        (
            shared_data().join("pydicom_testfiles/MR_small.dcm"),
            &manifest.intensity.mr,
        ),
    ] {
        let mut obj = dicom_object::open_file(&source).unwrap();
        obj.put(DataElement::new(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            PrimitiveValue::from("MONOCHROME1"),
        ));
        let copy = tmp.path().join(source.file_name().unwrap());
        obj.write_to_file(&copy).unwrap();

        let m2 = load_file(&source).unwrap();
        let m1 = load_file(&copy).unwrap();
        let name = source.display();
        assert!(!m2.inverted && m1.inverted, "{name}");
        assert_eq!(
            m1.voxels, m2.voxels,
            "{name}: stored values are physical, kept as they are"
        );
        assert!(
            m1.warnings.iter().all(|w| !w.contains("MONOCHROME1")),
            "{:?}",
            m1.warnings
        );

        let window = m2.default_window();
        assert_eq!(m1.default_window(), window, "{name}");
        let shown2 = m2.to_grey(&m2.voxels, window);
        let shown1 = m1.to_grey(&m1.voxels, window);
        let levels: std::collections::BTreeSet<u8> = shown2.iter().copied().collect();
        assert!(levels.len() > 50, "{name}: a real image, not a flat one");
        for (i, (a, b)) in shown1.iter().zip(&shown2).enumerate() {
            assert_eq!(*a, 255 - *b, "{name}: display pixel {i}");
        }

        let model2 = lumen_annotation::propagate::model_image(&m2, 0, rule).unwrap();
        let model1 = lumen_annotation::propagate::model_image(&m1, 0, rule).unwrap();
        assert!(model2.iter().any(|v| *v != model2[[0, 0]]), "{name}");
        assert_eq!(model1, model2.mapv(|v| 255 - v), "{name}: model input");
    }
}

/// Replays fuzzer findings through both entry points (in memory and from a file): the files in
/// `fuzz/artifacts/read_dicom/`, or the file or folder named by `LUMEN_REPLAY`. Each must load or
/// give an error naming it; run one file per process under `/usr/bin/time -v` for its peak memory.
///
/// `LUMEN_REPLAY=crash-… cargo test -p lumen-tests --test study_dicom replay -- --ignored --nocapture`
#[test]
#[ignore = "needs fuzzer artifacts (not in the repository)"]
fn replay_fuzz_artifacts() {
    let target = std::env::var_os("LUMEN_REPLAY")
        .map(PathBuf::from)
        .unwrap_or_else(|| lumen_tests::repo_root().join("fuzz/artifacts/read_dicom"));
    let files: Vec<PathBuf> = if target.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    } else {
        vec![target.clone()]
    };
    assert!(
        !files.is_empty(),
        "nothing to replay in {}",
        target.display()
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for (how, result) in [
            (
                "memory",
                lumen_study::dicom::load_bytes(Path::new(&name), &bytes),
            ),
            ("file", load_file(&file)),
        ] {
            match result {
                Ok(v) => println!("{name} ({how}): loaded {:?}", v.dims),
                Err(e) => {
                    println!("{name} ({how}): {e}");
                    assert!(e.to_string().contains(&name), "{e}");
                }
            }
        }
    }
}

/// `bytes` with the big-endian u16 or u32 at `at` (relative to the first `marker`) replaced.
fn patched(bytes: &[u8], marker: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let i = b.windows(marker.len()).position(|w| w == marker).unwrap() + at;
    b[i..i + value.len()].copy_from_slice(value);
    b
}

/// A copy of a small real DICOM file whose header asks for absurd pixel buffers, in the ways the
/// fuzzer found (a codec's own header, a deflated data set, Rows × Columns): each is refused
/// before anything is allocated for it, with the file and the reason, by both entry points.
#[test]
fn headers_that_ask_for_absurd_pixel_buffers_are_refused_before_decoding() {
    use std::io::{Read, Write};
    let pydicom = shared_data().join("pydicom_testfiles");
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    let big = 65535u16.to_be_bytes();
    let jpeg_lossless = std::fs::read_dir(d2n("generic/compressed_jpeg/001"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mr = read(pydicom.join("MR_small.dcm"));
    let rows_at = mr
        .windows(6)
        .position(|w| w == [0x28, 0x00, 0x10, 0x00, b'U', b'S'])
        .unwrap()
        + 8;
    let with_size = |rows: u16, columns: u16| {
        let mut b = mr.clone();
        b[rows_at..rows_at + 2].copy_from_slice(&rows.to_le_bytes());
        // Columns (0028,0011) follows Rows
        b[rows_at + 10..rows_at + 12].copy_from_slice(&columns.to_le_bytes());
        b
    };

    // A deflated copy loads like the original; then its Pixel Data length is made absurd inside
    // the deflated stream, where a plain look at the file cannot see it.
    let tmp = tempfile::tempdir().unwrap();
    let deflated_path = tmp.path().join("deflated.dcm");
    let mut obj = dicom_object::open_file(pydicom.join("MR_small.dcm")).unwrap();
    obj.update_meta(|m| m.transfer_syntax = "1.2.840.10008.1.2.1.99".into());
    obj.write_to_file(&deflated_path).unwrap();
    let original = load_file(pydicom.join("MR_small.dcm")).unwrap();
    assert_eq!(load_file(&deflated_path).unwrap().voxels, original.voxels);
    let file = read(deflated_path);
    let meta_len = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let body_at = 144 + meta_len;
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(&file[body_at..])
        .read_to_end(&mut body)
        .unwrap();
    let body = patched(
        &body,
        &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W'],
        8,
        &0xFFFF_FFF0u32.to_le_bytes(),
    );
    let mut deflated = file[..body_at].to_vec();
    let mut encoder =
        flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
    encoder.write_all(&body).unwrap();
    encoder.finish().unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "jpeg-ls.dcm",
            patched(
                &read(pydicom.join("MR_small_jpeg_ls_lossless.dcm")),
                &[0xFF, 0xF7],
                5,
                &[big, big].concat(),
            ),
            "codestream in fragment 0 is 65535×65535 × 1 components, the header declares 64×64 × 1",
        ),
        (
            "jpeg-lossless.dcm",
            patched(&read(jpeg_lossless), &[0xFF, 0xC3], 5, &[big, big].concat()),
            "codestream in fragment 0 is 65535×65535",
        ),
        (
            "j2k.dcm",
            patched(
                &read(pydicom.join("MR_small_jp2klossless.dcm")),
                &[0xFF, 0x4F, 0xFF, 0x51],
                8,
                &[60000u32.to_be_bytes(), 60000u32.to_be_bytes()].concat(),
            ),
            "codestream in fragment 0 is 60000×60000",
        ),
        (
            "deflated.dcm",
            deflated,
            "(7FE0,0010) declares 4294967280 bytes",
        ),
        (
            "short.dcm",
            with_size(1500, 1500),
            "1500×1500 pixels × 1 frames × 1 samples × 16 bits = 4500000 bytes",
        ),
        (
            "absurd.dcm",
            with_size(65535, 65535),
            "8191 MiB of pixel data; Lumen reads at most 2048 MiB from one file",
        ),
    ];
    for (name, bytes, reason) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        for e in [
            lumen_study::dicom::load_bytes(Path::new(name), &bytes).unwrap_err(),
            load_file(&path).unwrap_err(),
        ] {
            let e = e.to_string();
            assert!(e.contains(name) && e.contains(reason), "{name}: {e}");
        }
    }
}

/// Discovery counts, for the UI's progress, the files its walk finds and the headers it reads:
/// every one of CHAOS's 78 slices, each once.
#[test]
fn discovery_counts_the_files_it_finds_and_reads() {
    use std::sync::atomic::Ordering;
    let control = lumen_study::LoadControl::default();
    let folder = shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon");
    let found = lumen_study::discover_cancellable(&folder, &control).unwrap();
    assert_eq!(found.series.len(), 1);
    assert_eq!(found.series[0].slice_count, 78);
    assert_eq!(control.found.load(Ordering::Relaxed), 78);
    assert_eq!(control.read.load(Ordering::Relaxed), 78);
}
