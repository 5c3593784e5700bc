//! Resize is linear in its input and separable per axis: y = A_h·x·A_wᵀ for a 2-D resize. Each
//! axis matrix A (out × in) is obtained exactly by letting ONNX Runtime resize an identity
//! matrix with the node's own attributes, so every mode and coordinate transformation matches
//! the forward kernel bit for bit. The gradient is then gx = A_hᵀ·g·A_w.

use super::{Grads, g0, only_inputs};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::proto::dtype;
use crate::graph::{Builder, NodeAttrs, Runner, TensorData};
use crate::runtime::SessionConfig;
use ndarray::{Array2, ArrayD, IxDyn};

type R = Result<Grads, GradError>;

/// The transposed resize matrix Aᵀ (in × out) of one axis of length `n` resized to `m`.
fn axis_matrix(c: &Ctx, n: i64, m: i64, scale: Option<f64>) -> Result<Array2<f32>, GradError> {
    let nu = usize::try_from(n).map_err(|_| c.err("negative size"))?;
    let mut b = Builder::new("resize matrix", c.opset);
    let eye = ArrayD::from_shape_fn(IxDyn(&[1, 1, nu, nu]), |i| {
        f32::from(u8::from(i[2] == i[3]))
    });
    let x = b.constant("eye", &TensorData::F32(eye));
    let attrs: Vec<_> = c
        .node
        .attribute
        .iter()
        .filter(|a| a.name != "axes" && a.name != "keep_aspect_ratio_policy")
        .cloned()
        .collect();
    let y = match scale {
        Some(s) => {
            let sc =
                TensorData::F32(ndarray::Array1::from(vec![1.0, 1.0, 1.0, s as f32]).into_dyn());
            let sc = b.constant("scales", &sc);
            b.op("Resize", &[x.as_str(), "", sc.as_str()], attrs)
        }
        None => {
            let sz = b.const_i64(&[1, 1, n, m]);
            b.op("Resize", &[x.as_str(), "", "", sz.as_str()], attrs)
        }
    };
    b.output(&y);
    let model = b.finish();
    let config = SessionConfig {
        intra_threads: 1,
        optimize: false,
    };
    let mut runner = Runner::new(&model, "resize gradient matrix", &config)?;
    let out = runner.run(&[])?;
    let Some(TensorData::F32(a)) = out.get(&y) else {
        return Err(c.err("ONNX Runtime returned no resize matrix"));
    };
    let mu = usize::try_from(m).map_err(|_| c.err("negative size"))?;
    a.to_shape((nu, mu))
        .map(|v| v.to_owned())
        .map_err(|e| c.err(format!("resize matrix has shape {:?}: {e}", a.shape())))
}

pub fn resize(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    let ctm = c
        .node
        .attr_string("coordinate_transformation_mode", "half_pixel");
    if ctm == "tf_crop_and_resize" {
        return Err(c.err("coordinate_transformation_mode tf_crop_and_resize is not supported"));
    }
    if c.node.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch" {
        return Err(c.err("keep_aspect_ratio_policy other than stretch is not supported"));
    }
    let g = g0(c, gy)?;
    let x = c.x(0);
    let sx = c.shape(&x)?;
    let sy = c.shape(&c.y(0))?;
    let r = sx.len();
    let axes: Vec<usize> = match c.attr_ints("axes") {
        Some(a) => a.iter().map(|&v| c.axis(v, r)).collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    let scales_name = c.x(2);
    let sizes_given = !c.x(3).is_empty();
    let scales: Option<Vec<f64>> = if !sizes_given && !scales_name.is_empty() {
        Some(c.const_floats(&scales_name)?)
    } else {
        None
    };
    let dt = c.dtype(&x)?;
    let mut gx = g;
    for (k, &d) in axes.iter().enumerate() {
        let scale = scales.as_ref().and_then(|s| s.get(k).copied());
        if sx[d] == sy[d] && scale.is_none_or(|s| s == 1.0) {
            continue;
        }
        let at = axis_matrix(c, sx[d], sy[d], scale)?; // n × m
        let mat = |t: Array2<f32>| -> TensorData {
            if dt == dtype::DOUBLE {
                TensorData::F64(t.mapv(f64::from).into_dyn())
            } else {
                TensorData::F32(t.into_dyn())
            }
        };
        if d + 2 == r {
            let k_ = c.constant(&mat(at));
            gx = c.op("MatMul", &[&k_, &gx]);
        } else {
            let a = c.constant(&mat(at.t().to_owned()));
            if d + 1 == r {
                gx = c.op("MatMul", &[&gx, &a]);
            } else {
                let mut perm: Vec<i64> = (0..r as i64).collect();
                perm.swap(d, r - 1);
                let t = c.transpose(&gx, &perm);
                let p = c.op("MatMul", &[&t, &a]);
                gx = c.transpose(&p, &perm);
            }
        }
    }
    Ok(vec![Some(gx), None, None, None])
}
