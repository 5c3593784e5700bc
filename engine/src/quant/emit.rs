//! Writing the quantized graph. One graph serves as both the simulated-quantization model that
//! accuracy is measured on and the deployable one:
//! - weights are stored as integers (int8, or packed int4 for ≤ 4 bits) with per-channel
//!   scales and zero points behind a `DequantizeLinear`, which is exactly fake quantization;
//! - 8-bit activations are `QuantizeLinear` → `DequantizeLinear` (uint8), which ONNX Runtime
//!   fuses with int8 weights into integer kernels (MatMulIntegerToFloat, QLinearConv);
//! - other activation widths and the log-√2 softmax quantizer are written as float ops
//!   (simulated: same values, no integer kernel).

use super::QuantError;
use super::quantizer::{LogSqrt2, Uniform};
use super::sites::{Site, WeightRef};
use crate::graph::proto::{TensorProto, dtype};
use crate::graph::{Builder, Model, NodeAttrs, TensorData, attr};
use ndarray::{ArrayD, Axis};
use std::collections::HashMap;

/// ONNX INT4 element type (opset 21).
pub(super) const INT4: i32 = 22;

/// The quantizer chosen for one activation tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActQuant {
    Uniform(Uniform),
    Log(LogSqrt2),
}

/// What the emitted graph runs for real and what it simulates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmitSummary {
    /// Layers whose weights are stored as integers.
    pub quantized_weights: usize,
    /// Weight parameters stored as integers.
    pub weight_params: usize,
    pub int4_storage: bool,
    /// Activation tensors quantized with integer Q/DQ (ORT can run integer kernels on them).
    pub real_activations: usize,
    /// Activation tensors quantized with float ops (simulated).
    pub simulated_activations: usize,
    /// Other large float constants (position embeddings) stored as integers.
    pub int_constants: usize,
    /// Layers whose input stays float while other activations are quantized: their quantized
    /// weights are stored as float values.
    pub float_stored_weights: usize,
}

/// Float constants at least this large that are not layer weights (position embeddings) are
/// stored as integers too, per channel of their last axis; smaller ones stay float.
const LARGE_CONSTANT: usize = 16384;

/// The per-channel weight quantizers of one site.
pub type WeightQuant = Vec<Uniform>;

