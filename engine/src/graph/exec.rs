//! Running a `Model` on ONNX Runtime with `TensorData` in and out.

use super::proto::dtype;
use super::{GraphError, Model, TensorData};
use crate::runtime::{SessionConfig, load_session_from_memory};
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use std::collections::HashMap;

/// A session over an in-memory model.
pub struct Runner {
    session: Session,
    name: String,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("name", &self.name).finish()
    }
}

impl Runner {
    /// Creates a session for `model`; `name` identifies it in errors.
    pub fn new(model: &Model, name: &str, config: &SessionConfig) -> Result<Self, GraphError> {
        let session = load_session_from_memory(&model.to_bytes(), name, config)
            .map_err(|e| GraphError::runtime(&format!("opening {name}"), e))?;
        Ok(Self {
            session,
            name: name.to_string(),
        })
    }

    /// Runs the model; returns every output by name.
    pub fn run(
        &mut self,
        feeds: &[(&str, &TensorData)],
    ) -> Result<HashMap<String, TensorData>, GraphError> {
        let mut out = HashMap::new();
        self.run_with(feeds, |name, value| {
            out.insert(name.to_string(), to_data(name, value)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs the model and hands each output to `f` without copying it out.
    pub fn run_with(
        &mut self,
        feeds: &[(&str, &TensorData)],
        mut f: impl FnMut(&str, &DynValue) -> Result<(), GraphError>,
    ) -> Result<(), GraphError> {
        let during = format!("running {}", self.name);
        let mut inputs: Vec<(String, DynValue)> = Vec::with_capacity(feeds.len());
        for (name, data) in feeds {
            inputs.push((
                name.to_string(),
                to_value(data).map_err(|e| GraphError::runtime(&during, e))?,
            ));
        }
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| GraphError::runtime(&during, e))?;
        for (name, value) in &outputs {
            f(name, &value)?;
        }
        Ok(())
    }
}

fn to_value(data: &TensorData) -> ort::Result<DynValue> {
    Ok(match data {
        TensorData::F32(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::F64(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::I64(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::I32(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::I8(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::U8(a) => Tensor::from_array(a.clone())?.into_dyn(),
        TensorData::Bool(a) => Tensor::from_array(a.clone())?.into_dyn(),
    })
}

/// Copies a tensor output into `TensorData`.
pub fn to_data(name: &str, value: &DynValue) -> Result<TensorData, GraphError> {
    use ort::value::TensorElementType as E;
    let fail = |e: ort::Error| GraphError::runtime(&format!("reading output '{name}'"), e);
    let ty = value.dtype().tensor_type();
    Ok(match ty {
        Some(E::Float32) => {
            TensorData::F32(value.try_extract_array::<f32>().map_err(fail)?.to_owned())
        }
        Some(E::Float64) => {
            TensorData::F64(value.try_extract_array::<f64>().map_err(fail)?.to_owned())
        }
        Some(E::Int64) => {
            TensorData::I64(value.try_extract_array::<i64>().map_err(fail)?.to_owned())
        }
        Some(E::Int32) => {
            TensorData::I32(value.try_extract_array::<i32>().map_err(fail)?.to_owned())
        }
        Some(E::Int8) => TensorData::I8(value.try_extract_array::<i8>().map_err(fail)?.to_owned()),
        Some(E::Uint8) => TensorData::U8(value.try_extract_array::<u8>().map_err(fail)?.to_owned()),
        Some(E::Bool) => {
            TensorData::Bool(value.try_extract_array::<bool>().map_err(fail)?.to_owned())
        }
        other => {
            return Err(GraphError::UnsupportedType {
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

/// The ONNX element type of an ORT element type (0 when ONNX has no equivalent here).
pub(crate) fn onnx_dtype(t: Option<ort::value::TensorElementType>) -> i32 {
    use ort::value::TensorElementType as E;
    match t {
        Some(E::Float32) => dtype::FLOAT,
        Some(E::Float64) => dtype::DOUBLE,
        Some(E::Float16) => dtype::FLOAT16,
        Some(E::Int64) => dtype::INT64,
        Some(E::Int32) => dtype::INT32,
        Some(E::Int8) => dtype::INT8,
        Some(E::Uint8) => dtype::UINT8,
        Some(E::Bool) => dtype::BOOL,
        _ => 0,
    }
}
