//! Softmax, LogSoftmax (opset ≥ 13: one axis) and LayerNormalization.

use super::{Grads, g0};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::NodeAttrs;

type R = Result<Grads, GradError>;

pub fn softmax(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let y = c.y(0);
    let rank = c.shape(&y)?.len();
    let axis = c.axis(c.attr_int("axis", -1), rank)? as i64;
    // dx = y ⊙ (g − Σ g⊙y)
    let gy_ = c.op("Mul", &[&g, &y]);
    let s = c.reduce_sum(&gy_, &[axis], true);
    let d = c.op("Sub", &[&g, &s]);
    Ok(vec![Some(c.op("Mul", &[&y, &d]))])
}

pub fn log_softmax(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let y = c.y(0);
    let rank = c.shape(&y)?.len();
    let axis = c.axis(c.attr_int("axis", -1), rank)? as i64;
    // dx = g − softmax ⊙ Σ g
    let p = c.op("Exp", &[&y]);
    let s = c.reduce_sum(&g, &[axis], true);
    let t = c.op("Mul", &[&p, &s]);
    Ok(vec![Some(c.op("Sub", &[&g, &t]))])
}

/// LayerNormalization over axes [axis, rank). Mean and 1/σ are recomputed in the backward graph.
pub fn layer_norm(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (x, scale) = (c.x(0), c.x(1));
    let sx = c.shape(&x)?;
    let axis = c.axis(c.attr_int("axis", -1), sx.len())?;
    let eps = f64::from(c.node.attr_float("epsilon", 1e-5));
    let axes: Vec<i64> = (axis..sx.len()).map(|a| a as i64).collect();
    let n: i64 = sx[axis..].iter().product();
    let inv_n = c.scalar(1.0 / n.max(1) as f64, &x)?;
    let mean = |c: &mut Ctx, t: &str| {
        let s = c.reduce_sum(t, &axes, true);
        c.op("Mul", &[&s, &inv_n])
    };
    let mu = mean(c, &x);
    let xc = c.op("Sub", &[&x, &mu]);
    let sq = c.op("Mul", &[&xc, &xc]);
    let var = mean(c, &sq);
    let e = c.scalar(eps, &x)?;
    let ve = c.op("Add", &[&var, &e]);
    let sd = c.op("Sqrt", &[&ve]);
    let rstd = c.op("Reciprocal", &[&sd]);
    let xhat = c.op("Mul", &[&xc, &rstd]);
    let mut out = vec![None, None, None];
    if need[0] {
        // dx = rstd · (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·scale
        let gh = c.op("Mul", &[&g, &scale]);
        let m1 = mean(c, &gh);
        let ghx = c.op("Mul", &[&gh, &xhat]);
        let m2 = mean(c, &ghx);
        let t = c.op("Mul", &[&xhat, &m2]);
        let d = c.op("Sub", &[&gh, &m1]);
        let d = c.op("Sub", &[&d, &t]);
        out[0] = Some(c.op("Mul", &[&d, &rstd]));
    }
    let sy = c.shape(&c.y(0))?;
    if need[1] {
        let t = c.op("Mul", &[&g, &xhat]);
        let ss = c.shape(&scale)?;
        out[1] = Some(c.unbroadcast(&t, &sy, &ss)?);
    }
    if need.get(2).copied().unwrap_or(false) {
        let sb = c.shape(&c.x(2))?;
        out[2] = Some(c.unbroadcast(&g, &sy, &sb)?);
    }
    Ok(out)
}
