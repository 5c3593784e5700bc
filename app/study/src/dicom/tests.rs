use super::attrs::*;
use super::discovery::*;
use super::plan::*;
use super::*;
use crate::geometry;

fn fh(pos: [f64; 3], uid: &str) -> FrameHeader {
    FrameHeader {
        path: PathBuf::from(format!("{uid}.dcm")),
        sop_instance_uid: uid.into(),
        position: Some(pos),
        orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        pixel_spacing: Some([0.5, 0.7]),
        rows: 4,
        columns: 3,
        slope: 1.0,
        ..Default::default()
    }
}

#[test]
fn sorts_by_position_not_instance_number() {
    let mut frames = vec![
        fh([0.0, 0.0, 10.0], "a"),
        fh([0.0, 0.0, 0.0], "b"),
        fh([0.0, 0.0, 5.0], "c"),
    ];
    frames[0].instance_number = Some(1);
    frames[1].instance_number = Some(3);
    frames[2].instance_number = Some(2);
    let plan = plan_geometry(&frames, Path::new("x")).unwrap();
    assert_eq!(plan.order, vec![1, 2, 0]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    // x uses the column spacing (second PixelSpacing value), y the row spacing
    assert_eq!(plan.spacing, [0.7, 0.5, 5.0]);
    assert!((plan.patient_from_voxel[0][0] - 0.7).abs() < 1e-12);
    assert!((plan.patient_from_voxel[1][1] - 0.5).abs() < 1e-12);
    assert!((plan.patient_from_voxel[2][2] - 5.0).abs() < 1e-12);
}

#[test]
fn detects_missing_uneven_duplicate_and_same_position() {
    let frames = vec![
        fh([0.0, 0.0, 0.0], "a"),
        fh([0.0, 0.0, 5.0], "b"),
        fh([0.0, 0.0, 10.0], "c"),
        fh([0.0, 0.0, 20.0], "d"),
    ];
    let plan = plan_geometry(&frames, Path::new("x")).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("1 slice(s) appear to be missing")),
        "{:?}",
        plan.warnings
    );

    let frames = vec![
        fh([0.0, 0.0, 0.0], "a"),
        fh([0.0, 0.0, 4.2], "b"),
        fh([0.0, 0.0, 5.3], "c"),
    ];
    let plan = plan_geometry(&frames, Path::new("x")).unwrap();
    assert!(plan.warnings.iter().any(|w| w.contains("uneven")));

    let frames = vec![
        fh([0.0, 0.0, 0.0], "a"),
        fh([0.0, 0.0, 0.0], "b"),
        fh([0.0, 0.0, 0.0], "c"),
    ];
    let e = plan_geometry(&frames, Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("same position"), "{e}");

    let frames = vec![
        fh([0.0, 0.0, 0.0], "a"),
        fh([0.0, 0.0, 0.0], "b"),
        fh([0.0, 0.0, 3.0], "c"),
    ];
    let e = plan_geometry(&frames, Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("duplicate slice positions"), "{e}");
}

#[test]
fn detects_gantry_tilt() {
    let c = 20f64.to_radians().cos();
    let s = 20f64.to_radians().sin();
    let mut frames: Vec<FrameHeader> = (0..3)
        .map(|i| fh([0.0, 0.0, f64::from(i) * 5.0], "t"))
        .collect();
    for (i, f) in frames.iter_mut().enumerate() {
        f.orientation = Some([1.0, 0.0, 0.0, 0.0, c, -s]);
        f.sop_instance_uid = format!("t{i}");
    }
    let plan = plan_geometry(&frames, Path::new("x")).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("gantry tilt of 20.0°")),
        "{:?}",
        plan.warnings
    );
    // the sheared column keeps slice positions exact
    let p = geometry::apply(&plan.patient_from_voxel, [0.0, 0.0, 2.0]);
    assert!((p[2] - 10.0).abs() < 1e-9);
}

#[test]
fn dicomdir_is_read_and_not_listed_as_an_image() {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::FileMetaTableBuilder;
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dicom2nifti_tests/tests/data/anatomical/001");
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut records = Vec::new();
    for (i, f) in names.iter().enumerate() {
        std::fs::copy(f, images.join(format!("im{i}"))).unwrap();
        let mut rec = InMemDicomObject::new_empty();
        rec.put(DataElement::new(
            tags::DIRECTORY_RECORD_TYPE,
            VR::CS,
            PrimitiveValue::from("IMAGE"),
        ));
        // DICOMDIR file ids are upper case; the files on disk are not
        rec.put(DataElement::new(
            tags::REFERENCED_FILE_ID,
            VR::CS,
            PrimitiveValue::from(format!("IMAGES\\IM{i}")),
        ));
        records.push(rec);
    }
    let mut dd = InMemDicomObject::new_empty();
    dd.put(DataElement::new(
        tags::FILE_SET_ID,
        VR::CS,
        PrimitiveValue::from("LUMEN"),
    ));
    dd.put(DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(records),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(MEDIA_STORAGE_DIRECTORY)
        .media_storage_sop_instance_uid("2.25.1")
        .transfer_syntax("1.2.840.10008.1.2.1");
    dd.with_meta(meta)
        .unwrap()
        .write_to_file(dir.path().join("DICOMDIR"))
        .unwrap();
    let listed = dicomdir_files(&dir.path().join("DICOMDIR"))
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|p| p.exists()), "{listed:?}");
    let d = discover(dir.path()).unwrap();
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.series.len(), 1);
    assert_eq!(
        d.series[0].slice_count, 4,
        "files found twice (walk + DICOMDIR)"
    );
    assert_eq!(load_series(&d.series[0]).unwrap().dims, [256, 256, 4]);
}

