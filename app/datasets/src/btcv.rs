//! BTCV cases stored as `.npz`: `image` (Z, H, W) uint8 already windowed, `label` (Z, H, W),
//! optional `class_names` (index = label value).

use crate::npy::{NpyArray, NpyData};
use crate::npz::{Npz, NpzError};
use crate::volume::{LabelledVolume, rot90};
use lumen_engine::eval::Organ;
use ndarray::Array3;
use std::path::Path;

/// BTCV's 13 organs, label 1..=13, as `packaging/model/common.py` BTCV_CLASSES names them.
pub const BTCV_CLASSES: [&str; 13] = [
    "spleen",
    "right_kidney",
    "left_kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "portal_and_splenic_vein",
    "pancreas",
    "right_adrenal_gland",
    "left_adrenal_gland",
];

/// The held-out BTCV patients of the starter model, used when the model names none.
pub const BTCV_HELD_OUT: [&str; 4] = ["sabs_case00", "sabs_case06", "sabs_case12", "sabs_case18"];

/// Reads one case and turns it into display orientation (see [`rot90`]).
pub fn load_npz(path: &Path) -> Result<LabelledVolume, NpzError> {
    let fail = |reason: String| NpzError {
        path: path.to_path_buf(),
        reason,
    };
    let mut npz = Npz::open(path)?;
    let image = npz.array("image")?;
    let label = npz.array("label")?;
    let organs = if npz.contains("class_names") {
        organs_from_names(&npz.array("class_names")?).map_err(fail)?
    } else {
        default_organs()
    };
    let shape = volume_shape(&image).map_err(|r| fail(format!("image: {r}")))?;
    if label.shape != image.shape {
        return Err(fail(format!(
            "label is {:?} but image is {:?}",
            label.shape, image.shape
        )));
    }
    let NpyData::U8(pixels) = image.data else {
        return Err(fail(format!(
            "image must be uint8, already windowed; it holds {}",
            image.data.kind()
        )));
    };
    let labels: Vec<u16> = match label.data {
        NpyData::U8(v) => v.into_iter().map(u16::from).collect(),
        NpyData::Int(v) => v
            .into_iter()
            .map(|l| u16::try_from(l).map_err(|_| fail(format!("label value {l} is not a label"))))
            .collect::<Result<_, _>>()?,
        other => {
            return Err(fail(format!(
                "label must hold integers, it holds {}",
                other.kind()
            )));
        }
    };
    let images = Array3::from_shape_vec(shape, pixels).map_err(|e| fail(format!("image: {e}")))?;
    let labels = Array3::from_shape_vec(shape, labels).map_err(|e| fail(format!("label: {e}")))?;
    Ok(LabelledVolume {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        organs,
        images: rot90(images),
        labels: rot90(labels),
    })
}

fn volume_shape(array: &NpyArray) -> Result<(usize, usize, usize), String> {
    match array.shape.as_slice() {
        [z, h, w] if *h > 0 && *w > 0 => Ok((*z, *h, *w)),
        other => Err(format!(
            "expected a (Z, H, W) volume, found shape {other:?}"
        )),
    }
}

fn default_organs() -> Vec<Organ> {
    BTCV_CLASSES
        .iter()
        .enumerate()
        .map(|(i, name)| Organ::new(i as u16 + 1, *name))
        .collect()
}

/// `class_names[i]` names label `i`; index 0 is the background.
fn organs_from_names(names: &NpyArray) -> Result<Vec<Organ>, String> {
    let NpyData::Str(names) = &names.data else {
        return Err(format!(
            "class_names must be strings, it holds {}",
            names.data.kind()
        ));
    };
    names
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, name)| {
            u16::try_from(i)
                .map(|label| Organ::new(label, name.clone()))
                .map_err(|_| "class_names has more than 65535 entries".to_string())
        })
        .collect()
}

/// `sabs_caseNN` from `NN` (or the name as given).
pub fn case_name(text: &str) -> String {
    let text = text.trim();
    match text.parse::<u32>() {
        Ok(n) if text.chars().all(|c| c.is_ascii_digit()) => format!("sabs_case{n:02}"),
        _ => text.strip_suffix(".npz").unwrap_or(text).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_become_file_stems() {
        assert_eq!(case_name("6"), "sabs_case06");
        assert_eq!(case_name(" 18"), "sabs_case18");
        assert_eq!(case_name("sabs_case12.npz"), "sabs_case12");
    }

    #[test]
    fn class_names_name_labels_from_one() {
        let names = NpyArray {
            shape: vec![3],
            data: NpyData::Str(vec!["background".into(), "spleen".into(), "liver".into()]),
        };
        let organs = organs_from_names(&names).unwrap();
        assert_eq!(
            organs,
            vec![Organ::new(1, "spleen"), Organ::new(2, "liver")]
        );
        assert_eq!(default_organs()[5], Organ::new(6, "liver"));
    }
}
