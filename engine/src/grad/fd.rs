//! Central finite differences on ONNX Runtime, the reference that gradient checks compare
//! against (per-op unit tests, whole-model checks).

use crate::graph::{GraphError, Runner, TensorData};
use ndarray::ArrayD;

/// Adds `t·dir` to a float tensor (computed in f64, stored in the tensor's own type).
pub fn shifted(x: &TensorData, dir: &ArrayD<f64>, t: f64) -> Result<TensorData, GraphError> {
    let bad = || GraphError::BadTensor {
        tensor: "finite-difference input".into(),
        reason: "direction shape differs or the tensor is not float".into(),
    };
    match x {
        TensorData::F32(a) if a.shape() == dir.shape() => Ok(TensorData::F32(
            ndarray::Zip::from(a)
                .and(dir)
                .map_collect(|&v, &d| (f64::from(v) + t * d) as f32),
        )),
        TensorData::F64(a) if a.shape() == dir.shape() => Ok(TensorData::F64(
            ndarray::Zip::from(a)
                .and(dir)
                .map_collect(|&v, &d| v + t * d),
        )),
        _ => Err(bad()),
    }
}

fn scalar(
    runner: &mut Runner,
    output: &str,
    feeds: &[(&str, &TensorData)],
) -> Result<f64, GraphError> {
    let out = runner.run(feeds)?;
    out.get(output)
        .and_then(TensorData::to_f64_vec)
        .and_then(|v| v.first().copied())
        .ok_or_else(|| GraphError::UnknownTensor(output.to_string()))
}

/// d output / d t of output(wrt + t·dir) at t = 0, by the fourth-order central difference
/// (f(−2h) − 8f(−h) + 8f(h) − f(2h)) / 12h.
pub fn directional_derivative(
    runner: &mut Runner,
    output: &str,
    feeds: &[(&str, &TensorData)],
    wrt: &str,
    dir: &ArrayD<f64>,
    h: f64,
) -> Result<f64, GraphError> {
    let base = feeds
        .iter()
        .find(|(n, _)| *n == wrt)
        .map(|(_, v)| (*v).clone())
        .ok_or_else(|| GraphError::UnknownTensor(wrt.to_string()))?;
    let mut f = [0.0; 4];
    for (k, t) in [-2.0, -1.0, 1.0, 2.0].into_iter().enumerate() {
        let x = shifted(&base, dir, t * h)?;
        let fe: Vec<(&str, &TensorData)> = feeds
            .iter()
            .map(|(n, v)| if *n == wrt { (*n, &x) } else { (*n, *v) })
            .collect();
        f[k] = scalar(runner, output, &fe)?;
    }
    Ok((f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * h))
}

/// The full gradient by finite differences, one input element at a time (small tensors only).
pub fn gradient(
    runner: &mut Runner,
    output: &str,
    feeds: &[(&str, &TensorData)],
    wrt: &str,
    h: f64,
) -> Result<ArrayD<f64>, GraphError> {
    let shape: Vec<usize> = feeds
        .iter()
        .find(|(n, _)| *n == wrt)
        .map(|(_, v)| v.shape().iter().map(|&d| d as usize).collect())
        .ok_or_else(|| GraphError::UnknownTensor(wrt.to_string()))?;
    let mut grad = ArrayD::<f64>::zeros(shape.clone());
    let mut dir = ArrayD::<f64>::zeros(shape);
    for i in 0..grad.len() {
        if let Some(d) = dir.as_slice_mut().and_then(|s| s.get_mut(i)) {
            *d = 1.0;
        }
        let v = directional_derivative(runner, output, feeds, wrt, &dir, h)?;
        if let Some(d) = dir.as_slice_mut().and_then(|s| s.get_mut(i)) {
            *d = 0.0;
        }
        if let Some(g) = grad.as_slice_mut().and_then(|s| s.get_mut(i)) {
            *g = v;
        }
    }
    Ok(grad)
}
