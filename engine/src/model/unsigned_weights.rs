//! Integer weights as uint8 for CPUs whose int8 kernels saturate.
//!
//! ONNX Runtime runs a quantized layer with uint8 activations and int8 weights (U8S8) on x86-64
//! through `vpmaddubsw` unless the CPU has VNNI: that instruction adds two u8×s8 products into a
//! saturating int16, so large activations on large weights are clipped. On LiteMedSAM's W8A8
//! encoder this raised the embedding error from 0.19 (the QDQ graph run in float) to 0.40 and
//! cost 4 Dice points on CHAOS CT liver on a 2-core AVX2 EPYC, while a VNNI machine was exact.
//! The U8U8 kernels widen to 16 bits first and are exact everywhere, so on such CPUs the engine
//! shifts each int8 weight of a `DequantizeLinear` by +128 into uint8, with its zero point: the
//! dequantized values, and hence the model, are unchanged.

use crate::graph::proto::dtype::INT8;
use crate::graph::{self, TensorData};
use std::collections::HashSet;

/// Whether this CPU's U8S8 kernels can saturate (x86-64 without VNNI).
pub fn int8_kernels_saturate() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !(std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rewrites every int8 weight initializer of a `DequantizeLinear` (and its zero point) as
/// uint8 shifted by 128; returns how many weights changed.
pub fn to_unsigned_weights(model: &mut graph::Model) -> Result<usize, graph::GraphError> {
    // only int8 initializers are read: int4 weights (packed) never reach a U8S8 kernel
    let int8: HashSet<String> = (model.graph().initializer.iter())
        .filter(|t| t.data_type == INT8)
        .map(|t| t.name.clone())
        .collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut new_zero_points = Vec::new();
    let mut changed = 0;
    for index in 0..model.graph().node.len() {
        let node = &model.graph().node[index];
        if node.op_type != "DequantizeLinear" || !int8.contains(&node.input[0]) {
            continue;
        }
        let (weight, scale) = (node.input[0].clone(), node.input[1].clone());
        let zero_point = node.input.get(2).filter(|z| !z.is_empty()).cloned();
        let TensorData::I8(values) = model.initializer(&weight)? else {
            continue;
        };
        if done.insert(weight.clone()) {
            model.set_initializer(&weight, &TensorData::U8(values.mapv(shift)));
            changed += 1;
        }
        match zero_point {
            Some(z) => {
                if done.insert(z.clone()) {
                    let TensorData::I8(zp) = model.initializer(&z)? else {
                        return Err(graph::GraphError::BadTensor {
                            tensor: z,
                            reason: format!("the zero point of int8 weight '{weight}' is not int8"),
                        });
                    };
                    model.set_initializer(&z, &TensorData::U8(zp.mapv(shift)));
                }
            }
            // An absent zero point means 0; the uint8 one must be given: 128, shaped as the scale.
            None => new_zero_points.push((index, format!("{weight}/u8_zero_point"), scale)),
        }
    }
    for (index, name, scale) in new_zero_points {
        let shape: Vec<usize> = model
            .initializer(&scale)?
            .shape()
            .iter()
            .map(|&d| d as usize)
            .collect();
        let zp = ndarray::ArrayD::from_elem(ndarray::IxDyn(&shape), 128u8);
        model.set_initializer(&name, &TensorData::U8(zp));
        model.graph_mut().node[index].input.push(name);
    }
    Ok(changed)
}

fn shift(v: i8) -> u8 {
    (i16::from(v) + 128) as u8
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    /// (values, scale, zero point) of every `DequantizeLinear` with an 8-bit weight, by weight;
    /// an absent zero point reads as zeros shaped as the scale.
    type Quantized = BTreeMap<String, (Vec<i64>, Vec<f64>, Vec<i64>)>;

    fn integers(t: &TensorData) -> Option<Vec<i64>> {
        match t {
            TensorData::I8(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            TensorData::U8(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            _ => None,
        }
    }

    fn quantized(model: &graph::Model) -> Quantized {
        let mut out = BTreeMap::new();
        for node in &model.graph().node {
            if node.op_type != "DequantizeLinear" {
                continue;
            }
            let Some(values) = model
                .initializer(&node.input[0])
                .ok()
                .and_then(|t| integers(&t))
            else {
                continue;
            };
            let scale = model.initializer(&node.input[1]).unwrap().to_f64_vec();
            let scale = scale.unwrap();
            let zero_point = match node.input.get(2) {
                Some(z) => integers(&model.initializer(z).unwrap()).unwrap(),
                None => vec![0; scale.len()],
            };
            out.insert(node.input[0].clone(), (values, scale, zero_point));
        }
        out
    }

    #[test]
    fn the_bundled_w8a8_encoder_keeps_every_weight_as_uint8() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models");
        let path = dir.join("litemedsam-w8a8/encoder.onnx");
        let mut model = graph::Model::load(&path).unwrap();
        let before = quantized(&model);
        let changed = to_unsigned_weights(&mut model).unwrap();
        assert!(changed >= 40, "{changed} int8 weights");
        let after = quantized(&model);
        assert_eq!(before.len(), after.len());
        // values and zero points shift together, so value − zero point (and the weight) is unchanged
        let shifted = |a: &[i64], b: &[i64]| a.iter().zip(b).all(|(x, y)| y - x == 128);
        for (name, (v, s, z)) in &before {
            let (v2, s2, z2) = &after[name];
            assert!(shifted(v, v2) && shifted(z, z2) && s == s2, "{name}");
        }
        let int8_left = model
            .graph()
            .initializer
            .iter()
            .filter(|t| t.data_type == INT8)
            .count();
        assert_eq!(int8_left, 0);
        assert_eq!(
            to_unsigned_weights(&mut model).unwrap(),
            0,
            "nothing left to change"
        );
    }
}