/// Rewrites `model` with integer weights and activation quantizers.
pub fn emit(
    model: &Model,
    sites: &[Site],
    weights: &HashMap<String, WeightQuant>,
    activations: &HashMap<String, ActQuant>,
) -> Result<(Model, EmitSummary), QuantError> {
    let int4 = weights
        .values()
        .any(|q| q.first().is_some_and(|u| u.bits <= 4));
    let mut summary = EmitSummary {
        int4_storage: int4,
        ..Default::default()
    };
    let mut base = model.clone();
    if int4 {
        upgrade_to_opset21(&mut base)?;
    }
    let mut b = Builder::from_model(base);
    b.set_prefix("q/");
    let mut act_outputs: HashMap<String, String> = HashMap::new();
    let mut float_weights = std::collections::HashSet::new();
    let consumers = b.model.consumers();
    for site in sites {
        let mut node = b.model.graph().node[site.node].clone();
        if let Some(WeightRef {
            initializer,
            channel_axis,
        }) = &site.weight
            && let Some(q) = weights.get(initializer)
        {
            let w = match b.model.initializer(initializer)? {
                TensorData::F32(w) => w,
                _ => continue,
            };
            summary.quantized_weights += 1;
            summary.weight_params += w.len();
            let act = site
                .activations
                .first()
                .and_then(|(_, t, _)| activations.get(t));
            if act.is_none() && !activations.is_empty() {
                // The input stays float, so no integer kernel can run: the quantized values
                // are stored as float, a constant that ONNX Runtime prepacks (NCHWc, packed
                // GEMM). It never folds a DequantizeLinear, and ran these convs 1.2× slower.
                let fake = fake_weight(&w, *channel_axis, q);
                b.model.set_initializer(initializer, &TensorData::F32(fake));
                summary.float_stored_weights += 1;
                float_weights.insert(initializer.clone());
                b.model.replace_node(site.node, node)?;
                continue;
            }
            let dq = integer_weight(&mut b, initializer, &w, *channel_axis, q)?;
            node.input[1] = dq;
            if let (Some(ActQuant::Uniform(a)), "MatMul") = (act, site.op.as_str())
                && a.bits == 8
            {
                bias_behind_dequantize(&mut b, &consumers, site.node, a.scale, q)?;
            }
        }
        for (index, tensor, _) in &site.activations {
            let Some(q) = activations.get(tensor) else {
                continue;
            };
            let out = match act_outputs.get(tensor) {
                Some(o) => o.clone(),
                None => {
                    let o = match q {
                        ActQuant::Uniform(u) if u.bits == 8 => {
                            summary.real_activations += 1;
                            qdq_u8(&mut b, tensor, u)
                        }
                        ActQuant::Uniform(u) => {
                            summary.simulated_activations += 1;
                            fake_uniform(&mut b, tensor, u)
                        }
                        ActQuant::Log(l) => {
                            summary.simulated_activations += 1;
                            fake_log(&mut b, tensor, l)
                        }
                    };
                    act_outputs.insert(tensor.clone(), o.clone());
                    o
                }
            };
            node.input[*index] = out;
        }
        b.model.replace_node(site.node, node)?;
    }
    for site in sites {
        integer_conv_output(
            &mut b,
            site,
            weights,
            activations,
            &mut act_outputs,
            &mut summary,
        )?;
    }
    // Constants follow the weights' width, but never below 4 bits (position embeddings).
    let constant_bits = weights
        .values()
        .filter_map(|q| q.first().map(|u| u.bits))
        .min()
        .map_or(8, |b| b.max(4));
    summary.int_constants = store_large_constants(&mut b, constant_bits, &float_weights)?;
    let mut out = b.finish();
    out.sort_topologically()?;
    out.remove_dead_nodes();
    Ok((out, summary))
}

/// Replaces large float initializers still read by float ops with integers + DequantizeLinear
/// (not the layer weights in `keep`, stored as float on purpose).
fn store_large_constants(
    b: &mut Builder,
    bits: u32,
    keep: &std::collections::HashSet<String>,
) -> Result<usize, QuantError> {
    let consumers = b.model.consumers();
    let large: Vec<String> = b
        .model
        .graph()
        .initializer
        .iter()
        .filter(|t| {
            t.data_type == dtype::FLOAT && t.dims.iter().product::<i64>() >= LARGE_CONSTANT as i64
        })
        .map(|t| t.name.clone())
        .filter(|n| consumers.contains_key(n) && !keep.contains(n))
        .collect();
    for name in &large {
        let TensorData::F32(w) = b.model.initializer(name)? else {
            continue;
        };
        let axis = w.ndim().saturating_sub(1);
        let lanes: Vec<Vec<f32>> = w
            .axis_iter(Axis(axis))
            .map(|l| l.iter().copied().collect())
            .collect();
        let q = super::quantizer::search_per_channel(&lanes, bits);
        let dq = integer_weight(b, name, &w, axis, &q)?;
        for &c in &consumers[name] {
            let mut node = b.model.graph().node[c].clone();
            for input in node.input.iter_mut().filter(|i| *i == name) {
                *input = dq.clone();
            }
            b.model.replace_node(c, node)?;
        }
    }
    Ok(large.len())
}

