//! Constant folding: nodes whose inputs are all constants are evaluated once by ONNX Runtime
//! and replaced by initializers. `fold_shapes` first specializes `Shape`/`Size` nodes to the
//! probed shapes, which turns the shape arithmetic of PyTorch exports into constants.

use super::build::NodeAttrs;
use super::exec::Runner;
use super::{GraphError, Model, Shapes, TensorData};
use crate::runtime::SessionConfig;
use std::collections::HashSet;

/// Ops that must not be evaluated ahead of time.
const NON_FOLDABLE: &[&str] = &[
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "If",
    "Loop",
    "Scan",
];

/// Replaces every `Shape`/`Size` node whose input has a probed shape by a constant, then folds
/// constants. The model is then valid only for inputs of the probed shapes.
pub fn fold_shapes(model: &mut Model, shapes: &Shapes) -> Result<usize, GraphError> {
    let mut replaced = 0;
    let mut i = 0;
    while i < model.graph().node.len() {
        let node = model.graph().node[i].clone();
        let info = node.input.first().and_then(|x| shapes.get(x));
        let value = match (node.op_type.as_str(), info, node.output.first()) {
            (op @ ("Shape" | "Size"), Some(info), Some(out)) if node.domain.is_empty() => {
                let value = if op == "Size" {
                    TensorData::I64(ndarray::arr0(info.shape.iter().product::<i64>()).into_dyn())
                } else {
                    let rank = info.shape.len() as i64;
                    let clamp = |v: i64| if v < 0 { (v + rank).max(0) } else { v.min(rank) } as usize;
                    let start = clamp(node.attr_int("start", 0));
                    let end = clamp(node.attr_int("end", rank));
                    let dims = info
                        .shape
                        .get(start..end.max(start))
                        .unwrap_or(&[])
                        .to_vec();
                    TensorData::I64(ndarray::Array1::from(dims).into_dyn())
                };
                Some((out.clone(), value))
            }
            _ => None,
        };
        match value {
            Some((out, value)) => {
                model.remove_node(i)?;
                model.set_initializer(&out, &value);
                replaced += 1;
            }
            None => i += 1,
        }
    }
    Ok(replaced + fold_constants(model)?)
}

/// Evaluates the nodes that depend only on initializers and replaces them by initializers.
/// Returns how many nodes were removed.
pub fn fold_constants(model: &mut Model) -> Result<usize, GraphError> {
    let order = model.topological_order()?;
    let g = model.graph();
    let graph_inputs: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
    let graph_outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut constant: HashSet<String> = g
        .initializer
        .iter()
        .filter(|t| !graph_inputs.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    let mut foldable = vec![false; g.node.len()];
    for &i in &order {
        let n = &g.node[i];
        let ok = (n.domain.is_empty() || n.domain == "ai.onnx")
            && !NON_FOLDABLE.contains(&n.op_type.as_str())
            && n.attribute
                .iter()
                .all(|a| a.g.is_none() && a.graphs.is_empty())
            && n.input.iter().all(|x| x.is_empty() || constant.contains(x))
            && !n.output.iter().any(|o| graph_outputs.contains(o.as_str()));
        if ok {
            foldable[i] = true;
            constant.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    if !foldable.iter().any(|f| *f) {
        return Ok(0);
    }
    // Tensors computed by folded nodes and read by the rest of the graph.
    let mut boundary: Vec<String> = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if foldable[i] {
            continue;
        }
        for x in &n.input {
            let produced = g
                .node
                .iter()
                .enumerate()
                .any(|(j, m)| foldable[j] && m.output.contains(x));
            if produced && !boundary.contains(x) {
                boundary.push(x.clone());
            }
        }
    }
    let mut sub = model.clone();
    {
        let sg = sub.graph_mut();
        let mut k = foldable.iter();
        sg.node.retain(|_| *k.next().unwrap_or(&false));
        sg.input.clear();
        sg.output.clear();
        sg.value_info.clear();
    }
    let values = if boundary.is_empty() {
        Default::default()
    } else {
        sub.set_outputs(&boundary)?;
        sub.remove_dead_nodes();
        let config = SessionConfig {
            optimize: false,
            intra_threads: 1,
        };
        Runner::new(&sub, "constant folding", &config)?.run(&[])?
    };
    let removed = foldable.iter().filter(|f| **f).count();
    let g = model.graph_mut();
    let mut k = foldable.iter();
    g.node.retain(|_| !*k.next().unwrap_or(&false));
    for name in &boundary {
        let value = values.get(name).ok_or_else(|| {
            GraphError::runtime("constant folding", format!("no value for '{name}'"))
        })?;
        model.set_initializer(name, value);
    }
    model.remove_dead_nodes();
    Ok(removed)
}
