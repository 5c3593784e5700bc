//! Shape ops: data movement whose adjoint moves the gradient back (reshape, transpose, slice ↔
//! pad, concat ↔ split, gather ↔ scatter-add, expand/tile ↔ sum).

use super::{Grads, g0, only_inputs};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::attr;

type R = Result<Grads, GradError>;

/// Reshape, Flatten, Squeeze, Unsqueeze: same data, the input's shape back.
pub fn reshape_like(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    Ok(vec![Some(c.reshape(&g, &sx))])
}

pub fn transpose(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let rank = c.shape(&c.x(0))?.len();
    let perm = c
        .attr_ints("perm")
        .unwrap_or_else(|| (0..rank as i64).rev().collect());
    let mut inv = vec![0i64; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        let p = usize::try_from(p)
            .ok()
            .filter(|&p| p < perm.len())
            .ok_or_else(|| c.err("bad perm"))?;
        inv[p] = i as i64;
    }
    Ok(vec![Some(c.transpose(&g, &inv))])
}

fn slice_axis(c: &mut Ctx, g: &str, axis: usize, start: i64, end: i64) -> String {
    let (s, e, a) = (c.ints(&[start]), c.ints(&[end]), c.ints(&[axis as i64]));
    c.op("Slice", &[g, s.as_str(), e.as_str(), a.as_str()])
}

pub fn concat(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let rank = c.shape(&c.y(0))?.len();
    let axis = c.axis(c.attr_int("axis", 0), rank)?;
    let mut out = vec![None; need.len()];
    let mut offset = 0;
    for (i, n) in need.iter().enumerate() {
        let len = c.shape(&c.x(i))?.get(axis).copied().unwrap_or(0);
        if *n {
            out[i] = Some(slice_axis(c, &g, axis, offset, offset + len));
        }
        offset += len;
    }
    Ok(out)
}

pub fn split(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    let sx = c.shape(&c.x(0))?;
    let axis = c.axis(c.attr_int("axis", 0), sx.len())?;
    let mut parts = Vec::with_capacity(gy.len());
    for (i, g) in gy.iter().enumerate() {
        parts.push(match g {
            Some(g) => g.clone(),
            None => {
                let y = c.y(i);
                c.zeros_like(&y)?
            }
        });
    }
    let gx = c.op_a("Concat", &parts, vec![attr::int("axis", axis as i64)]);
    Ok(vec![Some(gx), None])
}

/// The positions a Slice takes along one axis of length `dim` (ONNX clamping rules).
fn slice_positions(start: i64, end: i64, step: i64, dim: i64) -> Vec<i64> {
    let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, e) = (norm(start).clamp(0, dim), norm(end).clamp(0, dim));
        while i < e {
            out.push(i);
            i += step;
        }
    } else if step < 0 {
        let (mut i, e) = (norm(start).clamp(0, dim - 1), norm(end).clamp(-1, dim - 1));
        while i > e {
            out.push(i);
            i += step;
        }
    }
    out
}

/// Slice with constant starts/ends/axes/steps. The gradient is zero-padded back (step 1) or
/// scattered to the taken positions (other steps, flips included), one axis at a time.
pub fn slice(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    let starts = c.const_ints(&c.x(1))?;
    let ends = c.const_ints(&c.x(2))?;
    let axes = match c.x(3) {
        a if a.is_empty() => (0..starts.len() as i64).collect(),
        a => c.const_ints(&a)?,
    };
    let steps = match c.x(4) {
        s if s.is_empty() => vec![1; starts.len()],
        s => c.const_ints(&s)?,
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(c.err("starts, ends, axes and steps differ in length"));
    }
    let mut cur = c.shape(&c.y(0))?;
    let mut gx = g;
    for k in 0..starts.len() {
        let a = c.axis(axes[k], sx.len())?;
        let pos = slice_positions(starts[k], ends[k], steps[k], sx[a]);
        if pos.len() as i64 != cur[a] {
            return Err(c.err(format!(
                "slice of axis {a} takes {} elements, output has {}",
                pos.len(),
                cur[a]
            )));
        }
        let mut full = cur.clone();
        full[a] = sx[a];
        if steps[k] == 1 {
            let mut pads = vec![0i64; 2 * sx.len()];
            pads[a] = pos.first().copied().unwrap_or(0);
            pads[sx.len() + a] = sx[a] - pads[a] - cur[a];
            let p = c.ints(&pads);
            gx = c.op("Pad", &[&gx, &p]);
        } else {
            let mut ishape = vec![1i64; sx.len()];
            ishape[a] = cur[a];
            let idx = c.ints(&pos);
            let idx = c.reshape(&idx, &ishape);
            let idx = c.expand(&idx, &cur);
            let zero = c.scalar(0.0, &c.y(0))?;
            let zeros = c.expand(&zero, &full);
            gx = c.op_a(
                "ScatterElements",
                &[&zeros, &idx, &gx],
                vec![attr::int("axis", a as i64)],
            );
        }
        cur = full;
    }
    Ok(vec![Some(gx), None, None, None, None])
}

