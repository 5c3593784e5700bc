//! Shared helpers for Lumen's end-to-end tests: where the real data lives, and the few
//! measurements tests make on masks.

use ndarray::{Array2, ArrayView2};
use std::path::{Path, PathBuf};

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `../shared/data` beside the repository, where the real medical test data lives.
pub fn shared_data() -> PathBuf {
    repo_root().join("..").join("shared").join("data")
}

/// The bundled starter model, or the bundle named by `LUMEN_TEST_MODEL` (to run the suite on another model).
pub fn starter_model_dir() -> PathBuf {
    match std::env::var_os("LUMEN_TEST_MODEL") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("assets").join("models").join("ct-starter"),
    }
}

/// Dice coefficient of two masks of the same size (1.0 when both are empty).
pub fn dice(a: ArrayView2<bool>, b: ArrayView2<bool>) -> f64 {
    let both = a.iter().zip(b.iter()).filter(|(x, y)| **x && **y).count();
    let total = a.iter().filter(|x| **x).count() + b.iter().filter(|x| **x).count();
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

/// Tight bounding box `(x0, y0, x1, y1)` of a mask's true pixels, if any.
pub fn bounding_box(mask: ArrayView2<bool>) -> Option<(usize, usize, usize, usize)> {
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for ((y, x), on) in mask.indexed_iter() {
        if *on {
            bbox = Some(match bbox {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    bbox
}

/// The tight box around a mask as a SAM box prompt (pixel-centre coordinates); None when empty.
pub fn box_prompt(mask: ArrayView2<bool>) -> Option<lumen_engine::model::BoxPrompt> {
    bounding_box(mask).map(|(x0, y0, x1, y1)| lumen_engine::model::BoxPrompt {
        x0: x0 as f32,
        y0: y0 as f32,
        x1: x1 as f32,
        y1: y1 as f32,
    })
}

/// A PNG read as a mask (any non-zero pixel is inside).
pub fn read_png_mask(path: &Path) -> anyhow::Result<Array2<bool>> {
    let image = image::open(path)?.into_luma8();
    let (w, h) = image.dimensions();
    Ok(Array2::from_shape_vec((h as usize, w as usize), image.into_raw())?.mapv(|v| v > 0))
}

/// One CHAOS CT slice in HU and its hand-drawn liver mask (the PNG with the same index).
pub fn chaos_liver_slice(index: usize) -> anyhow::Result<(Array2<f32>, Array2<bool>)> {
    let root = shared_data().join("chaos_ct_liver").join("Data_3D");
    let dicom = root
        .join("DICOM_anon")
        .join(format!("i{index:04},0000b.dcm"));
    let volume = lumen_study::load_file(&dicom)?;
    let [nx, ny, _] = volume.dims;
    let hu = Array2::from_shape_vec((ny, nx), volume.voxels)?;
    let mask = read_png_mask(&root.join("Ground").join(format!("liver_GT_{index:03}.png")))?;
    anyhow::ensure!(
        mask.dim() == hu.dim(),
        "CHAOS slice {index}: mask and image differ in size"
    );
    Ok((hu, mask))
}

/// The CHAOS CT liver ground truth (one PNG per DICOM file, in file-name order) as a label map
/// (1 = liver) on `volume`, the loaded CHAOS series.
pub fn chaos_liver_labels(volume: &lumen_study::Volume) -> lumen_study::LabelVolume {
    let root = shared_data().join("chaos_ct_liver").join("Data_3D");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("DICOM_anon"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), volume.dims[2], "one CHAOS file per slice");
    let mut labels = lumen_study::LabelVolume::empty_like(volume);
    let plane = volume.slice_len();
    for (k, file) in files.iter().enumerate() {
        let Some(z) = volume.slices.iter().position(|s| s.path == *file) else {
            panic!("{} is not a slice of the volume", file.display());
        };
        let mask = read_png_mask(&root.join("Ground").join(format!("liver_GT_{k:03}.png")));
        let Ok(mask) = mask else {
            panic!("CHAOS ground truth {k} is unreadable");
        };
        assert_eq!(mask.dim(), (volume.dims[1], volume.dims[0]));
        for (i, inside) in mask.iter().enumerate() {
            if *inside {
                labels.labels[z * plane + i] = 1;
            }
        }
    }
    labels
}

/// The bundled LiteMedSAM model.
pub fn litemedsam_model_dir() -> PathBuf {
    repo_root().join("assets").join("models").join("litemedsam")
}

/// The default model: LiteMedSAM quantized to W8A8 without patient data.
pub fn litemedsam_w8a8_model_dir() -> PathBuf {
    repo_root()
        .join("assets")
        .join("models")
        .join("litemedsam-w8a8")
}

/// One CHAOS T2 MR patient's axial slice with the most liver, in display orientation and 8-bit
/// by `mr` (`lumen_datasets::chaos_mr`), with its labels (1 liver, 2 right kidney, 3 left
/// kidney, 4 spleen).
pub fn chaos_mr_liver_slice(
    patient: u32,
    mr: &lumen_engine::model::IntensityRule,
) -> anyhow::Result<(Array2<u8>, Array2<u16>)> {
    let image = shared_data().join(format!("chaos_t2_mr/image_{patient}.nii.gz"));
    let volume = lumen_datasets::chaos_mr::load(&image, mr)?;
    let z = (0..volume.images.dim().0)
        .max_by_key(|z| volume.label(*z).iter().filter(|l| **l == 1).count())
        .unwrap_or(0);
    Ok((volume.image(z).to_owned(), volume.label(z).to_owned()))
}

/// A Python with numpy and OpenCV for reference checks (LiteMedSAM's own preprocessing), from the
/// pinned `packaging/model/litemedsam/reference-requirements.txt`.
pub fn reference_python() -> anyhow::Result<PathBuf> {
    python_env(
        "python-reference",
        "packaging/model/litemedsam/reference-requirements.txt",
        "import cv2, numpy",
    )
}

/// A Python with pydicom, highdicom and nibabel, the other tools that read Lumen's SEG and NIfTI
/// exports (`tests/tests/export_seg_validate.py`), from the pinned
/// `tests/tests/export_seg_validate-requirements.txt`.
pub fn seg_check_python() -> anyhow::Result<PathBuf> {
    python_env(
        "python-seg-check",
        "tests/tests/export_seg_validate-requirements.txt",
        "import highdicom, nibabel, numpy, pydicom",
    )
}

/// A virtual environment under `target/NAME`, made on first use from the pinned `requirements`
/// (a path from the repository root; PyPI, like the build's ONNX Runtime) and reused while
/// `imports` succeeds in it.
fn python_env(name: &str, requirements: &str, imports: &str) -> anyhow::Result<PathBuf> {
    use std::process::Command;
    let venv = repo_root().join("target").join(name);
    let python = venv.join("bin").join("python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", imports])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let requirements = repo_root().join(requirements);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?;
    anyhow::ensure!(made.success(), "python3 -m venv {} failed", venv.display());
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(&requirements)
        .status()?;
    anyhow::ensure!(
        installed.success() && ready(&python),
        "could not install {} into {}",
        requirements.display(),
        venv.display()
    );
    Ok(python)
}
