//! Hostile and damaged input to study discovery and loading: a deeply nested file and a folder
//! that links back into itself give clear answers, never a crash or an endless walk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_study::{discover, load_file};
use std::path::PathBuf;

/// A DICOM file (explicit VR little endian) of `depth` sequences nested in one another, each in
/// an item, all of undefined length, as a crafted file on a CD might be.
fn nested_sequences(depth: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; 128];
    bytes.extend(b"DICM");
    let syntax = b"1.2.840.10008.1.2.1\0";
    bytes.extend([0x02, 0x00, 0x10, 0x00]);
    bytes.extend(b"UI");
    bytes.extend((syntax.len() as u16).to_le_bytes());
    bytes.extend(syntax);
    for _ in 0..depth {
        // (0008,1115) Referenced Series Sequence, then an item
        bytes.extend([0x08, 0x00, 0x15, 0x11]);
        bytes.extend(b"SQ\0\0");
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend([0xFE, 0xFF, 0x00, 0xE0]);
        bytes.extend(u32::MAX.to_le_bytes());
    }
    for _ in 0..depth {
        bytes.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        bytes.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    bytes
}

#[test]
fn sequences_nested_2000_deep_are_refused_by_name_without_overflowing_the_stack() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.dcm");
    std::fs::write(&deep, nested_sequences(2000)).unwrap();
    // on a thread with the default 2 MiB stack, as the study loader's
    let load = std::thread::spawn(move || load_file(&deep).map(|_| ()).unwrap_err().to_string());
    let message = load.join().expect("no stack overflow");
    assert!(message.contains("deep.dcm"), "{message}");
    assert!(message.contains("nested more than 128 deep"), "{message}");

    // shallow nesting is no reason to refuse a file (this one has no image, and says that)
    let shallow = dir.path().join("shallow.dcm");
    std::fs::write(&shallow, nested_sequences(8)).unwrap();
    let message = load_file(&shallow).map(|_| ()).unwrap_err().to_string();
    assert!(!message.contains("nested"), "{message}");

    let found = discover(dir.path()).unwrap();
    assert!(found.series.is_empty());
    let problem = found
        .problems
        .iter()
        .find(|p| p.path.ends_with("deep.dcm"))
        .expect("the deep file is listed as a problem");
    assert!(problem.reason.contains("nested"), "{}", problem.reason);
}

#[test]
fn a_folder_linking_back_into_itself_is_walked_once() {
    let sample =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/totalsegmentator-ct");
    let mut slices: Vec<PathBuf> = std::fs::read_dir(&sample)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("CT."))
        .collect();
    slices.sort();
    let dir = tempfile::tempdir().unwrap();
    for slice in &slices[..3] {
        std::fs::copy(slice, dir.path().join(slice.file_name().unwrap())).unwrap();
    }
    // two links to the folder itself: followed naively, 2^64 ways down
    std::os::unix::fs::symlink(".", dir.path().join("again")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("and again")).unwrap();
    // and a second name for one slice
    std::os::unix::fs::symlink(
        dir.path().join(slices[0].file_name().unwrap()),
        dir.path().join("alias.dcm"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let found = discover(dir.path()).unwrap();
    eprintln!("discovery took {:?}", started.elapsed());
    assert_eq!(found.series.len(), 1);
    assert_eq!(found.series[0].slice_count, 3, "each slice once");
    assert!(found.problems.is_empty(), "{:?}", found.problems);
}

/// A copy of the first CHAOS CT slice, with `edit` applied, in `dir`.
fn edited_chaos_slice(
    dir: &std::path::Path,
    name: &str,
    edit: impl FnOnce(&mut dicom_object::DefaultDicomObject),
) -> PathBuf {
    let source =
        lumen_tests::shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon/i0000,0000b.dcm");
    let mut file = dicom_object::open_file(source).unwrap();
    edit(&mut file);
    let path = dir.join(name);
    file.write_to_file(&path).unwrap();
    path
}

fn put_text(file: &mut dicom_object::DefaultDicomObject, tag: dicom_core::Tag, value: &str) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    file.put(DataElement::new(tag, VR::DS, PrimitiveValue::from(value)));
}

#[test]
fn values_that_would_make_a_silently_wrong_image_are_refused_naming_the_attribute() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, dicom_core::Tag, &str, &str); 5] = [
        (
            "slope0.dcm",
            tags::RESCALE_SLOPE,
            "0",
            "Rescale Slope (0028,1053)",
        ),
        (
            "slope1e38.dcm",
            tags::RESCALE_SLOPE,
            "1e38",
            "Rescale Slope (0028,1053)",
        ),
        (
            "far.dcm",
            tags::IMAGE_POSITION_PATIENT,
            "0\\0\\1e308",
            "Image Position (Patient) (0020,0032)",
        ),
        (
            "huge-pixels.dcm",
            tags::PIXEL_SPACING,
            "1e6\\1e6",
            "Pixel Spacing (0028,0030)",
        ),
        (
            "nan-intercept.dcm",
            tags::RESCALE_INTERCEPT,
            "NaN",
            "Rescale Intercept (0028,1052)",
        ),
    ];
    for (name, tag, value, attribute) in cases {
        let path = edited_chaos_slice(dir.path(), name, |f| put_text(f, tag, value));
        let Err(message) = load_file(&path).map(|_| ()) else {
            panic!("{name} loaded")
        };
        let message = message.to_string();
        assert!(message.contains(name), "{message}");
        assert!(message.contains(attribute), "{name}: {message}");
    }
}

