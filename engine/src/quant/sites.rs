//! Where a graph is quantized: linear layers with constant weights (MatMul, Gemm, Conv,
//! ConvTranspose), their activation inputs, activation × activation MatMuls (attention), and
//! which activations come straight from a LayerNorm (the ones RepQ reparameterizes).

use crate::graph::{Model, NodeAttrs, Shapes};
use std::collections::{HashMap, HashSet};

/// How an activation tensor is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActKind {
    /// Uniform asymmetric, one range per tensor.
    Uniform,
    /// Probabilities out of a Softmax: the log-√2 quantizer.
    Softmax,
}

/// A constant weight input and the axis of its output channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightRef {
    pub initializer: String,
    pub channel_axis: usize,
}

/// One node whose inputs are quantized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub node: usize,
    pub op: String,
    pub weight: Option<WeightRef>,
    /// (input index, tensor, kind) of each quantized activation input.
    pub activations: Vec<(usize, String, ActKind)>,
    /// A dense convolution's output: quantized as well at W8A8, so that ONNX Runtime runs the
    /// layer as an integer convolution (QLinearConv wants a quantized output).
    pub output: Option<String>,
}

/// A LayerNorm whose output reaches only linear layers, through ops that keep the channel as
/// the last axis: its output can be reparameterized into per-tensor-friendly form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNormGroup {
    /// The LayerNormalization node index.
    pub norm: usize,
    pub channels: usize,
    /// The tensor calibrated per channel (the linear layers' input; same values as the norm's
    /// output, possibly reshaped).
    pub activations: Vec<String>,
    /// (MatMul node index, its bias initializer) of each linear layer fed.
    pub linears: Vec<(usize, String)>,
}

/// Everything the quantizer touches in one graph.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    pub sites: Vec<Site>,
    pub layer_norms: Vec<LayerNormGroup>,
}

impl Sites {
    /// The dense convolutions' outputs (see `Site::output`).
    pub fn conv_outputs(&self) -> Vec<String> {
        self.sites.iter().filter_map(|s| s.output.clone()).collect()
    }

    /// Every distinct activation tensor and its kind.
    pub fn activation_tensors(&self) -> Vec<(String, ActKind)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in &self.sites {
            for (_, t, k) in &s.activations {
                if seen.insert(t.clone()) {
                    out.push((t.clone(), *k));
                }
            }
        }
        out
    }

    /// The group whose per-channel activations include `tensor`.
    pub fn layer_norm_of(&self, tensor: &str) -> Option<&LayerNormGroup> {
        self.layer_norms
            .iter()
            .find(|g| g.activations.iter().any(|a| a == tensor))
    }
}

/// Finds the quantization sites of `model`. `shapes` (from `Shapes::probe`) tells which
/// reshapes keep the channel axis last.
pub fn find_sites(model: &Model, shapes: &Shapes) -> Sites {
    let g = model.graph();
    let producers = model.producers();
    let is_const = |name: &str| model.has_initializer(name);
    let producer_op = |name: &str| producers.get(name).map(|&i| g.node[i].op_type.as_str());
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let consumers = model.consumers();
    // A convolution output read by pointwise ops only (activations, residual adds, convs). One
    // read by a normalization or a reshape into tokens keeps float values: quantizing the
    // starter's neck and patch embedding there cost more accuracy than integer kernels gain.
    let feeds_only_pointwise = |t: &str| {
        !outputs.contains(t)
            && consumers.get(t).is_some_and(|users| {
                users
                    .iter()
                    .all(|&u| POINTWISE_OR_CONV.contains(&g.node[u].op_type.as_str()))
            })
    };

    let mut sites = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let x = n.input.first().cloned().unwrap_or_default();
        let w = n.input.get(1).cloned().unwrap_or_default();
        let rank = |t: &str| shapes.get(t).map_or(0, |s| s.shape.len());
        let weight = match n.op_type.as_str() {
            "MatMul" if is_const(&w) && rank(&w) == 2 => Some(1),
            "Gemm" if is_const(&w) => Some(if n.attr_int("transB", 0) == 1 { 0 } else { 1 }),
            "Conv" if is_const(&w) => Some(0),
            "ConvTranspose" if is_const(&w) && n.attr_int("group", 1) == 1 => Some(1),
            _ => None,
        };
        if let Some(axis) = weight {
            if n.op_type == "Gemm" && n.attr_int("transA", 0) == 1 {
                continue;
            }
            let conv = n.op_type == "Conv";
            let depthwise = conv && is_depthwise(n, shapes);
            let out = n.output[0].clone();
            sites.push(Site {
                node: i,
                op: n.op_type.clone(),
                weight: Some(WeightRef {
                    initializer: w,
                    channel_axis: axis,
                }),
                // A depthwise convolution's input keeps its float values: its channels' ranges
                // differ by orders of magnitude (TinyViT's MBConv: 0.15 to 14 after GELU), which
                // one per-tensor quantizer cannot serve, and an integer kernel wants exactly one.
                activations: if is_const(&x) || depthwise {
                    vec![]
                } else {
                    vec![(0, x, ActKind::Uniform)]
                },
                output: (conv && !depthwise && feeds_only_pointwise(&out)).then_some(out),
            });
        } else if n.op_type == "MatMul" && !is_const(&x) && !is_const(&w) {
            let kind = |t: &str| {
                if producer_op(t) == Some("Softmax") {
                    ActKind::Softmax
                } else {
                    ActKind::Uniform
                }
            };
            sites.push(Site {
                node: i,
                op: n.op_type.clone(),
                weight: None,
                activations: vec![(0, x.clone(), kind(&x)), (1, w.clone(), kind(&w))],
                output: None,
            });
        }
    }
    let layer_norms = find_layer_norm_groups(model, shapes, &sites);
    Sites { sites, layer_norms }
}

