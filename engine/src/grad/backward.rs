//! The driver: finds the nodes between the inputs and the output, walks them in reverse
//! topological order applying each op's rule, and accumulates gradients.

use super::GradError;
use super::ctx::Ctx;
use super::rules::{self, NON_DIFFERENTIABLE_OPS};
use crate::graph::proto::{NodeProto, dtype};
use crate::graph::{Builder, Model, Shapes, TensorData, fold_shapes, node_label};
use std::collections::{HashMap, HashSet};

/// What to differentiate.
#[derive(Debug, Clone, Default)]
pub struct GradRequest {
    /// The scalar (one element) to differentiate.
    pub output: String,
    /// Graph inputs (or initializers) to differentiate with respect to.
    pub wrt: Vec<String>,
    /// Other tensors to keep as outputs of the gradient model (e.g. masks for logging).
    pub keep: Vec<String>,
}

/// A model computing the output and its gradients.
#[derive(Debug, Clone)]
pub struct Gradient {
    pub model: Model,
    /// Name of the scalar output.
    pub output: String,
    /// (tensor differentiated with respect to, name of its gradient output), in request order.
    pub gradients: Vec<(String, String)>,
}

impl Gradient {
    /// The output name holding the gradient with respect to `wrt`.
    pub fn gradient_of(&self, wrt: &str) -> Option<&str> {
        self.gradients
            .iter()
            .find(|(w, _)| w == wrt)
            .map(|(_, g)| g.as_str())
    }
}

/// Nodes that would fail to differentiate if they were on a gradient path: (node, op).
pub fn unsupported_nodes(model: &Model) -> Vec<(String, String)> {
    model
        .graph()
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            let default = n.domain.is_empty() || n.domain == "ai.onnx";
            !(default
                && (rules::is_supported(&n.op_type)
                    || NON_DIFFERENTIABLE_OPS.contains(&n.op_type.as_str())))
        })
        .map(|(i, n)| (node_label(n, i), n.op_type.clone()))
        .collect()
}

/// Builds the gradient model. `shapes` must come from `Shapes::probe` on this model.
pub fn build_gradient(
    model: &Model,
    request: &GradRequest,
    shapes: &Shapes,
) -> Result<Gradient, GradError> {
    let opset = model.opset();
    if opset < 13 {
        return Err(GradError::OldOpset(opset));
    }
    let info = |name: &str| {
        shapes
            .get(name)
            .ok_or_else(|| GradError::NoShape(name.to_string()))
    };
    let out_info = info(&request.output)?;
    if out_info.shape.iter().product::<i64>() != 1 {
        return Err(GradError::NotScalar {
            name: request.output.clone(),
            shape: out_info.shape.clone(),
        });
    }
    let m = prepared(model, request, shapes)?;
    let nodes = m.graph().node.clone();

    let (active, needed, path) = differentiable_path(&nodes, request, shapes);

    let mut b = Builder::from_model(m);
    b.set_prefix("grad/");
    let mut grads: HashMap<String, Vec<String>> = HashMap::new();
    if active.contains(&request.output) {
        let ones = TensorData::float(
            out_info.dtype,
            &out_info
                .shape
                .iter()
                .map(|&d| d as usize)
                .collect::<Vec<_>>(),
            vec![1.0],
        )?;
        let seed = b.constant("seed", &ones);
        grads.insert(request.output.clone(), vec![seed]);
    }
    for &i in &path {
        let node = &nodes[i];
        let gy: Vec<Option<String>> = node
            .output
            .iter()
            .map(|o| accumulate(&mut b, grads.remove(o).unwrap_or_default()))
            .collect();
        if gy.iter().all(Option::is_none) {
            continue;
        }
        let need: Vec<bool> = node
            .input
            .iter()
            .map(|x| !x.is_empty() && active.contains(x) && needed.contains(x))
            .collect();
        let mut ctx = Ctx {
            b: &mut b,
            shapes,
            node,
            label: node_label(node, i),
            opset,
        };
        let gx = rules::vjp(&mut ctx, &gy, &need)?;
        for (x, g) in node.input.iter().zip(gx) {
            if let Some(g) = g {
                grads.entry(x.clone()).or_default().push(g);
            }
        }
    }

    let mut outputs = vec![request.output.clone()];
    let mut gradients = Vec::new();
    for w in &request.wrt {
        let total = match accumulate(&mut b, grads.remove(w).unwrap_or_default()) {
            Some(g) => g,
            // Not connected to the output: the gradient is zero.
            None => {
                let wi = info(w)?;
                let zeros = TensorData::float(
                    wi.dtype,
                    &wi.shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
                    vec![0.0; wi.shape.iter().product::<i64>().max(0) as usize],
                )?;
                b.constant("zero_grad", &zeros)
            }
        };
        let mut name = format!("{w}_grad");
        while !b.claim(&name) {
            name.push('_');
        }
        b.node("Identity", &[total.as_str()], &[name.as_str()], vec![]);
        outputs.push(name.clone());
        gradients.push((w.clone(), name));
    }
    outputs.extend(request.keep.iter().cloned());
    let mut model = b.finish();
    model.set_outputs(&outputs)?;
    model.remove_dead_nodes();
    Ok(Gradient {
        model,
        output: request.output.clone(),
        gradients,
    })
}

