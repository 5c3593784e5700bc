//! Initializers as ndarray: conversion between `TensorProto` and typed arrays.

use super::GraphError;
use super::proto::{TensorProto, dtype};
use ndarray::{ArrayD, IxDyn};

/// A dense tensor of one of the element types the engine works with.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    Bool(ArrayD<bool>),
}

impl TensorData {
    /// The ONNX element type (`TensorProto.DataType`).
    pub fn dtype(&self) -> i32 {
        match self {
            Self::F32(_) => dtype::FLOAT,
            Self::F64(_) => dtype::DOUBLE,
            Self::I64(_) => dtype::INT64,
            Self::I32(_) => dtype::INT32,
            Self::I8(_) => dtype::INT8,
            Self::U8(_) => dtype::UINT8,
            Self::Bool(_) => dtype::BOOL,
        }
    }

    pub fn shape(&self) -> Vec<i64> {
        let s = match self {
            Self::F32(a) => a.shape(),
            Self::F64(a) => a.shape(),
            Self::I64(a) => a.shape(),
            Self::I32(a) => a.shape(),
            Self::I8(a) => a.shape(),
            Self::U8(a) => a.shape(),
            Self::Bool(a) => a.shape(),
        };
        s.iter().map(|&d| d as i64).collect()
    }

    /// The values as i64 (integer tensors only): what shape-like inputs (axes, pads, starts) hold.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self {
            Self::I64(a) => Some(a.iter().copied().collect()),
            Self::I32(a) => Some(a.iter().map(|&v| i64::from(v)).collect()),
            _ => None,
        }
    }

    /// The values as f64 (float tensors only).
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match self {
            Self::F32(a) => Some(a.iter().map(|&v| f64::from(v)).collect()),
            Self::F64(a) => Some(a.iter().copied().collect()),
            _ => None,
        }
    }

    /// A float tensor of the given element type (FLOAT or DOUBLE) from f64 values.
    pub fn float(elem: i32, shape: &[usize], values: Vec<f64>) -> Result<Self, GraphError> {
        let bad = |reason: String| GraphError::BadTensor {
            tensor: "(constant)".into(),
            reason,
        };
        match elem {
            dtype::FLOAT => {
                ArrayD::from_shape_vec(IxDyn(shape), values.into_iter().map(|v| v as f32).collect())
                    .map(Self::F32)
                    .map_err(|e| bad(e.to_string()))
            }
            dtype::DOUBLE => ArrayD::from_shape_vec(IxDyn(shape), values)
                .map(Self::F64)
                .map_err(|e| bad(e.to_string())),
            other => Err(GraphError::UnsupportedType {
                tensor: "(constant)".into(),
                dtype: dtype::name(other),
            }),
        }
    }

    /// Reads a `TensorProto` whose data is inline (external data is resolved by `Model::load`).
    pub fn from_proto(t: &TensorProto) -> Result<Self, GraphError> {
        let bad = |reason: String| GraphError::BadTensor {
            tensor: t.name.clone(),
            reason,
        };
        if t.data_location == 1 {
            return Err(bad("its data is still in an external file".into()));
        }
        let mut shape = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            shape.push(usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?);
        }
        let n: usize = shape.iter().product();
        let raw = &t.raw_data;
        macro_rules! from_raw {
            ($ty:ty, $size:expr, $variant:ident, $typed:expr) => {{
                let v: Vec<$ty> = if !raw.is_empty() {
                    if raw.len() != n * $size {
                        return Err(bad(format!(
                            "raw data has {} bytes, shape {:?} needs {}",
                            raw.len(),
                            shape,
                            n * $size
                        )));
                    }
                    raw.chunks_exact($size)
                        .map(|c| {
                            let mut b = [0u8; $size];
                            b.copy_from_slice(c);
                            <$ty>::from_le_bytes(b)
                        })
                        .collect()
                } else {
                    $typed
                };
                if v.len() != n {
                    return Err(bad(format!("{} values for shape {:?}", v.len(), shape)));
                }
                ArrayD::from_shape_vec(IxDyn(&shape), v)
                    .map(Self::$variant)
                    .map_err(|e| bad(e.to_string()))
            }};
        }
        match t.data_type {
            dtype::FLOAT => from_raw!(f32, 4, F32, t.float_data.clone()),
            dtype::DOUBLE => from_raw!(f64, 8, F64, t.double_data.clone()),
            dtype::INT64 => from_raw!(i64, 8, I64, t.int64_data.clone()),
            dtype::INT32 => from_raw!(i32, 4, I32, t.int32_data.clone()),
            dtype::INT8 => from_raw!(i8, 1, I8, t.int32_data.iter().map(|&v| v as i8).collect()),
            dtype::UINT8 => from_raw!(u8, 1, U8, t.int32_data.iter().map(|&v| v as u8).collect()),
            dtype::BOOL => {
                let v: Vec<bool> = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| v != 0).collect()
                } else {
                    raw.iter().map(|&v| v != 0).collect()
                };
                if v.len() != n {
                    return Err(bad(format!("{} values for shape {:?}", v.len(), shape)));
                }
                ArrayD::from_shape_vec(IxDyn(&shape), v)
                    .map(Self::Bool)
                    .map_err(|e| bad(e.to_string()))
            }
            other => Err(GraphError::UnsupportedType {
                tensor: t.name.clone(),
                dtype: dtype::name(other),
            }),
        }
    }

    /// Writes the tensor as a `TensorProto` with little-endian `raw_data`.
    pub fn to_proto(&self, name: &str) -> TensorProto {
        let raw: Vec<u8> = match self {
            Self::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::I32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::I8(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::U8(a) => a.iter().copied().collect(),
            Self::Bool(a) => a.iter().map(|&v| u8::from(v)).collect(),
        };
        TensorProto {
            name: name.to_string(),
            dims: self.shape(),
            data_type: self.dtype(),
            raw_data: raw,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let cases = vec![
            TensorData::F32(
                ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, -2.5, 3.0, 0.0]).unwrap(),
            ),
            TensorData::F64(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 2.0, 1e-300]).unwrap()),
            TensorData::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-1, i64::MAX]).unwrap()),
            TensorData::I32(ArrayD::from_shape_vec(IxDyn(&[]), vec![7]).unwrap()),
            TensorData::I8(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-128, 127]).unwrap()),
            TensorData::U8(ArrayD::from_shape_vec(IxDyn(&[1]), vec![255]).unwrap()),
            TensorData::Bool(ArrayD::from_shape_vec(IxDyn(&[2]), vec![true, false]).unwrap()),
        ];
        for t in cases {
            assert_eq!(TensorData::from_proto(&t.to_proto("x")).unwrap(), t);
        }
    }

    #[test]
    fn reads_typed_fields_and_rejects_size_mismatch() {
        let t = TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: dtype::FLOAT,
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(
            TensorData::from_proto(&t).unwrap().to_f64_vec().unwrap(),
            vec![1.0, 2.0]
        );
        let bad = TensorProto {
            raw_data: vec![0; 5],
            ..t
        };
        let err = TensorData::from_proto(&bad).unwrap_err().to_string();
        assert!(err.contains("'w'") && err.contains("5 bytes"), "{err}");
    }
}
