//! Scale reparameterization of post-LayerNorm activations (RepQ-ViT): per-channel quantizers
//! are folded into the LayerNorm affine and the next linear layers, so one per-tensor quantizer
//! on the new activation is exactly the per-channel one on the old.
//!
//! With per-channel (s_c, z_c), s̃ = mean s, z̃ = round(mean z), r_c = s_c / s̃, δ_c = z_c − z̃:
//! the new activation is A' = (A + s⊙δ) / r, so γ ← γ/r, β ← (β + s⊙δ)/r, and each linear layer
//! y = A·W + b becomes y = A'·(r⊙W) + (b − (s⊙δ)·W).

use super::QuantError;
use super::quantizer::{Uniform, search_uniform};
use super::sites::LayerNormGroup;
use crate::graph::{Model, TensorData};
use ndarray::{Array1, Array2, Axis, Ix1, Ix2};

/// Reparameterizes one group in place from its per-channel activation samples; returns the
/// per-tensor quantizer that now serves the group's activations.
pub fn reparameterize(
    model: &mut Model,
    group: &LayerNormGroup,
    channel_samples: &[Vec<f32>],
    bits: u32,
) -> Result<Uniform, QuantError> {
    if channel_samples.len() != group.channels {
        return Err(QuantError::Calibration(format!(
            "LayerNorm with {} channels got samples for {}",
            group.channels,
            channel_samples.len()
        )));
    }
    let per_channel: Vec<Uniform> = channel_samples
        .iter()
        .map(|v| search_uniform(v, bits))
        .collect();
    let n = per_channel.len() as f32;
    let s_mean = per_channel.iter().map(|q| q.scale).sum::<f32>() / n;
    let z_mean = (per_channel.iter().map(|q| q.zero_point).sum::<f32>() / n).round();
    let r = Array1::from_iter(per_channel.iter().map(|q| q.scale / s_mean));
    let shift = Array1::from_iter(
        per_channel
            .iter()
            .map(|q| q.scale * (q.zero_point - z_mean)),
    );
    apply(model, group, &r, &shift)?;
    Ok(Uniform {
        bits,
        scale: s_mean,
        zero_point: z_mean,
    })
}

/// Folds A' = (A + shift) / r into the norm and the linear layers.
pub fn apply(
    model: &mut Model,
    group: &LayerNormGroup,
    r: &Array1<f32>,
    shift: &Array1<f32>,
) -> Result<(), QuantError> {
    let norm = model.graph().node[group.norm].clone();
    let (gamma_name, beta_name) = (&norm.input[1], &norm.input[2]);
    let gamma = vector(model, gamma_name)?;
    let beta = vector(model, beta_name)?;
    if gamma.len() != r.len() || beta.len() != r.len() {
        return Err(QuantError::Calibration(format!(
            "LayerNorm '{}' has {} channels, the reparameterization {}",
            norm.name,
            gamma.len(),
            r.len()
        )));
    }
    model.set_initializer(gamma_name, &TensorData::F32((&gamma / r).into_dyn()));
    model.set_initializer(
        beta_name,
        &TensorData::F32(((&beta + shift) / r).into_dyn()),
    );
    for (matmul, bias_name) in &group.linears {
        let w_name = model.graph().node[*matmul].input[1].clone();
        let w = matrix(model, &w_name)?;
        let bias = vector(model, bias_name)?;
        if w.nrows() != r.len() || w.ncols() != bias.len() {
            return Err(QuantError::Calibration(format!(
                "weight '{w_name}' {:?} does not fit the LayerNorm's {} channels",
                w.shape(),
                r.len()
            )));
        }
        let new_bias = &bias - &shift.dot(&w);
        let scaled = &w * &r.view().insert_axis(Axis(1));
        model.set_initializer(&w_name, &TensorData::F32(scaled.into_dyn()));
        model.set_initializer(bias_name, &TensorData::F32(new_bias.into_dyn()));
    }
    Ok(())
}

fn vector(model: &Model, name: &str) -> Result<Array1<f32>, QuantError> {
    match model.initializer(name)? {
        TensorData::F32(a) => a
            .into_dimensionality::<Ix1>()
            .map_err(|_| QuantError::Calibration(format!("'{name}' is not a vector"))),
        _ => Err(QuantError::Calibration(format!("'{name}' is not float32"))),
    }
}

fn matrix(model: &Model, name: &str) -> Result<Array2<f32>, QuantError> {
    match model.initializer(name)? {
        TensorData::F32(a) => a
            .into_dimensionality::<Ix2>()
            .map_err(|_| QuantError::Calibration(format!("'{name}' is not a matrix"))),
        _ => Err(QuantError::Calibration(format!("'{name}' is not float32"))),
    }
}