/// A dense convolution at W8A8: its output gets uint8 Q/DQ too (every consumer reads the
/// dequantized value) and its bias becomes int32, the pattern ONNX Runtime fuses into
/// QLinearConv. Its weights are symmetric (one zero point), which that kernel requires.
fn integer_conv_output(
    b: &mut Builder,
    site: &Site,
    weights: &HashMap<String, WeightQuant>,
    activations: &HashMap<String, ActQuant>,
    act_outputs: &mut HashMap<String, String>,
    summary: &mut EmitSummary,
) -> Result<(), QuantError> {
    let Some(out) = &site.output else {
        return Ok(());
    };
    let input_quant = site
        .activations
        .first()
        .and_then(|(_, t, _)| activations.get(t));
    let weight_quant = site
        .weight
        .as_ref()
        .and_then(|w| weights.get(&w.initializer));
    let (Some(ActQuant::Uniform(y)), Some(ActQuant::Uniform(x)), Some(w)) =
        (activations.get(out), input_quant, weight_quant)
    else {
        return Ok(());
    };
    if y.bits != 8 || x.bits != 8 || w.first().is_none_or(|u| u.bits != 8) {
        return Ok(());
    }
    let dq = match act_outputs.get(out) {
        Some(o) => o.clone(),
        None => {
            summary.real_activations += 1;
            let o = qdq_u8(b, out, y);
            act_outputs.insert(out.clone(), o.clone());
            o
        }
    };
    let readers: Vec<usize> = (0..b.model.graph().node.len())
        .filter(|&i| {
            let n = &b.model.graph().node[i];
            n.input.contains(out) && !(n.op_type == "QuantizeLinear" && n.input[0] == *out)
        })
        .collect();
    for i in readers {
        let mut n = b.model.graph().node[i].clone();
        for input in n.input.iter_mut().filter(|t| *t == out) {
            *input = dq.clone();
        }
        b.model.replace_node(i, n)?;
    }
    let mut conv = b.model.graph().node[site.node].clone();
    if let Some(bias) = conv.input.get(2).filter(|t| !t.is_empty()).cloned()
        && let Some(int_bias) = int32_bias(b, &bias, x.scale, w)?
    {
        conv.input[2] = int_bias;
        b.model.replace_node(site.node, conv)?;
    }
    Ok(())
}

/// Quantizes a MatMul's bias to int32 at scale s_x·s_w[c] behind a `DequantizeLinear`, the
/// QDQ convention ONNX Runtime's integer Gemm fusion assumes. (A float bias would be fused
/// with the MatMul into a float Gemm first, losing the integer kernel.)
fn bias_behind_dequantize(
    b: &mut Builder,
    consumers: &HashMap<String, Vec<usize>>,
    matmul: usize,
    act_scale: f32,
    weights: &[Uniform],
) -> Result<(), QuantError> {
    let Some(bias) = super::sites::bias_of(&b.model, consumers, matmul) else {
        return Ok(());
    };
    let Some(dq) = int32_bias(b, &bias, act_scale, weights)? else {
        return Ok(());
    };
    let add = consumers[&b.model.graph().node[matmul].output[0]][0];
    let mut node = b.model.graph().node[add].clone();
    for input in node.input.iter_mut().filter(|i| **i == bias) {
        *input = dq.clone();
    }
    b.model.replace_node(add, node)?;
    Ok(())
}

