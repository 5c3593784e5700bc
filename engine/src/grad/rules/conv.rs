//! Conv and ConvTranspose, input gradients: each is the other's adjoint with the same weights.

use super::{Grads, g0, only_inputs};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::{NodeAttrs, attr};

type R = Result<Grads, GradError>;

struct Geometry {
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    kernel: Vec<i64>,
    group: i64,
}

/// Strides, dilations, kernel and explicit pads (auto_pad resolved with the probed shapes).
fn geometry(
    c: &Ctx,
    x_spatial: &[i64],
    y_spatial: &[i64],
    transpose: bool,
) -> Result<Geometry, GradError> {
    let nd = x_spatial.len();
    let w = c.shape(&c.x(1))?;
    let kernel = c
        .node
        .attr_ints("kernel_shape")
        .unwrap_or_else(|| w.get(2..).map(<[i64]>::to_vec).unwrap_or_default());
    let strides = c.node.attr_ints("strides").unwrap_or_else(|| vec![1; nd]);
    let dilations = c.node.attr_ints("dilations").unwrap_or_else(|| vec![1; nd]);
    if kernel.len() != nd || strides.len() != nd || dilations.len() != nd {
        return Err(c.err("kernel, strides and dilations must match the spatial rank"));
    }
    let auto_pad = c.node.attr_string("auto_pad", "NOTSET");
    let pads = match auto_pad.as_str() {
        "NOTSET" => c.node.attr_ints("pads").unwrap_or_else(|| vec![0; 2 * nd]),
        "VALID" => vec![0; 2 * nd],
        "SAME_UPPER" | "SAME_LOWER" if !transpose => {
            let mut begin = Vec::new();
            let mut end = Vec::new();
            for i in 0..nd {
                let eff = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((y_spatial[i] - 1) * strides[i] + eff - x_spatial[i]).max(0);
                let small = total / 2;
                let (b, e) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                begin.push(b);
                end.push(e);
            }
            begin.into_iter().chain(end).collect()
        }
        other => return Err(c.err(format!("auto_pad {other} is not supported here"))),
    };
    if pads.len() != 2 * nd {
        return Err(c.err("pads must have two entries per spatial axis"));
    }
    Ok(Geometry {
        strides,
        dilations,
        pads,
        kernel,
        group: c.node.attr_int("group", 1),
    })
}

pub fn conv(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    let sy = c.shape(&c.y(0))?;
    if sx.len() < 3 || sy.len() != sx.len() {
        return Err(c.err(format!("unexpected shapes {sx:?} -> {sy:?}")));
    }
    let geo = geometry(c, &sx[2..], &sy[2..], false)?;
    let nd = sx.len() - 2;
    // ConvTranspose output = (in-1)·s + (k-1)·d + 1 - pads + output_padding; choose
    // output_padding so that it equals the forward input size.
    let mut output_padding = Vec::with_capacity(nd);
    for i in 0..nd {
        let eff = (geo.kernel[i] - 1) * geo.dilations[i] + 1;
        let size = (sy[2 + i] - 1) * geo.strides[i] + eff - geo.pads[i] - geo.pads[nd + i];
        output_padding.push(sx[2 + i] - size);
    }
    let w = c.x(1);
    let gx = c.op_a(
        "ConvTranspose",
        &[&g, &w],
        vec![
            attr::ints("strides", &geo.strides),
            attr::ints("dilations", &geo.dilations),
            attr::ints("pads", &geo.pads),
            attr::ints("kernel_shape", &geo.kernel),
            attr::ints("output_padding", &output_padding),
            attr::int("group", geo.group),
        ],
    );
    Ok(vec![Some(gx), None, None])
}

pub fn conv_transpose(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    only_inputs(c, need, &[0])?;
    if c.node.attr("output_shape").is_some() {
        return Err(c.err("the output_shape attribute is not supported; give explicit pads"));
    }
    let g = g0(c, gy)?;
    let sx = c.shape(&c.x(0))?;
    let sy = c.shape(&c.y(0))?;
    if sx.len() < 3 || sy.len() != sx.len() {
        return Err(c.err(format!("unexpected shapes {sx:?} -> {sy:?}")));
    }
    let geo = geometry(c, &sx[2..], &sy[2..], true)?;
    let w = c.x(1);
    let gx = c.op_a(
        "Conv",
        &[&g, &w],
        vec![
            attr::ints("strides", &geo.strides),
            attr::ints("dilations", &geo.dilations),
            attr::ints("pads", &geo.pads),
            attr::ints("kernel_shape", &geo.kernel),
            attr::int("group", geo.group),
        ],
    );
    Ok(vec![Some(gx), None, None])
}
