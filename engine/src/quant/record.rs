//! The manifest of a requantized bundle: its name, its files and the `[precision]` table that
//! records how it was made.

use super::{GraphSummary, QuantError, RequantizeOptions};
use crate::model::{FileEntry, Manifest, ModelBundle, Precision, sha256_file};
use crate::synth::SyntheticSet;
use std::collections::BTreeMap;
use std::path::Path;

/// The click decoder's file name in a requantized bundle (copied unchanged).
pub(super) const CLICK_DECODER_FILE: &str = "click_decoder.onnx";

pub(super) fn quantized_manifest(
    bundle: &ModelBundle,
    options: &RequantizeOptions,
    summary: &GraphSummary,
    synthetic: Option<&SyntheticSet>,
    dir: &Path,
) -> Result<Manifest, QuantError> {
    let base = &bundle.manifest;
    let bits = options.bits;
    let a = bits
        .activations
        .map_or("float".to_string(), |a| a.to_string());
    let tag = format!(
        "w{}a{}",
        bits.weights,
        bits.activations.map_or("f".into(), |a| a.to_string())
    );
    let d = precision_details(base, options, summary, synthetic);
    let mut files = base.files.clone();
    files.encoder = FileEntry {
        path: "encoder.onnx".into(),
        sha256: sha256_file(&dir.join("encoder.onnx"))?,
    };
    files.decoder = FileEntry {
        path: "decoder.onnx".into(),
        sha256: sha256_file(&dir.join("decoder.onnx"))?,
    };
    if let Some(click) = &mut files.click_decoder {
        click.path = CLICK_DECODER_FILE.into();
    }
    Ok(Manifest {
        name: format!("{}-{tag}", base.name),
        description: format!(
            "{} requantized to W{}A{} without patient data",
            base.name, bits.weights, a
        ),
        precision: Precision {
            kind: "quantized".into(),
            details: d,
        },
        files,
        accuracy: BTreeMap::new(),
        // the set stays with the FP bundle it was made from
        synthetic: None,
        ..base.clone()
    })
}

/// The `[precision]` table of a requantized bundle: the bits, the method, what runs on
/// integer kernels and what is simulated, the calibration and its synthetic set.
fn precision_details(
    base: &Manifest,
    options: &RequantizeOptions,
    summary: &GraphSummary,
    synthetic: Option<&SyntheticSet>,
) -> BTreeMap<String, toml::Value> {
    let bits = options.bits;
    let a = bits
        .activations
        .map_or("float".to_string(), |a| a.to_string());
    let mut d: BTreeMap<String, toml::Value> = BTreeMap::new();
    let mut put = |k: &str, v: toml::Value| {
        d.insert(k.to_string(), v);
    };
    let s = |v: &str| toml::Value::String(v.to_string());
    put("weight_bits", toml::Value::Integer(i64::from(bits.weights)));
    put("activation_bits", s(&a));
    put(
        "method",
        s(
            "DFQ-SAM data-free calibration; per-channel uniform asymmetric weights and per-tensor \
           activations with MSE-searched clipping (symmetric weights for integer convolutions; \
           depthwise-convolution inputs and activations whose median channel spans under 1/8 of \
           the tensor's range stay float); log-sqrt2 post-softmax below 8 bits, unclipped \
           uniform at 8; RepQ reparameterization of post-LayerNorm activations when enabled; \
           below 8-bit weights, the layers whose low-bit weights alone cost the output most per \
           weight on the calibration images keep 8 bits, within eight_bit_weight_budget",
        ),
    );
    put("calibration", s(options.calibration.name()));
    put("preset", s(options.preset.name()));
    put(
        "reparameterized",
        toml::Value::Boolean(options.reparameterize),
    );
    put(
        "reparameterized_norms",
        toml::Value::Integer(summary.reparameterized_norms as i64),
    );
    if !summary.eight_bit_layers.is_empty() {
        put(
            "eight_bit_weight_layers",
            toml::Value::Array(summary.eight_bit_layers.iter().map(|t| s(t)).collect()),
        );
        put(
            "eight_bit_weight_budget",
            toml::Value::Float(options.eight_bit_budget),
        );
    }
    put("base_model", s(&base.name));
    put("base_encoder_sha256", s(&base.files.encoder.sha256));
    if let Some(set) = synthetic {
        put("synthetic_set_sha256", s(&set.hash));
        put(
            "synthetic_images",
            toml::Value::Integer(set.images.len() as i64),
        );
    }
    let e = &summary.emit;
    put(
        "weight_storage",
        s(if e.int4_storage {
            "int4 packed (DequantizeLinear, opset 21), per output channel"
        } else {
            "int8 (DequantizeLinear), per output channel"
        }),
    );
    let real = if bits.activations == Some(8) && bits.weights == 8 {
        "linear layers with int8 weights and uint8 activations run on ONNX Runtime integer kernels"
    } else if bits.activations == Some(8) {
        "uint8 activation Q/DQ; weights are integers on disk and dequantized at load"
    } else {
        "integer weights on disk, dequantized at load"
    };
    put("real", s(real));
    let simulated = if e.simulated_activations == 0 {
        "no activation quantizer is simulated".to_string()
    } else {
        format!(
            "{} activation tensors quantized in float ops ({a}-bit uniform, log-sqrt2 softmax)",
            e.simulated_activations
        )
    };
    put(
        "simulated",
        s(&format!(
            "{simulated}; relative-position Einsums and the decoder's activations stay float"
        )),
    );
    put(
        "quantized_layers",
        toml::Value::Integer(e.quantized_weights as i64),
    );
    // the channel-share rule's float activations (depthwise inputs are always float besides)
    put(
        "float_activations",
        toml::Value::Array(summary.kept_float.iter().map(|t| s(t)).collect()),
    );
    put(
        "quantized_decoder_weights",
        toml::Value::Boolean(options.quantize_decoder),
    );
    d
}

pub(super) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), QuantError> {
    let text = toml::to_string(manifest)
        .map_err(|e| QuantError::Bundle(format!("writing model.toml: {e}")))?;
    Ok(crate::graph::write_atomic(
        &dir.join(crate::model::MANIFEST_FILE),
        text.as_bytes(),
    )?)
}
