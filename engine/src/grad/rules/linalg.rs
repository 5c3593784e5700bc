//! MatMul (numpy semantics: 1-D operands, batch broadcasting), Gemm, Einsum.

use super::{Grads, g0};
use crate::grad::GradError;
use crate::grad::ctx::Ctx;
use crate::graph::{NodeAttrs, attr};

type R = Result<Grads, GradError>;

fn swap_last2(rank: usize) -> Vec<i64> {
    let mut p: Vec<i64> = (0..rank as i64).collect();
    if rank >= 2 {
        p.swap(rank - 2, rank - 1);
    }
    p
}

pub fn matmul(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (a, b) = (c.x(0), c.x(1));
    let (sa, sb) = (c.shape(&a)?, c.shape(&b)?);
    let sy = c.shape(&c.y(0))?;
    let (a1, b1) = (sa.len() == 1, sb.len() == 1);
    if sa.is_empty() || sb.is_empty() {
        return Err(c.err("MatMul operands must have rank 1 or more"));
    }
    // Promote 1-D operands to matrices, as MatMul does, and view the gradient the same way.
    let sa2 = if a1 { vec![1, sa[0]] } else { sa.clone() };
    let sb2 = if b1 { vec![sb[0], 1] } else { sb.clone() };
    let core = usize::from(!a1) + usize::from(!b1);
    let batch = sy[..sy.len().saturating_sub(core)].to_vec();
    let m = sa2[sa2.len() - 2];
    let n = sb2[sb2.len() - 1];
    let full: Vec<i64> = batch.iter().copied().chain([m, n]).collect();
    let a2 = if a1 { c.reshape(&a, &sa2) } else { a.clone() };
    let b2 = if b1 { c.reshape(&b, &sb2) } else { b.clone() };
    let g2 = if full == sy {
        g.clone()
    } else {
        c.reshape(&g, &full)
    };
    let mut out = vec![None, None];
    if need[0] {
        let bt = c.transpose(&b2, &swap_last2(sb2.len()));
        let ga = c.op("MatMul", &[&g2, &bt]);
        let k = sa2[sa2.len() - 1];
        let from: Vec<i64> = batch.iter().copied().chain([m, k]).collect();
        let r = c.unbroadcast(&ga, &from, &sa2)?;
        out[0] = Some(c.reshape(&r, &sa));
    }
    if need[1] {
        let at = c.transpose(&a2, &swap_last2(sa2.len()));
        let gb = c.op("MatMul", &[&at, &g2]);
        let k = sb2[sb2.len() - 2];
        let from: Vec<i64> = batch.iter().copied().chain([k, n]).collect();
        let r = c.unbroadcast(&gb, &from, &sb2)?;
        out[1] = Some(c.reshape(&r, &sb));
    }
    Ok(out)
}

/// Y = alpha·A'·B' + beta·C with A' = A or Aᵀ, B' = B or Bᵀ.
pub fn gemm(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let (a, b) = (c.x(0), c.x(1));
    let alpha = c.node.attr_float("alpha", 1.0);
    let beta = c.node.attr_float("beta", 1.0);
    let ta = c.node.attr_int("transA", 0);
    let tb = c.node.attr_int("transB", 0);
    let mut out = vec![None, None, None];
    if need[0] {
        // dA' = alpha·G·B'ᵀ
        let ga = c.op_a(
            "Gemm",
            &[&g, &b],
            vec![attr::float("alpha", alpha), attr::int("transB", 1 - tb)],
        );
        out[0] = Some(if ta == 1 {
            c.transpose(&ga, &[1, 0])
        } else {
            ga
        });
    }
    if need[1] {
        // dB' = alpha·A'ᵀ·G
        let gb = c.op_a(
            "Gemm",
            &[&a, &g],
            vec![attr::float("alpha", alpha), attr::int("transA", 1 - ta)],
        );
        out[1] = Some(if tb == 1 {
            c.transpose(&gb, &[1, 0])
        } else {
            gb
        });
    }
    if need.get(2).copied().unwrap_or(false) {
        let gs = if beta == 1.0 {
            g.clone()
        } else {
            let k = c.scalar(f64::from(beta), &c.y(0))?;
            c.op("Mul", &[&g, &k])
        };
        out[2] = Some(c.unbroadcast_to_input(&gs, 2)?);
    }
    Ok(out)
}