#[test]
fn bits_above_bits_stored_are_not_part_of_the_value() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let plain = edited_chaos_slice(dir.path(), "plain.dcm", |_| {});
    // the same 12-bit values with the 4 bits above them set, as overlays once were
    let overlaid = edited_chaos_slice(dir.path(), "overlaid.dcm", |f| {
        let mut pixels = f
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap()
            .into_owned();
        for sample in pixels.chunks_exact_mut(2) {
            let v = u16::from_le_bytes([sample[0], sample[1]]);
            assert!(v < 1 << 12, "CHAOS values fit 12 bits");
            sample.copy_from_slice(&(v | 0xF000).to_le_bytes());
        }
        f.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(pixels),
        ));
        f.put(DataElement::new(
            tags::BITS_STORED,
            VR::US,
            PrimitiveValue::from(12_u16),
        ));
        f.put(DataElement::new(
            tags::HIGH_BIT,
            VR::US,
            PrimitiveValue::from(11_u16),
        ));
    });
    let (a, b) = (load_file(&plain).unwrap(), load_file(&overlaid).unwrap());
    assert_eq!(a.voxels, b.voxels);
}

#[test]
fn a_small_nifti_declaring_a_huge_volume_is_refused_before_it_is_inflated() {
    use std::io::{Read, Write};
    let source = lumen_tests::shared_data().join("chaos_t2_mr/image_1.nii.gz");
    let mut header = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(source).unwrap())
        .take(352)
        .read_to_end(&mut header)
        .unwrap();
    // dim[1..=3] (offset 42, little-endian i16): 30000 × 30000 × 30000, then a few real bytes
    for (i, d) in [30000u16, 30000, 30000].iter().enumerate() {
        header[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.nii.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&header).unwrap();
    gz.write_all(&vec![0u8; 1 << 20]).unwrap();
    gz.finish().unwrap();
    let message = lumen_study::load_nifti(&bomb)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(message.contains("bomb.nii.gz"), "{message}");
    assert!(message.contains("more than the 1024 MiB"), "{message}");
}

#[test]
fn discovery_stops_when_cancelled_even_inside_a_link_to_the_whole_disk() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("everything")).unwrap();
    let control = std::sync::Arc::new(lumen_study::LoadControl::default());
    let walking = {
        let (dir, control) = (dir.path().to_path_buf(), control.clone());
        std::thread::spawn(move || lumen_study::discover_cancellable(&dir, &control))
    };
    control.cancel.store(true, Ordering::Relaxed);
    let message = match walking.join().unwrap() {
        Err(e) => e.to_string(),
        Ok(found) => panic!("finished the disk: {} series", found.series.len()),
    };
    assert!(message.contains("cancelled"), "{message}");
}

#[test]
fn rows_and_columns_smaller_than_the_pixel_data_are_refused() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    // the 512×512 slice said to be 512×256: read as the header says, half of it would show
    let half = edited_chaos_slice(dir.path(), "half.dcm", |f| {
        f.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(256_u16),
        ));
    });
    let message = load_file(&half).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("half.dcm"), "{message}");
    assert!(message.contains("Rows (0028,0010)"), "{message}");
}

#[test]
fn a_slice_file_named_dicomdir_is_read_as_the_slice_it_is() {
    let source = lumen_tests::shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon");
    let dir = tempfile::tempdir().unwrap();
    for (name, to) in [
        ("i0000,0000b.dcm", "a.dcm"),
        ("i0001,0000b.dcm", "DICOMDIR"),
        ("i0002,0000b.dcm", "c.dcm"),
    ] {
        std::fs::copy(source.join(name), dir.path().join(to)).unwrap();
    }
    let found = discover(dir.path()).unwrap();
    assert_eq!(found.series.len(), 1);
    assert_eq!(found.series[0].slice_count, 3, "{:?}", found.problems);
}

#[test]
fn a_skewed_orientation_loads_with_a_warning() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let source = lumen_tests::shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon");
    for (i, name) in ["i0000,0000b.dcm", "i0001,0000b.dcm", "i0002,0000b.dcm"]
        .iter()
        .enumerate()
    {
        let mut file = dicom_object::open_file(source.join(name)).unwrap();
        // columns tilted about 11.5° toward the rows
        put_text(
            &mut file,
            tags::IMAGE_ORIENTATION_PATIENT,
            "1\\0\\0\\0.2\\0.9798\\0",
        );
        file.write_to_file(dir.path().join(format!("{i}.dcm")))
            .unwrap();
    }
    let found = discover(dir.path()).unwrap();
    let volume = lumen_study::load_series(&found.series[0]).unwrap();
    assert!(
        volume
            .warnings
            .iter()
            .any(|w| w.contains("not orthogonal") && w.contains("78.5°")),
        "{:?}",
        volume.warnings
    );
}
