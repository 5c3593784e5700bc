//! Elementwise ops. Binary ops broadcast, so their gradients are summed back to each input's
//! shape (`unbroadcast`).

use super::{Grads, g0};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::attr;
use crate::graph::proto::dtype;

type R = Result<Grads, GradError>;

pub fn add(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let mut out = vec![None, None];
    for i in 0..2 {
        if need[i] {
            out[i] = Some(c.unbroadcast_to_input(&g, i)?);
        }
    }
    Ok(out)
}

pub fn sub(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let mut out = vec![None, None];
    if need[0] {
        out[0] = Some(c.unbroadcast_to_input(&g, 0)?);
    }
    if need[1] {
        let n = c.op("Neg", &[&g]);
        out[1] = Some(c.unbroadcast_to_input(&n, 1)?);
    }
    Ok(out)
}

pub fn mul(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (a, b) = (c.x(0), c.x(1));
    let mut out = vec![None, None];
    if need[0] {
        let t = c.op("Mul", &[&g, &b]);
        out[0] = Some(c.unbroadcast_to_input(&t, 0)?);
    }
    if need[1] {
        let t = c.op("Mul", &[&g, &a]);
        out[1] = Some(c.unbroadcast_to_input(&t, 1)?);
    }
    Ok(out)
}

pub fn div(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (b, y) = (c.x(1), c.y(0));
    let mut out = vec![None, None];
    if need[0] {
        let t = c.op("Div", &[&g, &b]);
        out[0] = Some(c.unbroadcast_to_input(&t, 0)?);
    }
    if need[1] {
        // d(a/b)/db = -y/b
        let gy_ = c.op("Mul", &[&g, &y]);
        let t = c.op("Div", &[&gy_, &b]);
        let n = c.op("Neg", &[&t]);
        out[1] = Some(c.unbroadcast_to_input(&n, 1)?);
    }
    Ok(out)
}

pub fn pow(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (a, b, y) = (c.x(0), c.x(1), c.y(0));
    let mut out = vec![None, None];
    if need[0] {
        // The exponent may be of another (even integer) type: compute in the base's type.
        let ta = c.dtype(&a)?;
        let bf = if c.dtype(&b)? == ta {
            b.clone()
        } else {
            c.op_a("Cast", &[&b], vec![attr::int("to", i64::from(ta))])
        };
        let one = c.scalar(1.0, &a)?;
        let bm1 = c.op("Sub", &[&bf, &one]);
        let p = c.op("Pow", &[&a, &bm1]);
        let t = c.op("Mul", &[&p, &bf]);
        let t = c.op("Mul", &[&t, &g]);
        out[0] = Some(c.unbroadcast_to_input(&t, 0)?);
    }
    if need[1] {
        let l = c.op("Log", &[&a]);
        let t = c.op("Mul", &[&y, &l]);
        let t = c.op("Mul", &[&t, &g]);
        out[1] = Some(c.unbroadcast_to_input(&t, 1)?);
    }
    Ok(out)
}

/// A unary rule: gx = g * f(x, y).
fn unary(
    c: &mut Ctx,
    gy: &[Option<String>],
    f: impl FnOnce(&mut Ctx, &str, &str, &str) -> Result<String, GradError>,
) -> R {
    let g = g0(c, gy)?;
    let (x, y) = (c.x(0), c.y(0));
    Ok(vec![Some(f(c, &g, &x, &y)?)])
}

pub fn sqrt(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, y| {
        let h = c.scalar(0.5, y)?;
        let t = c.op("Div", &[g, y]);
        Ok(c.op("Mul", &[&t, &h]))
    })
}

pub fn exp(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, y| Ok(c.op("Mul", &[g, y])))
}

pub fn log(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| Ok(c.op("Div", &[g, x])))
}

pub fn neg(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, _y| Ok(c.op("Neg", &[g])))
}

