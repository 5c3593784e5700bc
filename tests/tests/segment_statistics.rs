//! The segment statistics and their CSV export on the CHAOS CT liver ground truth, against an
//! independent computation: each DICOM file read here with dicom-rs (raw samples, its own
//! Rescale Slope / Intercept, Pixel Spacing and Image Position), each ground-truth PNG with the
//! image crate, with nothing of Lumen's study loader or document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dicom_dictionary_std::tags;
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use lumen_annotation::Document;
use lumen_annotation::export::{Segment, write_statistics_csv};
use lumen_annotation::statistics::StatisticsCache;
use lumen_tests::{chaos_liver_labels, read_png_mask, shared_data};
use std::path::PathBuf;

/// The liver as computed straight from the files.
struct Independent {
    voxels: u64,
    volume_ml: f64,
    mean: f64,
    sd: f64,
    min: f64,
    max: f64,
    extent_mm: [f64; 3],
}

fn numbers(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> Vec<f64> {
    obj.element(tag).unwrap().to_multi_float64().unwrap()
}

fn independent_liver() -> Independent {
    let root = shared_data().join("chaos_ct_liver/Data_3D");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("DICOM_anon"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let raw = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
    let mut values: Vec<f64> = Vec::new();
    let mut spacing = [0.0; 2];
    // (slice position along z, x range, y range) of each slice with liver
    let mut slices: Vec<(f64, [usize; 2], [usize; 2])> = Vec::new();
    let mut positions = Vec::new();
    for (k, file) in files.iter().enumerate() {
        let obj = dicom_object::open_file(file).unwrap();
        let position = numbers(&obj, tags::IMAGE_POSITION_PATIENT)[2];
        positions.push(position);
        let ps = numbers(&obj, tags::PIXEL_SPACING);
        spacing = [ps[1], ps[0]]; // (row spacing, column spacing) → [x, y]
        let slope = numbers(&obj, tags::RESCALE_SLOPE)[0];
        let intercept = numbers(&obj, tags::RESCALE_INTERCEPT)[0];
        let samples: Vec<f64> = obj
            .decode_pixel_data()
            .unwrap()
            .to_vec_with_options::<f64>(&raw)
            .unwrap();
        let mask = read_png_mask(&root.join(format!("Ground/liver_GT_{k:03}.png"))).unwrap();
        let (mut xs, mut ys) = ([usize::MAX, 0], [usize::MAX, 0]);
        for ((y, x), inside) in mask.indexed_iter() {
            if *inside {
                values.push(samples[y * mask.ncols() + x] * slope + intercept);
                xs = [xs[0].min(x), xs[1].max(x)];
                ys = [ys[0].min(y), ys[1].max(y)];
            }
        }
        if xs[0] != usize::MAX {
            slices.push((position, xs, ys));
        }
    }
    positions.sort_by(f64::total_cmp);
    let dz = (positions[1] - positions[0]).abs();
    assert!(
        positions
            .windows(2)
            .all(|w| ((w[1] - w[0]).abs() - dz).abs() < 1e-3),
        "evenly spaced slices"
    );
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let x = [0, 1].map(|i| slices.iter().map(|s| s.1[i]).collect::<Vec<_>>());
    let y = [0, 1].map(|i| slices.iter().map(|s| s.2[i]).collect::<Vec<_>>());
    let width = |lo: &[usize], hi: &[usize]| {
        (hi.iter().max().unwrap() - lo.iter().min().unwrap() + 1) as f64
    };
    let zs: Vec<f64> = slices.iter().map(|s| s.0).collect();
    let z_extent = zs.iter().copied().fold(f64::MIN, f64::max)
        - zs.iter().copied().fold(f64::MAX, f64::min)
        + dz;
    Independent {
        voxels: values.len() as u64,
        volume_ml: n * spacing[0] * spacing[1] * dz / 1000.0,
        mean,
        sd,
        min: values.iter().copied().fold(f64::MAX, f64::min),
        max: values.iter().copied().fold(f64::MIN, f64::max),
        extent_mm: [
            width(&x[0], &x[1]) * spacing[0],
            width(&y[0], &y[1]) * spacing[1],
            z_extent,
        ],
    }
}

#[test]
fn chaos_liver_statistics_and_csv_equal_an_independent_computation() {
    let found =
        lumen_study::discover(shared_data().join("chaos_ct_liver/Data_3D/DICOM_anon")).unwrap();
    let volume = lumen_study::load_series(&found.series[0]).unwrap();
    let labels = chaos_liver_labels(&volume);
    let segments = vec![Segment::new(1, "Liver")];
    let (document, dropped) = Document::from_export(&volume, &labels, &segments);
    assert_eq!(dropped, 0);
    let ours = StatisticsCache::default().update(&document, &volume)[0].clone();
    let truth = independent_liver();

    assert_eq!(ours.name, "Liver");
    assert_eq!(ours.voxels, truth.voxels);
    let volume_error = (ours.volume_ml - truth.volume_ml).abs() / truth.volume_ml;
    assert!(
        volume_error < 0.001,
        "volume {:.2} mL against {:.2} mL",
        ours.volume_ml,
        truth.volume_ml
    );
    assert!(
        (ours.mean - truth.mean).abs() < 1e-3,
        "{} {}",
        ours.mean,
        truth.mean
    );
    assert!(
        (ours.sd - truth.sd).abs() < 1e-3,
        "{} {}",
        ours.sd,
        truth.sd
    );
    assert_eq!(
        (f64::from(ours.min), f64::from(ours.max)),
        (truth.min, truth.max)
    );
    for (axis, (a, b)) in ours.extent_mm.iter().zip(truth.extent_mm).enumerate() {
        assert!((a - b).abs() < 1e-3, "extent {axis}: {a} mm against {b} mm");
    }
    // an adult liver: a litre or two, some 15–25 cm across
    assert!(
        (1000.0..2500.0).contains(&ours.volume_ml),
        "{}",
        ours.volume_ml
    );

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("statistics.csv");
    write_statistics_csv(&csv, &volume, &labels, &segments).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let column = |name: &str| {
        let at = rows[0].iter().position(|c| *c == name).unwrap();
        rows[1][at]
    };
    assert_eq!(column("segment"), "Liver");
    assert_eq!(column("voxels"), truth.voxels.to_string());
    assert_eq!(column("unit"), "HU");
    let written: f64 = column("volume_ml").parse().unwrap();
    assert!((written - truth.volume_ml).abs() < 0.001, "{written}");
    let mean: f64 = column("mean").parse().unwrap();
    assert!((mean - truth.mean).abs() < 0.001, "{mean}");
    let si: f64 = column("extent_inferior_superior_mm").parse().unwrap();
    assert!((si - truth.extent_mm[2]).abs() < 0.01, "{si}");
}
