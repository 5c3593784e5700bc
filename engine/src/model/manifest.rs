//! `model.toml`: what a model bundle declares about itself.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
    /// How the slice is resized to S (the filter the model was trained with).
    #[serde(default)]
    pub resize: ResizeFilter,
    pub normalize: Normalize,
    pub intensity: IntensityRules,
    pub precision: Precision,
    /// Which decoder output each kind of prompt takes.
    #[serde(default)]
    pub prompts: PromptRules,
    pub files: Files,
    #[serde(default)]
    pub provenance: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub accuracy: BTreeMap<String, toml::Value>,
    /// A synthetic calibration set shipped inside the bundle (made from the model alone, no
    /// patient data), so requantizing only calibrates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<ShippedSynthetic>,
}

/// Where a bundle's shipped synthetic calibration set is, and what it must hash to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippedSynthetic {
    /// The folder inside the bundle: `config.json`, `image_NNN.png`, `label_NNN.png`.
    pub path: String,
    pub images: usize,
    /// The set's hash: sha256 of its images' pixels, in order.
    pub sha256: String,
}

/// The resampling filter that brings the slice's longest side to S.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    /// Antialiased bilinear (the `image` crate's triangle filter): the starter model's recipe.
    #[default]
    Triangle,
    /// Area averaging, bit-exact with OpenCV's `INTER_AREA` when reducing (LiteMedSAM's).
    Area,
}

/// How the resized 8-bit slice becomes the encoder's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    #[serde(default)]
    pub rule: NormalizeRule,
    /// Per channel, on the 0–255 scale: `(x - mean) / std`. Under `minmax` they state the
    /// affine map the rule comes to on a slice that spans 0–255 (mean 0, std 255), which the
    /// data-free synthesis and the quantizer work in.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The normalization rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizeRule {
    /// `(x - mean) / std` per channel.
    #[default]
    MeanStd,
    /// `(x - min) / max(max - min, 1e-8)` over the resized slice, before padding: 0–1.
    MinMax,
}

/// Which decoder output a lone box or a lone click takes (a prompt of several elements always
/// takes the single-mask output). SAM's advice for one prompt is the best multimask candidate;
/// a model trained otherwise says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRules {
    #[serde(rename = "box", default)]
    pub box_output: LoneOutput,
    #[serde(rename = "click", default)]
    pub click_output: LoneOutput,
}

/// The output a lone prompt takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoneOutput {
    /// The multimask candidate with the highest predicted IoU (SAM's own advice for one prompt).
    #[default]
    Best,
    /// Output 0, the single-mask token (`multimask_output=False`), for models trained that way.
    Single,
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
    /// The slice's own percentiles `low`..`high` (in %) map to 0–255; with `nonzero`, of its
    /// non-zero values only, and zero stays 0 (LiteMedSAM's MR rule: the background does not
    /// count).
    Percentile {
        low: f32,
        high: f32,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nonzero: bool,
    },
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

impl Precision {
    pub fn is_quantized(&self) -> bool {
        self.kind == "quantized"
    }

    /// "fp32", or "W4A8" etc. for a quantized bundle.
    pub fn label(&self) -> String {
        if !self.is_quantized() {
            return self.kind.clone();
        }
        let bits = |key: &str| {
            self.details
                .get(key)
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_else(|| "?".into())
        };
        format!("W{}A{}", bits("weight_bits"), bits("activation_bits"))
    }

    /// A text detail of a quantized bundle (`base_model`, `base_encoder_sha256`, …).
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details.get(key).and_then(toml::Value::as_str)
    }
}

/// The ONNX files of the SAM split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub encoder: FileEntry,
    pub decoder: FileEntry,
    /// A second decoder for every prompt with a click in it (a box-trained model's decoder
    /// fine-tuned for clicks); `decoder` then answers lone boxes only, as it was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_decoder: Option<FileEntry>,
}

impl Files {
    /// Every file with its role: the encoder, the decoder, and the click decoder if any.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &FileEntry)> {
        [
            ("encoder", Some(&self.encoder)),
            ("decoder", Some(&self.decoder)),
            ("click decoder", self.click_decoder.as_ref()),
        ]
        .into_iter()
        .filter_map(|(role, entry)| entry.map(|e| (role, e)))
    }
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

