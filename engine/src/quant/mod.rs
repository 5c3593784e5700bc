//! Post-training quantization of a graph on calibration inputs (DESIGN.md §3, stages 2–4):
//! per-channel uniform weights and per-tensor uniform activations with an MSE search over
//! clipping ranges, log-√2 post-softmax activations, RepQ reparameterization of post-LayerNorm
//! activations, and emission of one integer-weight graph (see `emit`).
//!
//! The calibration inputs never come from patient data in the product: `requantize` feeds the
//! images that `synth` makes from the model alone.

mod calibrate;
mod emit;
mod options;
mod pipeline;
pub mod quantizer;
mod record;
mod reparam;
mod sensitivity;
mod sites;

pub use calibrate::{Collect, Samples, collect};
pub use emit::{ActQuant, EmitSummary, emit, fake_weight, upgrade_to_opset21};
pub use options::{
    Bits, Calibration, DEFAULT_MIN_SELF_CHECK_IOU, Preset, Progress, RequantizeOptions,
    RequantizeReport,
};
pub use pipeline::requantize;
pub use quantizer::{LogSqrt2, Uniform, search_uniform};
pub use reparam::reparameterize;
pub use sites::{ActKind, LayerNormGroup, Site, Sites, WeightRef, find_sites};

use crate::graph::{GraphError, Model, Shapes, TensorData};
use crate::runtime::SessionConfig;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("cancelled")]
    Cancelled,
    #[error("calibration failed: {0}")]
    Calibration(String),
    #[error("{0}")]
    Bundle(String),
    /// An argument that cannot work, found before any work is done.
    #[error("{0}")]
    Argument(String),
    #[error(
        "self-check failed: the quantized model's masks agree with the FP model's at mean IoU \
         {iou:.4} over {prompts} prompts, below the floor of {floor}; no bundle was written (more \
         bits or a larger preset may pass)"
    )]
    SelfCheck {
        iou: f64,
        floor: f64,
        prompts: usize,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Grad(#[from] crate::grad::GradError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
}

/// A file-system failure, naming the path.
impl From<crate::fsio::WriteError> for QuantError {
    fn from(e: crate::fsio::WriteError) -> Self {
        Self::Bundle(e.to_string())
    }
}

pub(crate) fn io_error(path: &std::path::Path, e: impl std::fmt::Display) -> QuantError {
    QuantError::Bundle(format!("{}: {e}", path.display()))
}

/// An activation whose median channel spans less than this share of the whole tensor's range
/// stays float: one per-tensor quantizer would leave most of its channels a few levels (TinyViT's
/// full-resolution MBConv expansions: 0.07–0.10; every other LiteMedSAM tensor: ≥ 0.13).
/// Measured on the calibration images, so the rule is as data-free as the calibration.
pub const MIN_CHANNEL_SHARE: f32 = 0.125;

/// The per-tensor quantizer of an activation, or None when it stays float (`MIN_CHANNEL_SHARE`).
fn per_tensor(s: &Samples, bits: u32) -> Option<ActQuant> {
    (s.median_channel_share() >= MIN_CHANNEL_SHARE)
        .then(|| ActQuant::Uniform(search_uniform(&s.values[0], bits)))
}

/// Whether RepQ reparameterization runs unless asked otherwise: below 8-bit activations only.
/// At 8 bits one per-tensor range serves a post-LayerNorm tensor, and the per-channel ranges
/// that reparameterization fits to a few calibration images are too narrow for other images:
/// on LiteMedSAM it cost 23 points of box Dice at W8A8 (docs/quantization.md).
pub fn reparameterize_by_default(bits: GraphBits) -> bool {
    bits.activations.is_some_and(|a| a < 8)
}

/// Bit widths: weights 2–8; activations 2–8, or None to keep them float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GraphBits {
    pub weights: u32,
    pub activations: Option<u32>,
}

