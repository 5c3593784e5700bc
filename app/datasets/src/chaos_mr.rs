//! The CHAOS T2-SPIR MR set: `image_N.nii.gz` and `label_N.nii.gz` per patient (1 liver,
//! 2 right kidney, 3 left kidney, 4 spleen). The files are LAS (see their README); each axial
//! slice is turned into DICOM display orientation (rows anterior→posterior, columns patient
//! right→left) and mapped to 8 bits by the model's own MR rule, slice by slice as the app does.

use crate::volume::LabelledVolume;
use anyhow::{Context, ensure};
use lumen_engine::eval::Organ;
use lumen_engine::model::IntensityRule;
use lumen_study::{load_nifti, load_nifti_labels};
use ndarray::{Array2, Array3, Axis};
use std::path::{Path, PathBuf};

/// The organs of the CHAOS MR labels.
const ORGANS: [(u16, &str); 4] = [
    (1, "liver"),
    (2, "right_kidney"),
    (3, "left_kidney"),
    (4, "spleen"),
];

/// Whether `dir` holds CHAOS MR patients (`image_N.nii.gz` with their `label_N.nii.gz`).
pub fn is_chaos_mr(dir: &Path) -> bool {
    !patients(dir).unwrap_or_default().is_empty()
}

/// The image files of `dir` that have a label file beside them, with their patient numbers, in
/// that order.
pub fn patients(dir: &Path) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list folder", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let number: u32 = name
                .strip_prefix("image_")?
                .strip_suffix(".nii.gz")?
                .parse()
                .ok()?;
            label_path(&e.path()).is_file().then(|| (number, e.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn label_path(image: &Path) -> PathBuf {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().replacen("image_", "label_", 1))
        .unwrap_or_default();
    image.with_file_name(name)
}

/// One patient's slices in display orientation, 8-bit by `mr`, with their labels.
pub fn load(image_path: &Path, mr: &IntensityRule) -> anyhow::Result<LabelledVolume> {
    let image = load_nifti(image_path)?;
    let label_file = label_path(image_path);
    let labels = load_nifti_labels(&label_file)?;
    ensure!(
        image.dims == labels.dims,
        "{}: label grid {:?} differs from the image's {:?}",
        label_file.display(),
        labels.dims,
        image.dims
    );
    let [ni, nj, nk] = image.dims;
    let plane = ni * nj;
    // LAS → display: column c = i (right→left), row r = nj-1-j (anterior→posterior)
    let at = |k: usize, r: usize, c: usize| k * plane + (nj - 1 - r) * ni + c;
    let mut images = Array3::<u8>::zeros((nk, nj, ni));
    let mut label_slices = Array3::<u16>::zeros((nk, nj, ni));
    for k in 0..nk {
        let values = Array2::from_shape_fn((nj, ni), |(r, c)| image.voxels[at(k, r, c)]);
        images
            .index_axis_mut(Axis(0), k)
            .assign(&mr.to_u8(values.view()));
        let slice = Array2::from_shape_fn((nj, ni), |(r, c)| labels.labels[at(k, r, c)]);
        label_slices.index_axis_mut(Axis(0), k).assign(&slice);
    }
    let name = image_path
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".nii.gz")
                .replacen("image_", "chaos_mr_", 1)
        })
        .unwrap_or_default();
    Ok(LabelledVolume {
        name,
        organs: ORGANS.iter().map(|(l, n)| Organ::new(*l, *n)).collect(),
        images,
        labels: label_slices,
    })
}
