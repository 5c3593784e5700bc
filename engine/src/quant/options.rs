//! What a requantization is asked for and what it reports: the bits, the synthesis preset, the
//! calibration source, the options, progress and the report.

use super::{GraphBits, GraphSummary};
use crate::runtime::SessionConfig;
use crate::synth::{LossWeights, SynthConfig};
use ndarray::Array2;
use std::path::PathBuf;

/// The lowest self-check mask IoU (quantized vs FP model, on held-back synthetic images) at
/// which `requantize` writes a bundle. Real runs on the starter model (docs/quantization.md,
/// standard preset) score 0.98 at W8A8, 0.93 at W6A6 and W4A8, 0.83 at W4A4, and 0.75–0.82 for
/// every W4A4 ablation, Gaussian-noise calibration included; a broken model or bundle (NaN
/// normalization, a wrong graph) scores near 0. 0.5 sits well under the worst real run, so
/// W4A4 on the quick preset (one held-back image, 4 prompts: noisier) still passes, and well
/// over what garbage gets. Callers may set their own floor (`lumen quantize --min-self-check`).
pub const DEFAULT_MIN_SELF_CHECK_IOU: f64 = 0.5;

/// Bit widths of a requantization.
pub type Bits = GraphBits;

/// How much synthesis effort to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A few images and steps: for tests and a first look.
    Quick,
    /// The default: fits in about a quarter of an hour on two cores.
    Standard,
    /// The paper's budget (many images × 500 iterations): hours on a CPU.
    Paper,
}

impl Preset {
    pub fn synth_config(self) -> SynthConfig {
        let (images, steps) = match self {
            Self::Quick => (4, 12),
            Self::Standard => (32, 50),
            Self::Paper => (48, 500),
        };
        SynthConfig {
            images,
            steps,
            lr: 0.2,
            betas: (0.5, 0.9),
            warmup: 0.1,
            weights: LossWeights {
                pse: 1.0,
                label: 1.0,
                tv: 1.0,
                tv_target: 0.15,
            },
            evolve_every: 5,
            max_roll: 8,
            seed: 20241001,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Standard => "standard",
            Self::Paper => "paper",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quick" => Ok(Self::Quick),
            "standard" => Ok(Self::Standard),
            "paper" => Ok(Self::Paper),
            other => Err(format!("unknown preset '{other}' (quick, standard, paper)")),
        }
    }
}

/// Where calibration images come from. Only `Dfq` is offered to users; the others exist for
/// the ablation (`Images` is a development upper bound: the app never calibrates on scans).
#[derive(Debug, Clone, PartialEq)]
pub enum Calibration {
    /// Full DFQ-SAM synthesis: entropy + evolving pseudo-labels + TV.
    Dfq,
    /// Synthesis with the entropy and TV terms only.
    PseOnly,
    /// Gaussian noise images, no synthesis.
    Noise,
    /// Given 8-bit images.
    Images(Vec<Array2<u8>>),
}

impl Calibration {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dfq => "dfq-sam",
            Self::PseOnly => "pse-only",
            Self::Noise => "gaussian-noise",
            Self::Images(_) => "real-images",
        }
    }
}

/// Everything `requantize` needs besides the model.
#[derive(Debug, Clone)]
pub struct RequantizeOptions {
    pub bits: Bits,
    pub preset: Preset,
    pub calibration: Calibration,
    /// RepQ reparameterization of post-LayerNorm activations.
    pub reparameterize: bool,
    /// Below 8-bit weights, the fraction of the weights that may keep 8 bits, given to the
    /// layers whose low-bit weights cost most (`quantize_graph`); 0: none.
    pub eight_bit_budget: f64,
    /// Also store the decoder's weights as integers (weights only; activations stay float).
    pub quantize_decoder: bool,
    /// Where synthetic sets are cached.
    pub cache_dir: PathBuf,
    /// DFQ-SAM calibration takes the bundle's shipped synthetic set when it has one, instead of
    /// synthesizing (false: synthesize anew, as the preset measurements do).
    pub use_shipped_synthetic: bool,
    pub session: SessionConfig,
    /// No bundle is written when the self-check mask IoU is below this
    /// ([`DEFAULT_MIN_SELF_CHECK_IOU`] unless the caller knows better).
    pub min_self_check_iou: f64,
}

/// One progress report: the phase, how far it is, and an estimate of what is left of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: &'static str,
    pub done: usize,
    pub total: usize,
    pub eta_s: Option<f64>,
    pub detail: String,
}

/// What `requantize` made.
#[derive(Debug, Clone, PartialEq)]
pub struct RequantizeReport {
    pub bundle_dir: PathBuf,
    pub summary: GraphSummary,
    pub synthetic_set: Option<String>,
    pub synthetic_images: usize,
    pub self_check_iou: f64,
    pub self_check_prompts: usize,
    pub encoder_bytes: u64,
    pub fp_encoder_bytes: u64,
    pub seconds: f64,
}