pub fn abs(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let s = c.op("Sign", &[x]);
        Ok(c.op("Mul", &[g, s.as_str()]))
    })
}

pub fn reciprocal(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, y| {
        let yy = c.op("Mul", &[y, y]);
        let t = c.op("Mul", &[g, yy.as_str()]);
        Ok(c.op("Neg", &[&t]))
    })
}

pub fn erf(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let xx = c.op("Mul", &[x, x]);
        let n = c.op("Neg", &[&xx]);
        let e = c.op("Exp", &[&n]);
        let k = c.scalar(2.0 / std::f64::consts::PI.sqrt(), x)?;
        let d = c.op("Mul", &[&e, &k]);
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn gelu(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    let approximate = {
        use crate::graph::NodeAttrs;
        c.node.attr_string("approximate", "none")
    };
    unary(c, gy, |c, g, x, _y| {
        let half = c.scalar(0.5, x)?;
        let one = c.scalar(1.0, x)?;
        let d = if approximate == "tanh" {
            // y = x/2 (1 + tanh u), u = k (x + 0.044715 x^3), k = sqrt(2/pi)
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let kc = c.scalar(k, x)?;
            let a = c.scalar(0.044715, x)?;
            let a3 = c.scalar(3.0 * 0.044715 * k, x)?;
            let xx = c.op("Mul", &[x, x]);
            let x3 = c.op("Mul", &[xx.as_str(), x]);
            let ax3 = c.op("Mul", &[&x3, &a]);
            let inner = c.op("Add", &[x, ax3.as_str()]);
            let u = c.op("Mul", &[&inner, &kc]);
            let t = c.op("Tanh", &[&u]);
            let left = c.op("Add", &[&one, &t]);
            let left = c.op("Mul", &[&left, &half]);
            // du/dx = k + 3 a k x^2
            let du = c.op("Mul", &[&xx, &a3]);
            let du = c.op("Add", &[&du, &kc]);
            let tt = c.op("Mul", &[&t, &t]);
            let sech2 = c.op("Sub", &[&one, &tt]);
            let right = c.op("Mul", &[&sech2, &du]);
            let right = c.op("Mul", &[right.as_str(), x]);
            let right = c.op("Mul", &[&right, &half]);
            c.op("Add", &[&left, &right])
        } else {
            // Phi(x) + x phi(x)
            let r2 = c.scalar(std::f64::consts::FRAC_1_SQRT_2, x)?;
            let xs = c.op("Mul", &[x, r2.as_str()]);
            let e = c.op("Erf", &[&xs]);
            let cdf = c.op("Add", &[&e, &one]);
            let cdf = c.op("Mul", &[&cdf, &half]);
            let xx = c.op("Mul", &[x, x]);
            let nh = c.scalar(-0.5, x)?;
            let ex = c.op("Mul", &[&xx, &nh]);
            let pdf = c.op("Exp", &[&ex]);
            let k = c.scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt(), x)?;
            let pdf = c.op("Mul", &[&pdf, &k]);
            let xp = c.op("Mul", &[pdf.as_str(), x]);
            c.op("Add", &[&cdf, &xp])
        };
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn relu(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let zero = c.scalar(0.0, x)?;
        let pos = c.op("Greater", &[x, zero.as_str()]);
        Ok(c.op("Where", &[pos.as_str(), g, zero.as_str()]))
    })
}

pub fn leaky_relu(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    let alpha = {
        use crate::graph::NodeAttrs;
        c.node.attr_float("alpha", 0.01)
    };
    unary(c, gy, |c, g, x, _y| {
        let zero = c.scalar(0.0, x)?;
        let a = c.scalar(f64::from(alpha), x)?;
        let pos = c.op("Greater", &[x, zero.as_str()]);
        let neg = c.op("Mul", &[g, a.as_str()]);
        Ok(c.op("Where", &[pos.as_str(), g, neg.as_str()]))
    })
}

pub fn sigmoid(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, y| {
        let one = c.scalar(1.0, y)?;
        let om = c.op("Sub", &[one.as_str(), y]);
        let d = c.op("Mul", &[y, om.as_str()]);
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn tanh(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, _x, y| {
        let one = c.scalar(1.0, y)?;
        let yy = c.op("Mul", &[y, y]);
        let d = c.op("Sub", &[&one, &yy]);
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn sin(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let d = c.op("Cos", &[x]);
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn cos(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let d = c.op("Sin", &[x]);
        let t = c.op("Mul", &[g, d.as_str()]);
        Ok(c.op("Neg", &[&t]))
    })
}

pub fn softplus(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    unary(c, gy, |c, g, x, _y| {
        let d = c.op("Sigmoid", &[x]);
        Ok(c.op("Mul", &[g, d.as_str()]))
    })
}

pub fn identity(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    let g = g0(c, gy)?;
    Ok(vec![Some(g)])
}

pub fn cast(c: &mut Ctx, gy: &[Option<String>], _: &[bool]) -> R {
    let g = g0(c, gy)?;
    let to = c.dtype(&c.x(0))?;
    if !dtype::is_float(to) {
        return Ok(vec![None]);
    }
    Ok(vec![Some(c.op_a(
        "Cast",
        &[&g],
        vec![attr::int("to", i64::from(to))],
    ))])
}

pub fn where_(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let cond = c.x(0);
    let zero = c.scalar(0.0, &c.y(0))?;
    let mut out = vec![None, None, None];
    if need[1] {
        let t = c.op("Where", &[&cond, &g, &zero]);
        out[1] = Some(c.unbroadcast_to_input(&t, 1)?);
    }
    if need[2] {
        let t = c.op("Where", &[&cond, &zero, &g]);
        out[2] = Some(c.unbroadcast_to_input(&t, 2)?);
    }
    Ok(out)
}

/// Max/Min: the gradient goes to every input equal to the result (all of them on ties).
pub fn max_min(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let y = c.y(0);
    let zero = c.scalar(0.0, &y)?;
    let mut out = vec![None; need.len()];
    for (i, n) in need.iter().enumerate() {
        if *n {
            let x = c.x(i);
            let hit = c.op("Equal", &[&x, &y]);
            let t = c.op("Where", &[&hit, &g, &zero]);
            out[i] = Some(c.unbroadcast_to_input(&t, i)?);
        }
    }
    Ok(out)
}

pub fn sum(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let mut out = vec![None; need.len()];
    for (i, n) in need.iter().enumerate() {
        if *n {
            out[i] = Some(c.unbroadcast_to_input(&g, i)?);
        }
    }
    Ok(out)
}

pub fn mean(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let k = c.scalar(1.0 / need.len().max(1) as f64, &c.y(0))?;
    let gs = c.op("Mul", &[&g, &k]);
    let mut out = vec![None; need.len()];
    for (i, n) in need.iter().enumerate() {
        if *n {
            out[i] = Some(c.unbroadcast_to_input(&gs, i)?);
        }
    }
    Ok(out)
}

/// Clip passes the gradient where min <= x <= max (bounds are constants).
pub fn clip(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    super::only_inputs(c, need, &[0])?;
    let g = g0(c, gy)?;
    let x = c.x(0);
    let (lo, hi) = (c.x(1), c.x(2));
    let zero = c.scalar(0.0, &x)?;
    let mut inside: Option<String> = None;
    for (bound, op) in [(lo, "GreaterOrEqual"), (hi, "LessOrEqual")] {
        if bound.is_empty() {
            continue;
        }
        let m = c.op(op, &[&x, &bound]);
        inside = Some(match inside {
            Some(prev) => c.op("And", &[&prev, &m]),
            None => m,
        });
    }
    Ok(vec![Some(match inside {
        Some(m) => c.op("Where", &[&m, &g, &zero]),
        None => g,
    })])
}