/// The largest `input_size` accepted: a SAM encoder at 4096² would need tens of GB; anything
/// above is a typo, not a model.
pub const MAX_INPUT_SIZE: u32 = 4096;

/// Bump when the code that turns a slice into the encoder input changes (resize filter, padding,
/// channel layout), so embeddings cached by the old code are not reused.
const PREPROCESS_VERSION: &str = "resize-longest-side/triangle;pad-bottom-right/0;grey-to-3ch;v1";

impl Manifest {
    /// Checks every value the engine uses, beyond what parsing checks. Each problem names its
    /// key, e.g. "normalize.std[1] must be a finite number > 0, found NaN".
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.format != MANIFEST_FORMAT {
            problems.push(format!(
                "format {} is not supported (this Lumen reads format {MANIFEST_FORMAT})",
                self.format
            ));
        }
        if !(1..=MAX_INPUT_SIZE).contains(&self.input_size) {
            problems.push(format!(
                "input_size must be 1–{MAX_INPUT_SIZE} pixels, found {}",
                self.input_size
            ));
        }
        for (i, mean) in self.normalize.mean.iter().enumerate() {
            if !mean.is_finite() {
                problems.push(format!(
                    "normalize.mean[{i}] must be a finite number, found {mean}"
                ));
            }
        }
        for (i, std) in self.normalize.std.iter().enumerate() {
            if !(std.is_finite() && *std > 0.0) {
                problems.push(format!(
                    "normalize.std[{i}] must be a finite number > 0, found {std}"
                ));
            }
        }
        problems.extend(self.intensity.ct.problems("intensity.ct"));
        problems.extend(self.intensity.mr.problems("intensity.mr"));
        for (key, entry) in [
            ("files.encoder", Some(&self.files.encoder)),
            ("files.decoder", Some(&self.files.decoder)),
            ("files.click_decoder", self.files.click_decoder.as_ref()),
        ] {
            problems.extend(entry.into_iter().flat_map(|e| e.problems(key)));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// A short identity of everything that decides what the encoder makes of a slice: the
    /// weights (their checksums), `input_size`, the normalization, both intensity rules and the
    /// pre-processing code's version. Two manifests with the same id give the same embeddings,
    /// so it keys the embedding and synthetic-image caches.
    pub fn embedding_id(&self) -> String {
        let mut digest = Sha256::new();
        let mut put = |key: &str, value: &[u8]| {
            digest.update((key.len() as u64).to_le_bytes());
            digest.update(key.as_bytes());
            digest.update((value.len() as u64).to_le_bytes());
            digest.update(value);
        };
        put("preprocess", PREPROCESS_VERSION.as_bytes());
        put(
            "files.encoder.sha256",
            self.files
                .encoder
                .sha256
                .trim()
                .to_ascii_lowercase()
                .as_bytes(),
        );
        put(
            "files.decoder.sha256",
            self.files
                .decoder
                .sha256
                .trim()
                .to_ascii_lowercase()
                .as_bytes(),
        );
        put("input_size", &self.input_size.to_le_bytes());
        put("resize", format!("{:?}", self.resize).as_bytes());
        put(
            "normalize.rule",
            format!("{:?}", self.normalize.rule).as_bytes(),
        );
        let floats = |values: &[f32]| -> Vec<u8> {
            // -0.0 and 0.0 give the same embeddings
            values
                .iter()
                .flat_map(|v| (v + 0.0).to_bits().to_le_bytes())
                .collect()
        };
        put("normalize.mean", &floats(&self.normalize.mean));
        put("normalize.std", &floats(&self.normalize.std));
        for (key, rule) in [
            ("intensity.ct", &self.intensity.ct),
            ("intensity.mr", &self.intensity.mr),
        ] {
            let (kind, numbers) = match *rule {
                IntensityRule::Window { center, width } => ("window", [center, width]),
                IntensityRule::Percentile { low, high, nonzero } => (
                    if nonzero {
                        "percentile of non-zero"
                    } else {
                        "percentile"
                    },
                    [low, high],
                ),
            };
            put(key, kind.as_bytes());
            put(key, &floats(&numbers));
        }
        hex::encode(&digest.finalize()[..8])
    }
}

impl FileEntry {
    /// What is wrong with this entry as written (whether the file exists is checked on open).
    fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let path = std::path::Path::new(&self.path);
        let inside = !self.path.trim().is_empty()
            && path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
        if !inside {
            problems.push(format!(
                "{key}.path must be a file name inside the bundle folder (no absolute path, no \
                 ..), found {:?}",
                self.path
            ));
        }
        let sha = self.sha256.trim();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push(format!(
                "{key}.sha256 must be 64 hex digits, found {:?}",
                self.sha256
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest() -> Manifest {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/models/ct-starter/model.toml");
        toml::from_str(&std::fs::read_to_string(dir).unwrap()).unwrap()
    }

    #[test]
    fn embedding_id_covers_weights_and_every_preprocessing_field() {
        let base = manifest();
        assert_eq!(base.embedding_id(), manifest().embedding_id());
        assert_eq!(base.embedding_id().len(), 16);
        // Fields that do not change an embedding do not change the id.
        let mut renamed = manifest();
        renamed.name = "another name".into();
        renamed.description.clear();
        renamed.accuracy.clear();
        assert_eq!(renamed.embedding_id(), base.embedding_id());

        let mut changed: Vec<(&str, Manifest)> = Vec::new();
        let mut add = |what: &'static str, edit: &dyn Fn(&mut Manifest)| {
            let mut m = manifest();
            edit(&mut m);
            changed.push((what, m));
        };
        add("normalize.std", &|m| m.normalize.std[1] = 1.0);
        add("normalize.mean", &|m| m.normalize.mean[0] += 0.5);
        add("input_size", &|m| m.input_size = 512);
        add("resize", &|m| m.resize = ResizeFilter::Area);
        add("normalize.rule", &|m| {
            m.normalize.rule = NormalizeRule::MinMax
        });
        add("ct window", &|m| {
            m.intensity.ct = IntensityRule::Window {
                center: 40.0,
                width: 400.0,
            }
        });
        add("mr percentiles", &|m| {
            m.intensity.mr = IntensityRule::Percentile {
                low: 1.0,
                high: 99.0,
                nonzero: false,
            }
        });
        add("non-zero percentiles", &|m| {
            m.intensity.mr = IntensityRule::Percentile {
                low: 0.5,
                high: 99.5,
                nonzero: true,
            }
        });
        add("rule kind", &|m| {
            m.intensity.ct = IntensityRule::Percentile {
                low: 115.0,
                high: 475.0,
                nonzero: false,
            }
        });
        add("encoder weights", &|m| {
            m.files.encoder.sha256 = "0".repeat(64);
        });
        add("decoder weights", &|m| {
            m.files.decoder.sha256 = "1".repeat(64);
        });
        let mut ids = vec![base.embedding_id()];
        for (what, m) in &changed {
            let id = m.embedding_id();
            assert!(!ids.contains(&id), "{what} does not change the id");
            ids.push(id);
        }
    }

    #[test]
    fn the_starter_manifest_validates() {
        manifest().validate().unwrap();
    }

    /// LiteMedSAM's bundle: its own decoder for boxes, the fine-tuned one for clicks, output 0
    /// for a lone box and a lone click; the starter declares neither and keeps SAM's defaults.
    #[test]
    fn a_click_decoder_and_the_lone_prompt_rules_are_read_and_checked() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/models/litemedsam/model.toml");
        let lite: Manifest = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        lite.validate().unwrap();
        assert_eq!(lite.prompts.box_output, LoneOutput::Single);
        assert_eq!(lite.prompts.click_output, LoneOutput::Single);
        let roles: Vec<&str> = lite.files.entries().map(|(role, _)| role).collect();
        assert_eq!(roles, ["encoder", "decoder", "click decoder"]);
        let starter = manifest();
        assert_eq!(starter.prompts, PromptRules::default());
        assert_eq!(starter.files.entries().count(), 2);
        let mut outside = lite.clone();
        outside.files.click_decoder.as_mut().unwrap().path = "../decoder.onnx".into();
        let problem = outside.validate().unwrap_err();
        assert!(problem.contains("files.click_decoder.path"), "{problem}");
    }
}