#[test]
fn bad_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("lumen-study-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("junk.dcm");
    std::fs::write(&p, b"this is not dicom").unwrap();
    let e = load_file(&p).unwrap_err().to_string();
    assert!(e.contains("junk.dcm") && e.contains("cannot read"), "{e}");
    let d = discover(&dir).unwrap();
    assert!(d.series.is_empty());
    assert_eq!(d.problems.len(), 1);
    assert_eq!(d.problems[0].reason, "not a DICOM file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_rle_fragment_must_declare_1_to_15_segments_in_a_64_byte_header() {
    use super::guards::check_rle_header;
    let path = Path::new("slice.dcm");
    let mut fragment = vec![0u8; 64];
    fragment[0] = 2;
    assert!(check_rle_header(path, 0, &fragment).is_ok());
    fragment[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = check_rle_header(path, 0, &fragment)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("slice.dcm: ") && e.contains("declares 4294967295 segments"),
        "{e}"
    );
    let e = check_rle_header(path, 3, &fragment[..20])
        .unwrap_err()
        .to_string();
    assert!(e.contains("RLE fragment 3 is 20 bytes"), "{e}");
}

/// An explicit VR element with a 16-bit length.
fn short_element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut e = Vec::new();
    e.extend(tag.0.to_le_bytes());
    e.extend(tag.1.to_le_bytes());
    e.extend(vr);
    e.extend((value.len() as u16).to_le_bytes());
    e.extend(value);
    e
}

/// The preamble, "DICM" and a file meta group naming only the transfer syntax.
fn file_meta(transfer_syntax: &[u8]) -> Vec<u8> {
    let syntax = short_element((0x0002, 0x0010), b"UI", transfer_syntax);
    let mut file = vec![0u8; 128];
    file.extend(b"DICM");
    let group_length = (syntax.len() as u32).to_le_bytes();
    file.extend(short_element((0x0002, 0x0000), b"UL", &group_length));
    file.extend(syntax);
    file
}

#[test]
fn lengths_inside_an_implicit_vr_sequence_of_defined_length_are_checked() {
    use super::guards::check_declared_lengths;
    let mut file = file_meta(b"1.2.840.10008.1.2\0");
    // implicit VR: (0008,1115) Referenced Series Sequence, 24 bytes, one item of 16 bytes holding
    // (0008,1150) Referenced SOP Class UID that declares 4 GiB
    let implicit = |tag: (u16, u16), len: u32| {
        let mut e = Vec::new();
        e.extend(tag.0.to_le_bytes());
        e.extend(tag.1.to_le_bytes());
        e.extend(len.to_le_bytes());
        e
    };
    file.extend(implicit((0x0008, 0x1115), 24));
    file.extend(implicit((0xFFFE, 0xE000), 16));
    file.extend(implicit((0x0008, 0x1150), 0xFFFF_FF00));
    file.extend([0u8; 8]);
    let e = check_declared_lengths(Path::new("seq.dcm"), &file, file.len() as u64)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("element (0008,1150) declares 4294967040 bytes"),
        "{e}"
    );
}

#[test]
fn the_walk_leaves_the_odd_byte_of_an_at_value_to_the_next_header_as_the_parser_does() {
    use super::guards::check_declared_lengths;
    let mut file = file_meta(b"1.2.840.10008.1.2.1\0");
    // (0020,9165) AT of 5 bytes: dicom-rs reads one tag (4 bytes), and its 5th byte starts the
    // next header, (0009,0010) UN declaring 3.75 GiB; one byte further on the header would be
    // cut short by the end of the file and the walk would stop without a word
    let mut at = short_element((0x0020, 0x9165), b"AT", &[0x62, 0x00, 0x0B, 0x00, 0x09]);
    at.extend([0x00, 0x10, 0x00, b'U', b'N', 0, 0, 0x00, 0x00, 0x00, 0xF0]);
    file.extend(at);
    let e = check_declared_lengths(Path::new("odd.dcm"), &file, file.len() as u64)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("element (0009,0010) declares 4026531840 bytes"),
        "{e}"
    );
}
