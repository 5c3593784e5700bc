//! The TotalSegmentator example: the 20-slice Siemens CT DICOM series `example_ct_dicom/` and
//! its label map `example_seg_dicom.nii.gz` (ids named in `labels_total.tsv`), read onto the
//! series voxel for voxel as a SEG or NIfTI import is. The labels were made by the
//! TotalSegmentator model, not drawn by hand. Scored: the abdominal organs BTCV also labels.

use crate::volume::LabelledVolume;
use anyhow::{Context, ensure};
use lumen_engine::eval::Organ;
use lumen_engine::model::IntensityRule;
use lumen_study::{discover, load_series};
use ndarray::{Array3, Axis};
use std::path::{Path, PathBuf};

/// TotalSegmentator's names of the organs scored (BTCV's 13, as TotalSegmentator names them).
const SCORED: [&str; 13] = [
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "portal_vein_and_splenic_vein",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
];

/// The example folder for `path` (that folder, holding `example_ct_dicom/`,
/// `example_seg_dicom.nii.gz` and `labels_total.tsv`), if it is one.
pub fn data_root(path: &Path) -> Option<PathBuf> {
    let is_root = path.join("example_ct_dicom").is_dir()
        && path.join("example_seg_dicom.nii.gz").is_file()
        && path.join("labels_total.tsv").is_file();
    is_root.then(|| path.to_path_buf())
}

/// The series, 8-bit by the model's CT rule, with the scored organs' labels.
pub fn load(root: &Path, ct: &IntensityRule) -> anyhow::Result<LabelledVolume> {
    let dicom_dir = root.join("example_ct_dicom");
    let series = discover(&dicom_dir)?
        .series
        .into_iter()
        .next()
        .with_context(|| format!("{}: no readable DICOM series", dicom_dir.display()))?;
    let volume = load_series(&series)?;
    let seg_path = root.join("example_seg_dicom.nii.gz");
    let (labels, _) = lumen_annotation::export::reimport_nifti(&seg_path, &volume)?;
    let names = read_names(&root.join("labels_total.tsv"))?;
    let organs: Vec<Organ> = names
        .iter()
        .filter(|(_, name)| SCORED.contains(&name.as_str()))
        .map(|(id, name)| Organ::new(*id, name.as_str()))
        .collect();
    ensure!(
        organs.len() == SCORED.len(),
        "{}: names only {} of the {} scored organs",
        root.join("labels_total.tsv").display(),
        organs.len(),
        SCORED.len()
    );
    let [nx, ny, nz] = volume.dims;
    let mut images = Array3::<u8>::zeros((nz, ny, nx));
    for z in 0..nz {
        let image = lumen_annotation::propagate::model_image(&volume, z, ct)
            .with_context(|| format!("{}: slice {z} is missing", dicom_dir.display()))?;
        images.index_axis_mut(Axis(0), z).assign(&image);
    }
    let scored: Vec<u16> = organs.iter().map(|o| o.label).collect();
    let kept: Vec<u16> = labels
        .labels
        .iter()
        .map(|l| if scored.contains(l) { *l } else { 0 })
        .collect();
    Ok(LabelledVolume {
        name: "totalsegmentator_example".into(),
        organs,
        images,
        labels: Array3::from_shape_vec((nz, ny, nx), kept)?,
    })
}

/// `id<TAB>name` lines after a header.
fn read_names(path: &Path) -> anyhow::Result<Vec<(u16, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (id, name) = line.split_once('\t')?;
            Some((id.trim().parse().ok()?, name.trim().to_string()))
        })
        .collect())
}