/// `model` ready to differentiate: every requested tensor checked to exist, the initializers
/// differentiated with respect to made (overridable) graph inputs, which also keeps constant
/// folding away from them, shape arithmetic folded so rules can read axes, pads and targets,
/// nodes in topological order.
fn prepared(model: &Model, request: &GradRequest, shapes: &Shapes) -> Result<Model, GradError> {
    let info = |name: &str| {
        shapes
            .get(name)
            .ok_or_else(|| GradError::NoShape(name.to_string()))
    };
    let mut m = model.clone();
    let known = m.tensor_names();
    for name in request
        .wrt
        .iter()
        .chain([&request.output])
        .chain(&request.keep)
    {
        if !known.contains(name) {
            return Err(GradError::UnknownTensor(name.clone()));
        }
    }
    for w in &request.wrt {
        let is_input = m.graph().input.iter().any(|i| &i.name == w);
        if !is_input && m.has_initializer(w) {
            let wi = info(w)?;
            let vi = crate::graph::value_info(w, wi.dtype, &wi.shape);
            m.graph_mut().input.push(vi);
        }
    }
    fold_shapes(&mut m, shapes)?;
    m.sort_topologically()?;
    Ok(m)
}

/// Which tensors carry gradient: `active` depend differentiably on a `wrt` tensor, `needed`
/// feed the output, and `path` lists the nodes to differentiate, output first.
fn differentiable_path(
    nodes: &[NodeProto],
    request: &GradRequest,
    shapes: &Shapes,
) -> (HashSet<String>, HashSet<String>, Vec<usize>) {
    let mut active: HashSet<String> = request.wrt.iter().cloned().collect();
    for n in nodes {
        if NON_DIFFERENTIABLE_OPS.contains(&n.op_type.as_str())
            || !n.input.iter().any(|x| active.contains(x))
        {
            continue;
        }
        for o in &n.output {
            if shapes.get(o).is_some_and(|i| dtype::is_float(i.dtype)) {
                active.insert(o.clone());
            }
        }
    }
    let mut needed: HashSet<String> = HashSet::from([request.output.clone()]);
    let mut path: Vec<usize> = Vec::new();
    for (i, n) in nodes.iter().enumerate().rev() {
        let feeds_output = n
            .output
            .iter()
            .any(|o| needed.contains(o) && active.contains(o));
        if !feeds_output {
            continue;
        }
        path.push(i);
        needed.extend(n.input.iter().filter(|x| active.contains(*x)).cloned());
    }
    (active, needed, path)
}

/// Sums several gradient contributions to one tensor.
fn accumulate(b: &mut Builder, parts: Vec<String>) -> Option<String> {
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(b.op("Sum", &parts, vec![])),
    }
}
