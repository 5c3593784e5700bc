//! `model.toml`: what a model bundle declares about itself.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifest of a model bundle. Unknown keys under `provenance` and `accuracy` are kept as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; this engine reads format 1.
    pub format: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// S: images are resized so their longest side is S, then padded to S×S.
    pub input_size: u32,
    pub normalize: Normalize,
    pub intensity: IntensityRules,
    pub precision: Precision,
    pub files: Files,
    #[serde(default)]
    pub provenance: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub accuracy: BTreeMap<String, toml::Value>,
}

/// Per-channel normalization on the 0–255 scale: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How each modality's raw intensities become the 8-bit image the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityRules {
    pub ct: IntensityRule,
    pub mr: IntensityRule,
}

/// One intensity rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase", deny_unknown_fields)]
pub enum IntensityRule {
    /// A fixed window in the modality's units (HU for CT): `center ± width/2` maps to 0–255.
    Window { center: f32, width: f32 },
    /// The slice's own percentiles `low`..`high` (in %) map to 0–255.
    Percentile { low: f32, high: f32 },
}

/// The numeric precision of the bundle. (No `deny_unknown_fields`: serde cannot combine it with
/// the flattened details, which take every other key.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// "fp32" or "quantized".
    pub kind: String,
    /// Quantization details (bits, method, synthetic-set hash, what is real and simulated).
    #[serde(flatten)]
    pub details: BTreeMap<String, toml::Value>,
}

/// The two ONNX files of the SAM split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub encoder: FileEntry,
    pub decoder: FileEntry,
}

/// A file of the bundle, relative to its folder, with its expected sha256 (hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

/// The manifest format this engine reads.
pub const MANIFEST_FORMAT: u32 = 1;
