//! Reduce* ops: the output gradient is broadcast back over the reduced axes, weighted per op.

use super::{Grads, g0};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::attr;

type R = Result<Grads, GradError>;

/// The reduced axes (normalized), from the `axes` input (ReduceSum ≥ 13, all ≥ 18) or attribute.
fn reduced_axes(c: &Ctx, rank: usize) -> Result<Option<Vec<usize>>, GradError> {
    let from_input = c.node.input.get(1).filter(|s| !s.is_empty()).cloned();
    let axes = match from_input {
        Some(name) => Some(c.const_ints(&name)?),
        None => c.attr_ints("axes"),
    };
    let axes = axes.filter(|a| !a.is_empty());
    match axes {
        Some(a) => {
            let mut v = a
                .iter()
                .map(|&x| c.axis(x, rank))
                .collect::<Result<Vec<_>, _>>()?;
            v.sort_unstable();
            v.dedup();
            Ok(Some(v))
        }
        // No axes: all of them, unless noop_with_empty_axes makes the op an identity.
        None if c.attr_int("noop_with_empty_axes", 0) == 1 => Ok(None),
        None => Ok(Some((0..rank).collect())),
    }
}

pub fn reduce(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (x, y) = (c.x(0), c.y(0));
    let sx = c.shape(&x)?;
    let Some(axes) = reduced_axes(c, sx.len())? else {
        return Ok(vec![Some(g)]);
    };
    let kept: Vec<i64> = sx
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    // Output gradient (and output) with the reduced axes kept as size 1.
    let gk = c.reshape(&g, &kept);
    let op = c.node.op_type.clone();
    let count: i64 = axes.iter().map(|&a| sx[a]).product();
    let gx = match op.as_str() {
        "ReduceSum" => c.expand(&gk, &sx),
        "ReduceMean" => {
            let k = c.scalar(1.0 / count.max(1) as f64, &x)?;
            let t = c.op("Mul", &[&gk, &k]);
            c.expand(&t, &sx)
        }
        "ReduceSumSquare" => {
            let two = c.scalar(2.0, &x)?;
            let t = c.op("Mul", &[&x, &two]);
            c.op("Mul", &[&t, &gk])
        }
        "ReduceL1" => {
            let s = c.op("Sign", &[&x]);
            c.op("Mul", &[&s, &gk])
        }
        "ReduceL2" => {
            let yk = c.reshape(&y, &kept);
            let t = c.op("Div", &[&gk, &yk]);
            c.op("Mul", &[&x, &t])
        }
        "ReduceLogSumExp" => {
            let yk = c.reshape(&y, &kept);
            let d = c.op("Sub", &[&x, &yk]);
            let e = c.op("Exp", &[&d]);
            c.op("Mul", &[&e, &gk])
        }
        "ReduceMax" | "ReduceMin" => {
            // Split evenly between tied extrema, like PyTorch's amax/amin.
            let yk = c.reshape(&y, &kept);
            let hit = c.op("Equal", &[&x, &yk]);
            let dt = c.dtype(&x)?;
            let mask = c.op_a("Cast", &[&hit], vec![attr::int("to", i64::from(dt))]);
            let ax: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            let n = c.reduce_sum(&mask, &ax, true);
            let share = c.op("Div", &[&gk, &n]);
            c.op("Mul", &[&mask, &share])
        }
        other => return Err(c.err(format!("no rule for {other}"))),
    };
    Ok(vec![Some(gx), None])
}
