//! Joining two models into one graph (encoder → decoder, model → loss), so one session runs
//! both and gradients flow through the joint.

use super::proto::{GraphProto, NodeProto};
use super::{GraphError, Model};
use std::collections::{HashMap, HashSet};

/// Appends `second` to `first`: each `(first_tensor, second_input)` wire feeds a tensor of
/// `first` into an input of `second`. Every other name of `second` gets `prefix`, so the two
/// exports cannot collide. The outputs are `first`'s followed by `second`'s (prefixed).
pub fn compose(
    first: &Model,
    second: &Model,
    wires: &[(&str, &str)],
    prefix: &str,
) -> Result<Model, GraphError> {
    let (o1, o2) = (first.opset(), second.opset());
    if o1 != o2 {
        return Err(GraphError::Decode {
            what: "composed model".into(),
            reason: format!("the models import different opsets ({o1} and {o2})"),
        });
    }
    let known = first.tensor_names();
    let mut rename: HashMap<String, String> = HashMap::new();
    for (from, to) in wires {
        if !known.contains(*from) {
            return Err(GraphError::UnknownTensor((*from).to_string()));
        }
        if !second.graph().input.iter().any(|i| i.name == *to) {
            return Err(GraphError::UnknownTensor((*to).to_string()));
        }
        rename.insert((*to).to_string(), (*from).to_string());
    }
    let name = |n: &str, rename: &HashMap<String, String>| -> String {
        if n.is_empty() {
            String::new()
        } else {
            rename
                .get(n)
                .cloned()
                .unwrap_or_else(|| format!("{prefix}{n}"))
        }
    };
    let g2: &GraphProto = second.graph();
    let mut out = first.clone();
    let wired: HashSet<&str> = wires.iter().map(|(_, to)| *to).collect();
    let g = out.graph_mut();
    for i in g2.input.iter().filter(|i| !wired.contains(i.name.as_str())) {
        let mut i = i.clone();
        i.name = name(&i.name, &rename);
        g.input.push(i);
    }
    for t in &g2.initializer {
        let mut t = t.clone();
        t.name = name(&t.name, &rename);
        g.initializer.push(t);
    }
    for n in &g2.node {
        let node = NodeProto {
            name: if n.name.is_empty() {
                String::new()
            } else {
                format!("{prefix}{}", n.name)
            },
            input: n.input.iter().map(|x| name(x, &rename)).collect(),
            output: n.output.iter().map(|x| name(x, &rename)).collect(),
            ..n.clone()
        };
        if node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
        {
            return Err(GraphError::Decode {
                what: "composed model".into(),
                reason: format!(
                    "node '{}' has subgraphs, which compose does not rename",
                    n.name
                ),
            });
        }
        g.node.push(node);
    }
    for v in &g2.output {
        let mut v = v.clone();
        v.name = name(&v.name, &rename);
        if !g.output.iter().any(|o| o.name == v.name) {
            g.output.push(v);
        }
    }
    for v in &g2.value_info {
        let mut v = v.clone();
        v.name = name(&v.name, &rename);
        g.value_info.push(v);
    }
    out.proto.ir_version = first.proto.ir_version.max(second.proto.ir_version);
    Ok(out)
}