/// Parses "ab,bc->ac" (explicit or implicit output; no ellipsis) into operand and output terms.
fn parse_einsum(eq: &str) -> Option<(Vec<Vec<char>>, Vec<char>)> {
    let eq: String = eq.chars().filter(|ch| !ch.is_whitespace()).collect();
    if eq.contains('.') {
        return None;
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let out = match rhs {
        Some(r) => r.chars().collect(),
        None => {
            // Implicit mode: letters that appear exactly once, in alphabetical order.
            let mut letters: Vec<char> = terms.iter().flatten().copied().collect();
            letters.sort_unstable();
            let mut once: Vec<char> = letters
                .iter()
                .copied()
                .filter(|l| letters.iter().filter(|m| *m == l).count() == 1)
                .collect();
            once.dedup();
            once
        }
    };
    Some((terms, out))
}

pub fn einsum(c: &mut Ctx, gy: &[Option<String>], need: &[bool]) -> R {
    let g = g0(c, gy)?;
    let eq = c.node.attr_string("equation", "");
    let (terms, out_term) = parse_einsum(&eq).ok_or_else(|| {
        c.err(format!(
            "equation '{eq}' uses an ellipsis, which is not supported"
        ))
    })?;
    if terms.len() != c.node.input.len() {
        return Err(c.err(format!(
            "equation '{eq}' does not match {} inputs",
            c.node.input.len()
        )));
    }
    let mut grads = vec![None; terms.len()];
    for i in 0..terms.len() {
        if !need[i] {
            continue;
        }
        let term = &terms[i];
        let mut sorted = term.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != term.len() {
            return Err(c.err(format!(
                "operand {i} of '{eq}' repeats an index (a diagonal)"
            )));
        }
        let others: Vec<usize> = (0..terms.len()).filter(|&j| j != i).collect();
        let kept: Vec<char> = term
            .iter()
            .copied()
            .filter(|l| out_term.contains(l) || others.iter().any(|&j| terms[j].contains(l)))
            .collect();
        let mut lhs: Vec<String> = vec![out_term.iter().collect()];
        lhs.extend(others.iter().map(|&j| terms[j].iter().collect::<String>()));
        let geq = format!("{}->{}", lhs.join(","), kept.iter().collect::<String>());
        let mut inputs = vec![g.clone()];
        inputs.extend(others.iter().map(|&j| c.x(j)));
        let mut gi = c.op_a("Einsum", &inputs, vec![attr::string("equation", &geq)]);
        if kept.len() != term.len() {
            // Indices summed within this operand alone: broadcast the gradient back over them.
            let shape = c.shape(&c.x(i))?;
            let with_ones: Vec<i64> = term
                .iter()
                .zip(&shape)
                .map(|(l, &d)| if kept.contains(l) { d } else { 1 })
                .collect();
            gi = c.reshape(&gi, &with_ones);
            gi = c.expand(&gi, &shape);
        }
        grads[i] = Some(gi);
    }
    Ok(grads)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::parse_einsum;

    #[test]
    fn parses_explicit_and_implicit_equations() {
        let (t, o) = parse_einsum("bhwc, hkc -> bhwk").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(o, vec!['b', 'h', 'w', 'k']);
        let (_, o) = parse_einsum("ij,jk").unwrap();
        assert_eq!(o, vec!['i', 'k']);
        assert!(parse_einsum("...ij,...jk->...ik").is_none());
    }
}
