//! A labelled volume ready for the protocol: 8-bit slices the model reads, label maps, organ names.

use lumen_engine::eval::Organ;
use ndarray::{Array3, ArrayView2, Axis};

/// Slices `[z][row][column]` already mapped to the model's 8-bit input and in display orientation,
/// with a label map of the same shape.
#[derive(Debug, Clone)]
pub struct LabelledVolume {
    /// Case name (file stem), used in progress messages and to seed jittered boxes.
    pub name: String,
    pub organs: Vec<Organ>,
    pub images: Array3<u8>,
    pub labels: Array3<u16>,
}

impl LabelledVolume {
    /// Indices of the slices with any non-zero label, every `every`-th one (1 = all).
    pub fn labelled_slices(&self, every: usize) -> Vec<usize> {
        self.labels
            .axis_iter(Axis(0))
            .enumerate()
            .filter(|(_, s)| s.iter().any(|v| *v != 0))
            .map(|(z, _)| z)
            .step_by(every.max(1))
            .collect()
    }

    pub fn image(&self, z: usize) -> ArrayView2<'_, u8> {
        self.images.index_axis(Axis(0), z)
    }

    pub fn label(&self, z: usize) -> ArrayView2<'_, u16> {
        self.labels.index_axis(Axis(0), z)
    }

    /// A stable key for slice `z` of this case (FNV-1a of the name, mixed with `z`), so jittered
    /// boxes do not depend on which other slices or cases are evaluated.
    pub fn slice_key(&self, z: usize) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h ^ (z as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// `np.rot90(volume, 1, axes=(1, 2))`: each slice turned 90° counter-clockwise,
/// `out[z, i, j] = in[z, j, W-1-i]`. BTCV's npz slices are stored turned; this puts them in DICOM
/// display orientation (anterior up, patient right on the image's left), which is how the starter
/// model was fine-tuned and how the engine sees CT (`packaging/model/prepare_data.py` btcv_display).
pub fn rot90<T: Clone>(volume: Array3<T>) -> Array3<T> {
    let mut turned = volume.permuted_axes([0, 2, 1]);
    turned.invert_axis(Axis(1));
    turned.as_standard_layout().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn rot90_matches_numpy() {
        // np.rot90([[1, 2, 3], [4, 5, 6]]) == [[3, 6], [2, 5], [1, 4]]
        let v = array![[[1, 2, 3], [4, 5, 6]]];
        assert_eq!(rot90(v), array![[[3, 6], [2, 5], [1, 4]]]);
    }

    #[test]
    fn labelled_slices_skip_empty_ones_and_stride() {
        let mut labels = Array3::<u16>::zeros((6, 2, 2));
        for z in [1, 2, 4, 5] {
            labels[[z, 0, 1]] = 3;
        }
        let volume = LabelledVolume {
            name: "case".into(),
            organs: vec![],
            images: Array3::zeros((6, 2, 2)),
            labels,
        };
        assert_eq!(volume.labelled_slices(1), vec![1, 2, 4, 5]);
        assert_eq!(volume.labelled_slices(2), vec![1, 4]);
        assert_eq!(
            volume.label(4),
            Array2::from_shape_vec((2, 2), vec![0, 3, 0, 0]).unwrap()
        );
        assert_ne!(volume.slice_key(1), volume.slice_key(2));
    }
}
