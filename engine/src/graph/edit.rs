//! Editing a graph: producers and consumers, topological order, adding/replacing/removing
//! nodes, choosing outputs, and dead-node removal.

use super::proto::{GraphProto, NodeProto, ValueInfoProto};
use super::{GraphError, Model};
use std::collections::{HashMap, HashSet};

/// A node's name for messages: its name, or its position and op when it has none.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index} ({})", node.op_type)
    } else {
        node.name.clone()
    }
}

/// Names a node reads from enclosing scopes inside its subgraphs (If/Loop/Scan bodies).
fn subgraph_reads(node: &NodeProto) -> Vec<String> {
    fn walk(g: &GraphProto, out: &mut Vec<String>) {
        for n in &g.node {
            out.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
            for a in &n.attribute {
                if let Some(sub) = &a.g {
                    walk(sub, out);
                }
                for sub in &a.graphs {
                    walk(sub, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    for a in &node.attribute {
        if let Some(g) = &a.g {
            walk(g, &mut out);
        }
        for g in &a.graphs {
            walk(g, &mut out);
        }
    }
    out
}

impl Model {
    /// Tensor name → index of the node producing it.
    pub fn producers(&self) -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for (i, n) in self.graph().node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                map.insert(o.clone(), i);
            }
        }
        map
    }

    /// Tensor name → indices of the nodes reading it.
    pub fn consumers(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in self.graph().node.iter().enumerate() {
            for name in n.input.iter().filter(|s| !s.is_empty()) {
                map.entry(name.clone()).or_default().push(i);
            }
        }
        map
    }

    /// Graph input names (without the initializers some old exporters also list as inputs).
    pub fn input_names(&self) -> Vec<String> {
        let g = self.graph();
        let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        g.input
            .iter()
            .filter(|i| !inits.contains(i.name.as_str()))
            .map(|i| i.name.clone())
            .collect()
    }

    /// The declared dims of graph input `name`: `Some(n)` for a fixed size, `None` for a
    /// symbolic or unknown one. None when there is no such tensor input.
    pub fn input_dims(&self, name: &str) -> Option<Vec<Option<usize>>> {
        use super::proto::{tensor_shape_proto::dimension::Value, type_proto};
        let input = self.graph().input.iter().find(|i| i.name == name)?;
        let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref()?.value.as_ref() else {
            return None;
        };
        Some(
            t.shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect(),
        )
    }

    pub fn output_names(&self) -> Vec<String> {
        self.graph().output.iter().map(|o| o.name.clone()).collect()
    }

    /// Node indices in an order where every node comes after the producers of its inputs
    /// (stable: nodes already in order keep their relative order).
    pub fn topological_order(&self) -> Result<Vec<usize>, GraphError> {
        let g = self.graph();
        let mut available: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
        available.extend(g.initializer.iter().map(|t| t.name.as_str()));
        available.insert("");
        let producers = self.producers();
        let mut waiting: Vec<usize> = vec![0; g.node.len()];
        let mut dependents: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            let mut seen = HashSet::new();
            let reads = n.input.iter().cloned().chain(subgraph_reads(n));
            for name in reads {
                if available.contains(name.as_str()) || !producers.contains_key(&name) {
                    continue; // graph input, initializer, or (in subgraphs) a local name
                }
                if seen.insert(name.clone()) {
                    waiting[i] += 1;
                    dependents.entry(name).or_default().push(i);
                }
            }
        }
        // Ready nodes are taken in their original order (a min-heap over indices).
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| std::cmp::Reverse(i))
            .collect();
        let mut order = Vec::with_capacity(g.node.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for o in &g.node[i].output {
                if let Some(ds) = dependents.get(o) {
                    for &d in ds {
                        waiting[d] -= 1;
                        if waiting[d] == 0 {
                            ready.push(std::cmp::Reverse(d));
                        }
                    }
                }
            }
        }
        if order.len() != g.node.len() {
            let done: HashSet<usize> = order.iter().copied().collect();
            let stuck = (0..g.node.len()).find(|i| !done.contains(i)).unwrap_or(0);
            let n = &g.node[stuck];
            return Err(GraphError::NotADag {
                node: node_label(n, stuck),
                op: n.op_type.clone(),
                input: n.input.first().cloned().unwrap_or_default(),
            });
        }
        // Inputs nobody produces (and that are not graph inputs or initializers) are an error too.
        for (i, n) in g.node.iter().enumerate() {
            if let Some(bad) = n
                .input
                .iter()
                .find(|s| !available.contains(s.as_str()) && !producers.contains_key(*s))
            {
                return Err(GraphError::NotADag {
                    node: node_label(n, i),
                    op: n.op_type.clone(),
                    input: bad.clone(),
                });
            }
        }
        Ok(order)
    }

    /// Reorders the nodes topologically (ONNX requires it of saved models).
    pub fn sort_topologically(&mut self) -> Result<(), GraphError> {
        let order = self.topological_order()?;
        let g = self.graph_mut();
        let mut old: Vec<Option<NodeProto>> =
            std::mem::take(&mut g.node).into_iter().map(Some).collect();
        g.node = order.into_iter().filter_map(|i| old[i].take()).collect();
        Ok(())
    }

    /// Appends a node; returns its index.
    pub fn add_node(&mut self, node: NodeProto) -> usize {
        let g = self.graph_mut();
        g.node.push(node);
        g.node.len() - 1
    }

    /// Replaces node `index`; returns the old node.
    pub fn replace_node(&mut self, index: usize, node: NodeProto) -> Result<NodeProto, GraphError> {
        let slot = self
            .graph_mut()
            .node
            .get_mut(index)
            .ok_or(GraphError::UnknownNode(index))?;
        Ok(std::mem::replace(slot, node))
    }

    /// Removes node `index` (later indices shift down by one); returns it.
    pub fn remove_node(&mut self, index: usize) -> Result<NodeProto, GraphError> {
        let g = self.graph_mut();
        if index >= g.node.len() {
            return Err(GraphError::UnknownNode(index));
        }
        Ok(g.node.remove(index))
    }

    /// The index of the node with this name.
    pub fn find_node(&self, name: &str) -> Option<usize> {
        self.graph().node.iter().position(|n| n.name == name)
    }

    /// Makes tensors graph outputs (intermediates included) so a session returns them. Their
    /// types are left for ONNX Runtime to infer.
    pub fn expose_outputs<S: AsRef<str>>(&mut self, names: &[S]) -> Result<(), GraphError> {
        let known = self.tensor_names();
        let g = self.graph_mut();
        for name in names {
            let name = name.as_ref();
            if !known.contains(name) {
                return Err(GraphError::UnknownTensor(name.to_string()));
            }
            if !g.output.iter().any(|o| o.name == name) {
                g.output.push(ValueInfoProto {
                    name: name.to_string(),
                    ..Default::default()
                });
            }
        }
        Ok(())
    }

    /// Replaces the graph outputs by these tensors (keeping the type info of old ones).
    pub fn set_outputs<S: AsRef<str>>(&mut self, names: &[S]) -> Result<(), GraphError> {
        let old = std::mem::take(&mut self.graph_mut().output);
        let result = self.expose_outputs(names);
        if result.is_err() {
            self.graph_mut().output = old;
            return result;
        }
        for o in &mut self.graph_mut().output {
            if let Some(prev) = old.iter().find(|p| p.name == o.name) {
                *o = prev.clone();
            }
        }
        Ok(())
    }

    /// How often each op occurs ("domain.Op" outside the default domain), for `lumen info`.
    pub fn op_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for n in &self.graph().node {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    /// Every tensor name: graph inputs, initializers and node outputs.
    pub fn tensor_names(&self) -> HashSet<String> {
        let g = self.graph();
        let mut names: HashSet<String> = g.input.iter().map(|i| i.name.clone()).collect();
        names.extend(g.initializer.iter().map(|t| t.name.clone()));
        for n in &g.node {
            names.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        names
    }

    /// Removes nodes whose outputs no graph output needs, then initializers and value infos
    /// nothing reads. Returns how many nodes went.
    pub fn remove_dead_nodes(&mut self) -> usize {
        let g = self.graph();
        let mut live: HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
        let mut keep = vec![false; g.node.len()];
        // Walk backwards repeatedly; one pass suffices for topologically sorted graphs.
        loop {
            let mut changed = false;
            for (i, n) in g.node.iter().enumerate().rev() {
                if keep[i] || !n.output.iter().any(|o| live.contains(o)) {
                    continue;
                }
                keep[i] = true;
                changed = true;
                live.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
                live.extend(subgraph_reads(n));
            }
            if !changed {
                break;
            }
        }
        let removed = keep.iter().filter(|k| !**k).count();
        let graph_inputs: HashSet<String> = g.input.iter().map(|i| i.name.clone()).collect();
        let g = self.graph_mut();
        let mut k = keep.into_iter();
        g.node.retain(|_| k.next().unwrap_or(true));
        g.initializer
            .retain(|t| live.contains(&t.name) || graph_inputs.contains(&t.name));
        g.value_info.retain(|v| live.contains(&v.name));
        removed
    }
}
