//! `lumen info MODEL`: the manifest and the sessions' tensor interface.

use anyhow::Context;
use lumen_engine::model::SamModel;
use lumen_engine::runtime::SessionConfig;
use std::path::Path;

pub fn run(model_dir: &Path) -> anyhow::Result<()> {
    let model = SamModel::load(model_dir, &SessionConfig::default())
        .with_context(|| format!("cannot open model bundle {}", model_dir.display()))?;
    let bundle = model.bundle();
    let manifest = &bundle.manifest;
    outln!("model      {} ({})", manifest.name, bundle.dir.display())?;
    if !manifest.description.is_empty() {
        outln!("about      {}", manifest.description)?;
    }
    outln!(
        "input      {0}×{0}, low-res masks {1:?}",
        manifest.input_size,
        model.low_res_size()
    )?;
    outln!(
        "normalize  mean {:?} std {:?}",
        manifest.normalize.mean,
        manifest.normalize.std
    )?;
    outln!(
        "intensity  CT {:?}; MR {:?}",
        manifest.intensity.ct,
        manifest.intensity.mr
    )?;
    outln!(
        "precision  {} {}",
        manifest.precision.kind,
        toml_line(&manifest.precision.details)
    )?;
    outln!("size       {:.1} MB", bundle.size_bytes() as f64 / 1e6)?;
    for (role, entry) in manifest.files.entries() {
        outln!(
            "{role:<13} {} sha256 {} (verified)",
            entry.path,
            entry.sha256
        )?;
    }
    for (role, path) in [
        ("encoder", Some(&bundle.encoder_path)),
        ("decoder", Some(&bundle.decoder_path)),
        ("click decoder", bundle.click_decoder_path.as_ref()),
    ] {
        if let Some(path) = path {
            print_ops(role, path)?;
        }
    }
    for (section, table) in [
        ("provenance", &manifest.provenance),
        ("accuracy", &manifest.accuracy),
    ] {
        for (key, value) in table {
            outln!("{section:<10} {key} = {value}")?;
        }
    }
    Ok(())
}

fn toml_line(details: &std::collections::BTreeMap<String, impl std::fmt::Display>) -> String {
    details
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The operators of one ONNX file, and those the gradient builder cannot differentiate yet.
fn print_ops(role: &str, path: &Path) -> anyhow::Result<()> {
    let graph = lumen_engine::graph::Model::load(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let ops: Vec<String> = graph
        .op_counts()
        .iter()
        .map(|(op, n)| format!("{op}×{n}"))
        .collect();
    outln!("{role:<10} ops: {}", ops.join(" "))?;
    let unsupported = lumen_engine::grad::unsupported_nodes(&graph);
    // Grouped by op with one example node: a quantized graph has hundreds of Q/DQ nodes.
    let mut by_op: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
    for (node, op) in &unsupported {
        by_op.entry(op.as_str()).or_insert((0, node.as_str())).0 += 1;
    }
    if !by_op.is_empty() {
        let named: Vec<String> = by_op
            .iter()
            .map(|(op, (n, node))| format!("{op}×{n} (e.g. node {node})"))
            .collect();
        outln!("{role:<10} no gradient rule yet: {}", named.join(", "))?;
    }
    Ok(())
}
