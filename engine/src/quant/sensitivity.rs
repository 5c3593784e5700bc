//! Mixed precision below 8-bit weights: each layer's low-bit weights are tried alone on the
//! calibration inputs (synthetic images in the product: no data), and the layers that cost the
//! graph's outputs most per weight keep 8 bits, within a budget of the weights. On TinyViT these
//! are the small convolutions (patch embedding, depthwise, downsampling), where one 4-bit layer
//! alone moves the embedding by up to half its norm.

use super::emit::fake_weight;
use super::quantizer::search_per_channel;
use super::sites::Sites;
use super::{QuantError, channel_lanes};
use crate::graph::{Model, Runner, TensorData};
use crate::runtime::SessionConfig;

/// Inputs the ranking runs on: one forward pass per layer and input, so a few.
const RANKING_INPUTS: usize = 4;

/// What one layer's low-bit weights cost on their own.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCost {
    /// The node's name (what a reader recognizes), and its weight initializer.
    pub layer: String,
    pub initializer: String,
    pub params: usize,
    /// Mean relative L2 error of the graph's float outputs, ‖q − fp‖ / ‖fp‖.
    pub error: f64,
}

/// Measures every weighted site of `model` with only its weights at `bits` (per-channel MSE
/// search, as the quantizer stores them), activations float.
pub fn layer_costs(
    model: &Model,
    sites: &Sites,
    inputs: &[Vec<(String, TensorData)>],
    bits: u32,
    config: &SessionConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Vec<LayerCost>, QuantError> {
    let inputs = &inputs[..inputs.len().min(RANKING_INPUTS)];
    let reference = outputs(model, inputs, config)?;
    let weighted: Vec<_> = sites
        .sites
        .iter()
        .filter_map(|s| {
            s.weight
                .as_ref()
                .map(|w| (&model.graph().node[s.node].name, w))
        })
        .collect();
    let mut costs = Vec::with_capacity(weighted.len());
    for (done, (layer, w)) in weighted.iter().enumerate() {
        if !progress(done, weighted.len()) {
            return Err(QuantError::Cancelled);
        }
        let TensorData::F32(values) = model.initializer(&w.initializer)? else {
            continue;
        };
        let q = search_per_channel(&channel_lanes(&values, w.channel_axis), bits);
        let mut trial = model.clone();
        trial.set_initializer(
            &w.initializer,
            &TensorData::F32(fake_weight(&values, w.channel_axis, &q)),
        );
        let error = relative_error(&outputs(&trial, inputs, config)?, &reference);
        costs.push(LayerCost {
            layer: layer.to_string(),
            initializer: w.initializer.clone(),
            params: values.len(),
            error,
        });
    }
    Ok(costs)
}

/// The layers to keep at 8 bits: by error per weight, costliest first, while their weights fit
/// in `budget` (a fraction of all the layers' weights). A layer that does not fit is skipped,
/// so a smaller one after it may still be kept.
pub fn eight_bit_layers(costs: &[LayerCost], budget: f64) -> Vec<&LayerCost> {
    let total: usize = costs.iter().map(|c| c.params).sum();
    let allowed = budget * total as f64;
    let mut ranked: Vec<&LayerCost> = costs.iter().filter(|c| c.error > 0.0).collect();
    ranked.sort_by(|a, b| {
        (b.error / b.params.max(1) as f64).total_cmp(&(a.error / a.params.max(1) as f64))
    });
    let mut used = 0usize;
    let mut kept = Vec::new();
    for c in ranked {
        if (used + c.params) as f64 <= allowed {
            used += c.params;
            kept.push(c);
        }
    }
    kept
}

/// Every float output of `model` for each input, in the graph's output order.
fn outputs(
    model: &Model,
    inputs: &[Vec<(String, TensorData)>],
    config: &SessionConfig,
) -> Result<Vec<Vec<Vec<f32>>>, QuantError> {
    let names: Vec<String> = model
        .graph()
        .output
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let mut runner = Runner::new(model, "sensitivity", config)?;
    let mut all = Vec::with_capacity(inputs.len());
    for feed in inputs {
        let feeds: Vec<(&str, &TensorData)> = feed.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut out = runner.run(&feeds)?;
        all.push(
            names
                .iter()
                .filter_map(|n| match out.remove(n) {
                    Some(TensorData::F32(a)) => Some(a.iter().copied().collect()),
                    _ => None,
                })
                .collect(),
        );
    }
    Ok(all)
}

/// Mean over inputs and outputs of ‖a − b‖ / ‖b‖.
fn relative_error(trial: &[Vec<Vec<f32>>], reference: &[Vec<Vec<f32>>]) -> f64 {
    let pairs: Vec<f64> = trial
        .iter()
        .zip(reference)
        .flat_map(|(t, r)| t.iter().zip(r))
        .map(|(t, r)| {
            let (diff, norm) = t.iter().zip(r).fold((0.0f64, 0.0f64), |(d, n), (a, b)| {
                let e = f64::from(a - b);
                (d + e * e, n + f64::from(*b) * f64::from(*b))
            });
            (diff / norm.max(1e-30)).sqrt()
        })
        .collect();
    pairs.iter().sum::<f64>() / pairs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(name: &str, params: usize, error: f64) -> LayerCost {
        LayerCost {
            layer: name.into(),
            initializer: format!("w-{name}"),
            params,
            error,
        }
    }

    #[test]
    fn the_costliest_layers_per_weight_are_kept_within_the_budget() {
        let costs = [
            cost("big-and-bad", 600, 0.9),  // 0.0015 per weight
            cost("small-and-bad", 50, 0.4), // 0.008
            cost("tiny", 10, 0.05),         // 0.005
            cost("harmless", 340, 0.01),    // 0.00003
        ];
        let kept = |budget| -> Vec<String> {
            eight_bit_layers(&costs, budget)
                .iter()
                .map(|c| c.layer.clone())
                .collect()
        };
        // 10 % of 1000 weights: the two densest fit, the big one would not
        assert_eq!(kept(0.1), ["small-and-bad", "tiny"]);
        assert_eq!(kept(0.7), ["small-and-bad", "tiny", "big-and-bad"]);
        assert!(kept(0.0).is_empty());
    }
}