impl GraphBits {
    /// Refuses widths outside 2–8 bits (activations may also stay float).
    pub fn check(&self) -> Result<(), QuantError> {
        if !(2..=8).contains(&self.weights)
            || self.activations.is_some_and(|a| !(2..=8).contains(&a))
        {
            return Err(QuantError::Argument(format!(
                "weights take 2–8 bits and activations 2–8 bits or float; got W{} A{}",
                self.weights,
                self.activations
                    .map_or("float".to_string(), |a| a.to_string())
            )));
        }
        Ok(())
    }
}

/// What a quantized graph holds, for the manifest and the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphSummary {
    pub emit: EmitSummary,
    pub reparameterized_norms: usize,
    /// The layers whose weights stayed at 8 bits below 8-bit weights (`quantize_graph`).
    pub eight_bit_layers: Vec<String>,
    /// Activation tensors left float because one channel range dominates the rest (see
    /// `MIN_CHANNEL_SHARE`); their layers' weights are still quantized.
    pub kept_float: Vec<String>,
    pub sites: usize,
    /// The quantizer chosen for each activation tensor.
    pub activations: HashMap<String, ActQuant>,
}

/// Quantizes `model`: calibrates its activations on `inputs` (feed sets), reparameterizes
/// post-LayerNorm activations when `reparam`, and emits the integer-weight graph. Below 8-bit
/// weights, the layers that `sensitivity` ranks costliest keep 8 bits, up to `eight_bit_budget`
/// (a fraction of the weights; 0: none). `progress(stage, done, total)` hears of each stage
/// that takes a while: "calibrate" (per input) and "rank layers" (per layer); false cancels.
pub fn quantize_graph(
    model: &Model,
    inputs: &[Vec<(String, TensorData)>],
    bits: GraphBits,
    reparam: bool,
    eight_bit_budget: f64,
    config: &SessionConfig,
    progress: &mut dyn FnMut(&'static str, usize, usize) -> bool,
) -> Result<(Model, GraphSummary), QuantError> {
    bits.check()?;
    let first = inputs
        .first()
        .ok_or_else(|| QuantError::Calibration("no calibration inputs".into()))?;
    let feeds: Vec<(&str, &TensorData)> = first.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let shapes = Shapes::probe(model, &feeds)?;
    let sites = find_sites(model, &shapes);
    let mut model = model.clone();
    let mut act_quant: HashMap<String, ActQuant> = HashMap::new();
    let mut reparameterized = 0;
    let mut kept_float = Vec::new();

    // Only at W8A8 can ONNX Runtime run a convolution on integers; its output is quantized for
    // that, and its weights symmetric (see `Uniform::symmetric`).
    let integer_convs = bits.weights == 8 && bits.activations == Some(8);
    let conv_outputs = if integer_convs {
        sites.conv_outputs()
    } else {
        vec![]
    };
    if let Some(abits) = bits.activations {
        let mut requests: Vec<(String, Collect)> = sites
            .activation_tensors()
            .into_iter()
            .map(|(t, _)| {
                let kind = match sites.layer_norm_of(&t) {
                    Some(g) if reparam => Collect::PerChannel {
                        channels: g.channels,
                    },
                    _ => Collect::PerTensor,
                };
                (t, kind)
            })
            .collect();
        for t in &conv_outputs {
            if !requests.iter().any(|(r, _)| r == t) {
                requests.push((t.clone(), Collect::PerTensor));
            }
        }
        let samples = collect(&model, &requests, inputs, config, &mut |d, t| {
            progress("calibrate", d, t)
        })?;
        let mut done_groups: Vec<usize> = Vec::new();
        for (tensor, kind) in sites.activation_tensors() {
            let Some(s) = samples.get(&tensor) else {
                continue;
            };
            let q = match (kind, sites.layer_norm_of(&tensor)) {
                // Below 8 bits the log-√2 quantizer keeps the small probabilities; at 8 bits a
                // uniform one is as accurate and lets attn·V run on an integer kernel.
                (ActKind::Softmax, _) if abits < 8 => {
                    ActQuant::Log(LogSqrt2::search(&s.values[0], abits))
                }
                // Unclipped: an MSE search, ruled by the many tiny probabilities, clips the few
                // large ones that carry a peaked attention (TinyViT's kept 0.14 of 0.47).
                (ActKind::Softmax, _) => ActQuant::Uniform(Uniform::from_range(abits, 0.0, s.max)),
                (ActKind::Uniform, Some(g)) if reparam => {
                    if done_groups.contains(&g.norm) {
                        continue;
                    }
                    done_groups.push(g.norm);
                    let u = reparameterize(&mut model, g, &s.values, abits)?;
                    reparameterized += 1;
                    for a in &g.activations {
                        act_quant.insert(a.clone(), ActQuant::Uniform(u));
                    }
                    continue;
                }
                _ => match per_tensor(s, abits) {
                    Some(q) => q,
                    None => {
                        kept_float.push(tensor);
                        continue;
                    }
                },
            };
            act_quant.insert(tensor, q);
        }
        for t in &conv_outputs {
            let Some(s) = samples.get(t).filter(|_| !act_quant.contains_key(t)) else {
                continue;
            };
            match per_tensor(s, abits) {
                Some(q) => {
                    act_quant.insert(t.clone(), q);
                }
                None => kept_float.push(t.clone()),
            }
        }
        kept_float.sort();
        kept_float.dedup();
    }

    // weights are calibrated after reparameterization changed them
    let costs = if eight_bit_budget > 0.0 && bits.weights < 8 {
        sensitivity::layer_costs(&model, &sites, inputs, bits.weights, config, &mut |d, t| {
            progress("rank layers", d, t)
        })?
    } else {
        vec![]
    };
    let kept = sensitivity::eight_bit_layers(&costs, eight_bit_budget);
    let eight_bit: Vec<String> = kept.iter().map(|c| c.initializer.clone()).collect();
    let weight_quant = weight_quantizers(&model, &sites, bits.weights, &eight_bit, integer_convs)?;
    let (out, summary) = emit(&model, &sites.sites, &weight_quant, &act_quant)?;
    Ok((
        out,
        GraphSummary {
            emit: summary,
            reparameterized_norms: reparameterized,
            eight_bit_layers: kept.iter().map(|c| c.layer.clone()).collect(),
            kept_float,
            sites: sites.sites.len(),
            activations: act_quant,
        },
    ))
}

/// Per-channel weight quantizers of every site with a weight, by initializer: 8 bits for the
/// initializers in `eight_bit`, `bits` for the rest; symmetric for the convolutions that run on
/// integer kernels (`integer_convs`).
fn weight_quantizers(
    model: &Model,
    sites: &Sites,
    bits: u32,
    eight_bit: &[String],
    integer_convs: bool,
) -> Result<HashMap<String, emit::WeightQuant>, QuantError> {
    let mut weight_quant = HashMap::new();
    for site in &sites.sites {
        let Some(w) = &site.weight else { continue };
        let TensorData::F32(values) = model.initializer(&w.initializer)? else {
            continue;
        };
        let lanes = channel_lanes(&values, w.channel_axis);
        let bits = if eight_bit.contains(&w.initializer) {
            8
        } else {
            bits
        };
        let q = if site.output.is_some() && integer_convs {
            quantizer::search_per_channel_symmetric(&lanes, bits)
        } else {
            quantizer::search_per_channel(&lanes, bits)
        };
        weight_quant.insert(w.initializer.clone(), q);
    }
    Ok(weight_quant)
}

/// A weight's values per output channel (`axis`), as the per-channel quantizers take them.
fn channel_lanes(values: &ndarray::ArrayD<f32>, axis: usize) -> Vec<Vec<f32>> {
    values
        .axis_iter(ndarray::Axis(axis))
        .map(|lane| lane.iter().copied().collect())
        .collect()
}

#[cfg(test)]
mod tests;