/// The float bias `bias` as int32 levels at scale s_x·s_w[c] behind a `DequantizeLinear`
/// (the output's name), or None when it is not a float vector of one value per channel.
fn int32_bias(
    b: &mut Builder,
    bias: &str,
    act_scale: f32,
    weights: &[Uniform],
) -> Result<Option<String>, QuantError> {
    if !b.model.has_initializer(bias) {
        return Ok(None);
    }
    let TensorData::F32(values) = b.model.initializer(bias)? else {
        return Ok(None);
    };
    if values.len() != weights.len() || values.ndim() != 1 {
        return Ok(None);
    }
    let scales = ndarray::Array1::from_iter(weights.iter().map(|w| act_scale * w.scale));
    let levels = ndarray::Array1::from_iter(
        values
            .iter()
            .zip(&scales)
            .map(|(v, s)| (v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32),
    );
    let q = b.constant(&format!("{bias}_i32"), &TensorData::I32(levels.into_dyn()));
    let s = b.constant(
        &format!("{bias}_scale"),
        &TensorData::F32(scales.into_dyn()),
    );
    Ok(Some(b.op(
        "DequantizeLinear",
        &[q.as_str(), s.as_str()],
        vec![attr::int("axis", 0)],
    )))
}

/// Stores `w` as integer levels (shifted to signed: level − 2^(bits−1)) and returns the name
/// of the `DequantizeLinear` output that replaces it.
fn integer_weight(
    b: &mut Builder,
    name: &str,
    w: &ArrayD<f32>,
    axis: usize,
    q: &[Uniform],
) -> Result<String, QuantError> {
    let channels = w.shape().get(axis).copied().unwrap_or(0);
    if channels != q.len() {
        return Err(QuantError::Calibration(format!(
            "weight '{name}' has {channels} channels on axis {axis}, {} quantizers",
            q.len()
        )));
    }
    let bits = q.first().map_or(8, |u| u.bits);
    let offset = (1i32 << (bits - 1)) as f32;
    let mut levels = w.clone();
    for (c, mut lane) in levels.axis_iter_mut(Axis(axis)).enumerate() {
        lane.mapv_inplace(|x| q[c].level(x) - offset);
    }
    let values: Vec<i8> = levels.iter().map(|&v| v as i8).collect();
    let zero_points: Vec<i8> = q.iter().map(|u| (u.zero_point - offset) as i8).collect();
    let scales = ndarray::Array1::from_iter(q.iter().map(|u| u.scale)).into_dyn();
    let dims: Vec<i64> = w.shape().iter().map(|&d| d as i64).collect();
    let (wq, zp) = (
        b.fresh(&format!("{name}_q")),
        b.fresh(&format!("{name}_zp")),
    );
    let elem = if bits <= 4 { INT4 } else { dtype::INT8 };
    let g = b.model.graph_mut();
    g.initializer.push(int_tensor(&wq, elem, &dims, &values));
    g.initializer.push(int_tensor(
        &zp,
        elem,
        &[zero_points.len() as i64],
        &zero_points,
    ));
    let scale = b.constant(&format!("{name}_scale"), &TensorData::F32(scales));
    Ok(b.op(
        "DequantizeLinear",
        &[wq.as_str(), scale.as_str(), zp.as_str()],
        vec![attr::int("axis", axis as i64)],
    ))
}

/// An INT8 or packed INT4 (two per byte, low nibble first) initializer.
fn int_tensor(name: &str, elem: i32, dims: &[i64], values: &[i8]) -> TensorProto {
    let raw: Vec<u8> = if elem == INT4 {
        values
            .chunks(2)
            .map(|p| {
                let lo = (p[0] as u8) & 0x0f;
                let hi = p.get(1).map_or(0, |v| (*v as u8) & 0x0f);
                lo | (hi << 4)
            })
            .collect()
    } else {
        values.iter().map(|v| *v as u8).collect()
    };
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: elem,
        raw_data: raw,
        ..Default::default()
    }
}

/// uint8 QuantizeLinear → DequantizeLinear.
fn qdq_u8(b: &mut Builder, x: &str, u: &Uniform) -> String {
    let scale = b.constant(
        "act_scale",
        &TensorData::F32(ndarray::arr0(u.scale).into_dyn()),
    );
    let zp = b.constant(
        "act_zp",
        &TensorData::U8(ndarray::arr0(u.zero_point as u8).into_dyn()),
    );
    let q = b.op("QuantizeLinear", &[x, scale.as_str(), zp.as_str()], vec![]);
    b.op(
        "DequantizeLinear",
        &[q.as_str(), scale.as_str(), zp.as_str()],
        vec![],
    )
}

fn scalar(b: &mut Builder, v: f32) -> String {
    b.constant("k", &TensorData::F32(ndarray::arr0(v).into_dyn()))
}

