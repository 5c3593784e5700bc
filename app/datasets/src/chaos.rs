//! The CHAOS CT liver set: `Data_3D/DICOM_anon/*.dcm` and `Data_3D/Ground/liver_GT_NNN.png`, one
//! hand-drawn mask per slice. As in `packaging/model/evaluate.py`, the n-th PNG (by file name)
//! labels the n-th DICOM file (by file name), whatever order the slices have in space.

use crate::volume::LabelledVolume;
use anyhow::{Context, bail, ensure};
use lumen_engine::eval::Organ;
use lumen_engine::model::IntensityRule;
use lumen_study::{discover, load_series};
use ndarray::{Array2, Array3, Axis};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The `Data_3D` folder for `path` (that folder itself or a folder holding it), if it is one.
pub fn data_root(path: &Path) -> Option<PathBuf> {
    [path.to_path_buf(), path.join("Data_3D")]
        .into_iter()
        .find(|p| p.join("DICOM_anon").is_dir() && p.join("Ground").is_dir())
}

/// Files of `dir` ending in `.ext` (case as given, like Python's glob), sorted by name.
fn sorted_files(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads the series with the study loader, windows it with the model's CT rule, and pairs each
/// slice with its PNG mask (label 1 = liver).
pub fn load(root: &Path, ct: &IntensityRule) -> anyhow::Result<LabelledVolume> {
    let dicom_dir = root.join("DICOM_anon");
    let dicoms = sorted_files(&dicom_dir, "dcm")?;
    let masks = sorted_files(&root.join("Ground"), "png")?;
    ensure!(
        !dicoms.is_empty() && dicoms.len() == masks.len(),
        "{}: {} DICOM files but {} masks in {}; they must pair one to one",
        root.display(),
        dicoms.len(),
        masks.len(),
        root.join("Ground").display()
    );
    let discovery = discover(&dicom_dir)?;
    let series = discovery
        .series
        .iter()
        .find(|s| {
            s.frames
                .iter()
                .any(|f| f.path.file_name() == dicoms[0].file_name())
        })
        .with_context(|| format!("{}: no readable DICOM series", dicom_dir.display()))?;
    let volume = load_series(series)?;
    let [nx, ny, _] = volume.dims;
    let by_file: HashMap<OsString, usize> = volume
        .slices
        .iter()
        .enumerate()
        .filter_map(|(z, s)| s.path.file_name().map(|n| (n.to_os_string(), z)))
        .collect();
    let mut images = Array3::<u8>::zeros((dicoms.len(), ny, nx));
    let mut labels = Array3::<u16>::zeros((dicoms.len(), ny, nx));
    for (k, (dicom, mask_path)) in dicoms.iter().zip(&masks).enumerate() {
        let z = dicom
            .file_name()
            .and_then(|n| by_file.get(n))
            .with_context(|| format!("{}: not part of the loaded series", dicom.display()))?;
        let image = lumen_annotation::propagate::model_image(&volume, *z, ct)
            .with_context(|| format!("{}: slice {z} is missing", dicom.display()))?;
        images.index_axis_mut(Axis(0), k).assign(&image);
        let mask = read_mask(mask_path)?;
        if mask.dim() != (ny, nx) {
            bail!(
                "{}: mask is {}×{} but {} is {}×{}",
                mask_path.display(),
                mask.dim().1,
                mask.dim().0,
                dicom.display(),
                nx,
                ny
            );
        }
        labels.index_axis_mut(Axis(0), k).assign(&mask);
    }
    Ok(LabelledVolume {
        name: "chaos_ct_liver".into(),
        organs: vec![Organ::new(1, "liver")],
        images,
        labels,
    })
}

/// A PNG mask: any non-zero pixel is label 1.
fn read_mask(path: &Path) -> anyhow::Result<Array2<u16>> {
    let image = image::open(path)
        .with_context(|| format!("{}: cannot read mask", path.display()))?
        .into_luma8();
    let (w, h) = image.dimensions();
    let labels = image
        .into_raw()
        .into_iter()
        .map(|v| u16::from(v > 0))
        .collect();
    Array2::from_shape_vec((h as usize, w as usize), labels)
        .with_context(|| format!("{}: inconsistent image size", path.display()))
}