/// Gather: scatter-add the gradient rows back to the gathered positions (repeats add up).
pub fn gather(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    if c.opset < 16 {
        return Err(c.err("its gradient needs ScatterElements with reduction (opset 16 or newer)"));
    }
    let g = g0(c, gy)?;
    let (data, indices) = (c.x(0), c.x(1));
    let sd = c.shape(&data)?;
    let si = c.shape(&indices)?;
    let axis = c.axis(c.attr_int("axis", 0), sd.len())?;
    let k: i64 = si.iter().product();
    let mut sg: Vec<i64> = sd[..axis].to_vec();
    sg.push(k);
    sg.extend_from_slice(&sd[axis + 1..]);
    let g2 = c.reshape(&g, &sg);
    let mut si2 = vec![1i64; sd.len()];
    si2[axis] = k;
    let idx = c.reshape(&indices, &si2);
    let idx = c.expand(&idx, &sg);
    let zeros = c.zeros_like(&data)?;
    let gx = c.op_a(
        "ScatterElements",
        &[&zeros, &idx, &g2],
        vec![
            attr::int("axis", axis as i64),
            attr::string("reduction", "add"),
        ],
    );
    Ok(vec![Some(gx), None])
}

/// Pad in constant mode: slice the gradient back out (negative pads crop, so pad those back).
pub fn pad(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    let mode = {
        use crate::graph::NodeAttrs;
        c.node.attr_string("mode", "constant")
    };
    if mode != "constant" {
        return Err(c.err(format!("mode '{mode}' is not supported (only constant)")));
    }
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    let r = sx.len();
    let raw = c.const_ints(&c.x(1))?;
    let axes: Vec<usize> = match c.x(3) {
        a if a.is_empty() => (0..r).collect(),
        a => c
            .const_ints(&a)?
            .iter()
            .map(|&x| c.axis(x, r))
            .collect::<Result<_, _>>()?,
    };
    if raw.len() != 2 * axes.len() {
        return Err(c.err("pads do not match the axes"));
    }
    let (mut pb, mut pe) = (vec![0i64; r], vec![0i64; r]);
    for (i, &a) in axes.iter().enumerate() {
        pb[a] = raw[i];
        pe[a] = raw[axes.len() + i];
    }
    let starts: Vec<i64> = pb.iter().map(|&p| p.max(0)).collect();
    let ends: Vec<i64> = (0..r)
        .map(|a| starts[a] + sx[a] + pb[a].min(0) + pe[a].min(0))
        .collect();
    let all: Vec<i64> = (0..r as i64).collect();
    let (s, e, ax) = (c.ints(&starts), c.ints(&ends), c.ints(&all));
    let mut gx = c.op("Slice", &[&g, &s, &e, &ax]);
    if pb.iter().chain(&pe).any(|&p| p < 0) {
        let back: Vec<i64> = pb.iter().chain(&pe).map(|&p| (-p).max(0)).collect();
        let b = c.ints(&back);
        gx = c.op("Pad", &[&gx, &b]);
    }
    Ok(vec![Some(gx), None, None, None])
}

pub fn expand(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    Ok(vec![Some(c.unbroadcast_to_input(&g, 0)?), None])
}

/// Tile: view the gradient as [r0, d0, r1, d1, …] and sum over the repeats.
pub fn tile(c: &mut Ctx, gy: &[Option<String>], _need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    let reps = c.const_ints(&c.x(1))?;
    if reps.len() != sx.len() {
        return Err(c.err("repeats do not match the rank"));
    }
    let inter: Vec<i64> = reps.iter().zip(&sx).flat_map(|(&r, &d)| [r, d]).collect();
    let v = c.reshape(&g, &inter);
    let axes: Vec<i64> = (0..sx.len() as i64).map(|i| 2 * i).collect();
    let s = c.reduce_sum(&v, &axes, false);
    Ok(vec![Some(c.reshape(&s, &sx)), None])
}
