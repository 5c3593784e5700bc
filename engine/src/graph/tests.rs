//! Graph toolkit tests that run ONNX Runtime: round trips, editing, shapes, folding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::proto::dtype;
use super::*;
use ndarray::{ArrayD, IxDyn};

fn f32s(shape: &[usize], seed: u64) -> TensorData {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    TensorData::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

/// x[2,3,4] → MatMul(W) + b → Relu → Shape/Gather/Concat-computed Reshape → out, plus a dead branch.
fn small_model() -> Model {
    let mut b = Builder::new("small", 17);
    let x = b.input("x", dtype::FLOAT, &[2, 3, 4]);
    let w = b.constant("w", &f32s(&[4, 5], 1));
    let bias = b.constant("b", &f32s(&[5], 2));
    let mm = b.op("MatMul", &[&x, &w], vec![]);
    let add = b.op("Add", &[&mm, &bias], vec![]);
    let relu = b.op("Relu", &[&add], vec![]);
    let shape = b.op("Shape", &[&relu], vec![]);
    let zero = b.const_i64(&[0]);
    let batch = b.op("Gather", &[&shape, &zero], vec![attr::int("axis", 0)]);
    let minus1 = b.const_i64(&[-1]);
    let target = b.op("Concat", &[&batch, &minus1], vec![attr::int("axis", 0)]);
    let out = b.op("Reshape", &[&relu, &target], vec![]);
    let _dead = b.op("Sigmoid", &[&mm], vec![]);
    b.node("Identity", &[out.as_str()], &["out"], vec![]);
    b.output("out");
    b.finish()
}

fn run(model: &Model, x: &TensorData) -> std::collections::HashMap<String, TensorData> {
    let mut r = Runner::new(model, "test", &crate::runtime::SessionConfig::default()).unwrap();
    r.run(&[("x", x)]).unwrap()
}

#[test]
fn save_load_round_trip_keeps_outputs_inline_and_external() {
    let m = small_model();
    let x = f32s(&[2, 3, 4], 9);
    let want = run(&m, &x);
    let dir = tempfile::tempdir().unwrap();
    let inline = dir.path().join("inline.onnx");
    m.save(&inline).unwrap();
    let back = Model::load(&inline).unwrap();
    assert_eq!(back, m);
    assert_eq!(run(&back, &x), want);

    let ext = dir.path().join("ext.onnx");
    m.save_with_external_data(&ext, "ext.onnx.data", 16)
        .unwrap();
    let raw = Model::from_bytes(&std::fs::read(&ext).unwrap(), "ext").unwrap();
    assert!(raw.graph().initializer.iter().any(|t| t.data_location == 1));
    let back = Model::load(&ext).unwrap();
    assert_eq!(
        back.initializer("w_1").unwrap(),
        m.initializer("w_1").unwrap()
    );
    assert_eq!(run(&back, &x), want);
}

#[test]
fn bad_files_fail_with_the_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.onnx");
    let e = Model::load(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.onnx"), "{e}");
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff not protobuf").unwrap();
    let e = Model::load(&garbage).unwrap_err().to_string();
    assert!(
        e.contains("garbage.onnx") && e.contains("not a valid ONNX model"),
        "{e}"
    );
    // External data pointing outside the model folder is refused.
    let mut m = small_model();
    let t = &mut m.graph_mut().initializer[0];
    t.raw_data.clear();
    t.data_location = 1;
    t.external_data = vec![proto::StringStringEntryProto {
        key: "location".into(),
        value: "../secret".into(),
    }];
    let p = dir.path().join("evil.onnx");
    m.save(&p).unwrap();
    let e = Model::load(&p).unwrap_err().to_string();
    assert!(e.contains("relative to the model's folder"), "{e}");
}

#[test]
fn topological_sort_restores_a_shuffled_graph() {
    let m = small_model();
    let x = f32s(&[2, 3, 4], 3);
    let want = run(&m, &x);
    let mut shuffled = m.clone();
    shuffled.graph_mut().node.reverse();
    assert!(shuffled.topological_order().unwrap() != (0..m.graph().node.len()).collect::<Vec<_>>());
    shuffled.sort_topologically().unwrap();
    assert_eq!(run(&shuffled, &x), want);
    // A dangling input is reported with the node.
    let mut broken = m.clone();
    broken.graph_mut().node[0].input[0] = "ghost".into();
    let e = broken.topological_order().unwrap_err().to_string();
    assert!(e.contains("ghost"), "{e}");
}

#[test]
fn intermediates_can_be_exposed_and_nodes_edited() {
    let mut m = small_model();
    let relu = m
        .graph()
        .node
        .iter()
        .find(|n| n.op_type == "Relu")
        .unwrap()
        .output[0]
        .clone();
    m.expose_outputs(&[relu.as_str()]).unwrap();
    let x = f32s(&[2, 3, 4], 4);
    let out = run(&m, &x);
    let TensorData::F32(r) = &out[&relu] else {
        panic!()
    };
    assert!(r.iter().all(|&v| v >= 0.0));
    assert!(m.expose_outputs(&["nope"]).is_err());
    // Replace Relu by Sigmoid: outputs change and are in (0, 1).
    let i = m
        .graph()
        .node
        .iter()
        .position(|n| n.op_type == "Relu")
        .unwrap();
    let mut n = m.graph().node[i].clone();
    n.op_type = "Sigmoid".into();
    m.replace_node(i, n).unwrap();
    let TensorData::F32(s) = &run(&m, &x)[&relu] else {
        panic!()
    };
    assert!(s.iter().all(|&v| v > 0.0 && v < 1.0));
}

#[test]
fn dead_nodes_and_unused_initializers_go() {
    let mut m = small_model();
    let before = m.graph().node.len();
    assert_eq!(m.op_counts()["Sigmoid"], 1);
    assert_eq!(m.remove_dead_nodes(), 1);
    assert_eq!(m.graph().node.len(), before - 1);
    assert!(!m.graph().node.iter().any(|n| n.op_type == "Sigmoid"));
    // Cutting the output to the MatMul leaves only it and its weight.
    let mm = m.graph().node[0].output[0].clone();
    m.set_outputs(&[mm.as_str()]).unwrap();
    m.remove_dead_nodes();
    assert_eq!(m.graph().node.len(), 1);
    assert_eq!(m.graph().initializer.len(), 1);
}

#[test]
fn shapes_are_probed_for_every_tensor() {
    let m = small_model();
    let x = f32s(&[2, 3, 4], 5);
    let shapes = Shapes::probe(&m, &[("x", &x)]).unwrap();
    assert_eq!(shapes.get("out").unwrap().shape, vec![2, 15]);
    assert_eq!(shapes.get("out").unwrap().dtype, dtype::FLOAT);
    let shape_node = m
        .graph()
        .node
        .iter()
        .find(|n| n.op_type == "Shape")
        .unwrap();
    let s = shapes.get(&shape_node.output[0]).unwrap();
    assert_eq!((s.shape.clone(), s.dtype), (vec![3], dtype::INT64));
    assert_eq!(shapes.get("w_1").unwrap().shape, vec![4, 5]);
    assert_eq!(
        Shapes::probe_in_chunks(&m, &[("x", &x)], 3).unwrap(),
        shapes
    );
}

#[test]
fn folding_turns_shape_arithmetic_into_constants() {
    let m = small_model();
    let x = f32s(&[2, 3, 4], 6);
    let want = run(&m, &x);
    let shapes = Shapes::probe(&m, &[("x", &x)]).unwrap();
    let mut folded = m.clone();
    let n = fold_shapes(&mut folded, &shapes).unwrap();
    assert!(n >= 3, "folded {n}");
    let ops: Vec<&str> = folded
        .graph()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(ops, ["MatMul", "Add", "Relu", "Reshape", "Identity"]);
    assert_eq!(run(&folded, &x)["out"], want["out"]);

    // Pure constants fold without shapes: Constant → Mul → Add(x).
    let mut b = Builder::new("c", 17);
    let x = b.input("x", dtype::FLOAT, &[3]);
    let c = b.op(
        "Constant",
        &[] as &[&str],
        vec![attr::tensor("value", &f32s(&[3], 1))],
    );
    let two = b.scalar(2.0, dtype::FLOAT);
    let c2 = b.op("Mul", &[&c, &two], vec![]);
    let y = b.op("Add", &[&x, &c2], vec![]);
    b.output(&y);
    let mut m = b.finish();
    let xv = f32s(&[3], 2);
    let want = run(&m, &xv);
    assert_eq!(fold_constants(&mut m).unwrap(), 2);
    assert_eq!(m.graph().node.len(), 1);
    assert_eq!(run(&m, &xv)[&y], want[&y]);
}

#[test]
fn compose_wires_one_model_into_another() {
    // second(y) = Sigmoid(y) + 1, fed by small_model's "out"; its names get a prefix.
    let mut b = Builder::new("head", 17);
    b.input("out", dtype::FLOAT, &[2, 15]);
    let s = b.op("Sigmoid", &["out"], vec![]);
    let one = b.scalar(1.0, dtype::FLOAT);
    b.node(
        "Add",
        &[s.as_str(), one.as_str()],
        &["out"] as &[&str],
        vec![],
    );
    // The head's output is also called "out": the prefix keeps the two apart.
    let mut head = b.finish();
    head.graph_mut().node[1].output[0] = "y".into();
    head.graph_mut()
        .output
        .push(value_info("y", dtype::FLOAT, &[2, 15]));
    let first = small_model();
    let joint = compose(&first, &head, &[("out", "out")], "head/").unwrap();
    assert_eq!(joint.output_names(), ["out", "head/y"]);
    let x = f32s(&[2, 3, 4], 8);
    let out = run(&joint, &x);
    let (TensorData::F32(a), TensorData::F32(y)) = (&out["out"], &out["head/y"]) else {
        panic!()
    };
    for (a, y) in a.iter().zip(y) {
        assert!((1.0 / (1.0 + (-a).exp()) + 1.0 - y).abs() < 1e-6);
    }
    assert!(compose(&first, &head, &[("nope", "out")], "h/").is_err());
    let mut other = head.clone();
    other.proto.opset_import[0].version = 13;
    let e = compose(&first, &other, &[("out", "out")], "h/")
        .unwrap_err()
        .to_string();
    assert!(e.contains("different opsets"), "{e}");
}