/// (clip(round(x/s) + z, 0, qmax) − z)·s in float ops.
fn fake_uniform(b: &mut Builder, x: &str, u: &Uniform) -> String {
    let (s, z, lo, hi) = (
        scalar(b, u.scale),
        scalar(b, u.zero_point),
        scalar(b, 0.0),
        scalar(b, u.qmax()),
    );
    let t = b.op("Div", &[x, s.as_str()], vec![]);
    let t = b.op("Round", &[t], vec![]);
    let t = b.op("Add", &[t, z.clone()], vec![]);
    let t = b.op("Clip", &[t, lo, hi], vec![]);
    let t = b.op("Sub", &[t, z], vec![]);
    b.op("Mul", &[t, s], vec![])
}

/// l = max(round(−2·log2(x/s)), 0); x̂ = s·2^(−l/2) where l < 2^bits − 1, else 0.
fn fake_log(b: &mut Builder, x: &str, q: &LogSqrt2) -> String {
    let ln2 = std::f32::consts::LN_2;
    let (s, k, zero, levels, half) = (
        scalar(b, q.scale),
        scalar(b, -2.0 / ln2),
        scalar(b, 0.0),
        scalar(b, q.levels()),
        scalar(b, -ln2 / 2.0),
    );
    let t = b.op("Div", &[x, s.as_str()], vec![]);
    let t = b.op("Log", &[t], vec![]);
    let t = b.op("Mul", &[t, k], vec![]);
    let t = b.op("Round", &[t], vec![]);
    let l = b.op("Max", &[t, zero.clone()], vec![]);
    let keep = b.op("Less", &[l.clone(), levels], vec![]);
    let e = b.op("Mul", &[l, half], vec![]);
    let e = b.op("Exp", &[e], vec![]);
    let v = b.op("Mul", &[e, s], vec![]);
    b.op("Where", &[keep, v, zero], vec![])
}

/// Moves a graph to opset 21 (needed for INT4): reductions whose `axes` were an attribute
/// before opset 18 get them as an input.
pub fn upgrade_to_opset21(model: &mut Model) -> Result<(), QuantError> {
    const REDUCES: [&str; 9] = [
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    ];
    let opset = model.opset();
    if opset >= 21 {
        return Ok(());
    }
    let mut b = Builder::from_model(model.clone());
    b.set_prefix("opset21/");
    let count = b.model.graph().node.len();
    for i in 0..count {
        let node = b.model.graph().node[i].clone();
        if opset < 18 && REDUCES.contains(&node.op_type.as_str()) {
            if let Some(axes) = node.attr_ints("axes") {
                let c = b.const_i64(&axes);
                let mut n = node.clone();
                n.attribute.retain(|a| a.name != "axes");
                n.input.truncate(1);
                n.input.push(c);
                b.model.replace_node(i, n)?;
            }
        } else if node.op_type == "Split" && node.attr("split").is_some() {
            let split = node.attr_ints("split").unwrap_or_default();
            let c = b.const_i64(&split);
            let mut n = node.clone();
            n.attribute.retain(|a| a.name != "split");
            n.input.truncate(1);
            n.input.push(c);
            b.model.replace_node(i, n)?;
        }
    }
    let mut out = b.finish();
    for o in &mut out.proto.opset_import {
        if o.domain.is_empty() || o.domain == "ai.onnx" {
            o.version = 21;
        }
    }
    out.proto.ir_version = out.proto.ir_version.max(10);
    // No reordering: callers hold node indices, and only initializers were added.
    *model = out;
    Ok(())
}

/// Fake-quantizes a float weight per channel in Rust (what the emitted graph computes; tests).
pub fn fake_weight(w: &ArrayD<f32>, axis: usize, q: &[Uniform]) -> ArrayD<f32> {
    let mut out = w.clone();
    for (c, mut lane) in out.axis_iter_mut(Axis(axis)).enumerate() {
        lane.mapv_inplace(|x| q[c].fake(x));
    }
    out
}