/// Consumers through which a quantized convolution output stays cheap and harmless.
const POINTWISE_OR_CONV: [&str; 12] = [
    "Conv",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Erf",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "Gelu",
    "HardSwish",
];

/// Ops between a LayerNorm and its linear layers that move tokens but never mix channels,
/// provided the channel stays the last axis (checked on the probed shapes).
const TOKEN_MOVES: [&str; 4] = ["Reshape", "Transpose", "Identity", "Flatten"];

fn find_layer_norm_groups(model: &Model, shapes: &Shapes, sites: &[Site]) -> Vec<LayerNormGroup> {
    let g = model.graph();
    let consumers = model.consumers();
    let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let linear_sites: HashMap<usize, &Site> = sites
        .iter()
        .filter(|s| s.op == "MatMul" && s.weight.is_some())
        .map(|s| (s.node, s))
        .collect();
    let last_dim = |t: &str| shapes.get(t).and_then(|s| s.shape.last().copied());
    let mut groups = Vec::new();
    'norms: for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "LayerNormalization" || n.attr_int("axis", -1) != -1 {
            continue;
        }
        let (Some(out), Some(gamma), Some(beta)) =
            (n.output.first(), n.input.get(1), n.input.get(2))
        else {
            continue;
        };
        if !model.has_initializer(gamma) || !model.has_initializer(beta) {
            continue;
        }
        let Some(channels) = last_dim(out) else {
            continue;
        };
        let mut group = LayerNormGroup {
            norm: i,
            channels: channels as usize,
            activations: vec![],
            linears: vec![],
        };
        let mut stack = vec![out.clone()];
        while let Some(t) = stack.pop() {
            if outputs.contains(t.as_str()) || last_dim(&t) != Some(channels) {
                continue 'norms;
            }
            for &c in consumers.get(&t).map(Vec::as_slice).unwrap_or(&[]) {
                let node = &g.node[c];
                if node.op_type == "Shape" {
                    continue; // reads the shape only, which reparameterization keeps
                }
                if let Some(site) = linear_sites.get(&c).filter(|_| node.input[0] == t) {
                    let Some(bias) = bias_of(model, &consumers, site.node) else {
                        continue 'norms;
                    };
                    group.activations.push(t.clone());
                    group.linears.push((c, bias));
                } else if TOKEN_MOVES.contains(&node.op_type.as_str())
                    && node.input.first() == Some(&t)
                    && keeps_last_axis(node, shapes)
                {
                    stack.push(node.output[0].clone());
                } else {
                    continue 'norms;
                }
            }
        }
        if !group.linears.is_empty() {
            group.activations.sort();
            group.activations.dedup();
            groups.push(group);
        }
    }
    groups
}

/// A grouped convolution with one input channel per group (weight [C, 1, k, k]).
fn is_depthwise(node: &crate::graph::proto::NodeProto, shapes: &Shapes) -> bool {
    let weight_in = shapes
        .get(&node.input[1])
        .and_then(|s| s.shape.get(1).copied());
    node.attr_int("group", 1) > 1 && weight_in == Some(1)
}

fn keeps_last_axis(node: &crate::graph::proto::NodeProto, shapes: &Shapes) -> bool {
    if node.op_type == "Transpose" {
        let rank = shapes
            .get(&node.input[0])
            .map_or(0, |s| s.shape.len() as i64);
        return node
            .attr_ints("perm")
            .is_some_and(|p| p.last() == Some(&(rank - 1)));
    }
    // Reshape/Flatten keep a channel's identity when the last dim is unchanged (row-major).
    let last = |t: &str| shapes.get(t).and_then(|s| s.shape.last().copied());
    last(&node.input[0]).is_some() && last(&node.input[0]) == last(&node.output[0])
}

/// The constant bias added right after MatMul node `matmul` (its only consumer), if any.
pub(crate) fn bias_of(
    model: &Model,
    consumers: &HashMap<String, Vec<usize>>,
    matmul: usize,
) -> Option<String> {
    let g = model.graph();
    let out = &g.node[matmul].output[0];
    let users = consumers.get(out)?;
    let [add] = users.as_slice() else {
        return None;
    };
    let add = &g.node[*add];
    if add.op_type != "Add" {
        return None;
    }
    add.input
        .iter()
        .find(|t| *t != out && model.has_initializer(t))
        .filter(|t| model.initializer(t).is_ok_and(|b| b.shape().len() == 1))
        .cloned()
}
