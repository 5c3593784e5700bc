use super::*;

#[test]
fn decimal_strings_fit_16_chars() {
    assert_eq!(ds(0.5), "0.5");
    assert_eq!(ds(-249.51171875), "-249.51171875");
    let t = ds(-0.26723837607830001);
    assert!(
        t.len() <= 16 && (t.parse::<f64>().unwrap() + 0.267238376078).abs() < 1e-10,
        "{t}"
    );
    assert!(ds(1.0e-20) == "0");
}

#[test]
fn colours_round_trip_through_cielab() {
    for c in [
        [221u8, 130, 101],
        [0, 151, 206],
        [255, 255, 255],
        [0, 0, 0],
        [244, 214, 49],
    ] {
        let back = dicom_lab_to_rgb(rgb_to_dicom_lab(c));
        for k in 0..3 {
            assert!(
                (i32::from(back[k]) - i32::from(c[k])).abs() <= 1,
                "{c:?} -> {back:?}"
            );
        }
    }
}
