//! Quantization tests that run ONNX Runtime: emitted graphs against the Rust quantizers, and
//! RepQ reparameterization on the starter encoder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::graph::proto::dtype;
use crate::graph::{Builder, NodeAttrs, Runner, attr};
use ndarray::{Array2, ArrayD, Ix2, IxDyn};
use std::path::PathBuf;

fn noise(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005) | 1;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// x[1,6,16] → MatMul(W[16,8]) + b → out.
fn linear_model(seed: u64) -> Model {
    let mut b = Builder::new("linear", 17);
    let x = b.input("x", dtype::FLOAT, &[1, 6, 16]);
    let w = b.constant("w", &TensorData::F32(noise(&[16, 8], seed)));
    let bias = b.constant("b", &TensorData::F32(noise(&[8], seed + 1)));
    let mm = b.op("MatMul", &[&x, &w], vec![]);
    b.node("Add", &[mm.as_str(), bias.as_str()], &["out"], vec![]);
    b.output("out");
    b.finish()
}

/// Graph optimizations off: at full optimization ONNX Runtime turns DequantizeLinear + MatMul
/// into MatMulNBits, which also quantizes the float activation (accuracy level 4), so only the
/// unoptimized graph equals the quantizers exactly.
fn exact() -> SessionConfig {
    SessionConfig {
        optimize: false,
        ..SessionConfig::default()
    }
}

fn run(model: &Model, x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut r = Runner::new(model, "test", &exact()).unwrap();
    let x = TensorData::F32(x.clone());
    match r.run(&[("x", &x)]).unwrap().remove("out").unwrap() {
        TensorData::F32(a) => a,
        _ => panic!("float output expected"),
    }
}

fn inputs(x: &ArrayD<f32>) -> Vec<Vec<(String, TensorData)>> {
    vec![vec![("x".to_string(), TensorData::F32(x.clone()))]]
}

/// `quantize_graph` without reparameterization, progress or cancel.
fn quantize(
    model: &Model,
    feeds: &[Vec<(String, TensorData)>],
    bits: GraphBits,
) -> (Model, GraphSummary) {
    quantize_graph(
        model,
        feeds,
        bits,
        false,
        0.0,
        &SessionConfig::default(),
        &mut |_, _, _| true,
    )
    .unwrap()
}

/// What the quantized linear layer must compute: fake(x)·fake(W) + b.
fn reference(
    model: &Model,
    x: &ArrayD<f32>,
    bits: GraphBits,
    act: Option<&ActQuant>,
) -> ArrayD<f32> {
    let TensorData::F32(w) = model.initializer("w_1").unwrap() else {
        panic!()
    };
    let TensorData::F32(b) = model.initializer("b_2").unwrap() else {
        panic!()
    };
    let lanes: Vec<Vec<f32>> = w
        .axis_iter(ndarray::Axis(1))
        .map(|l| l.iter().copied().collect())
        .collect();
    let q = quantizer::search_per_channel(&lanes, bits.weights);
    let wq = fake_weight(&w, 1, &q).into_dimensionality::<Ix2>().unwrap();
    let xq = match act {
        Some(ActQuant::Uniform(u)) => x.mapv(|v| u.fake(v)),
        Some(ActQuant::Log(l)) => x.mapv(|v| l.fake(v)),
        None => x.clone(),
    };
    let x2: Array2<f32> = xq.into_shape_with_order((6, 16)).unwrap();
    (x2.dot(&wq) + &b.into_dimensionality::<ndarray::Ix1>().unwrap())
        .into_shape_with_order(IxDyn(&[1, 6, 8]))
        .unwrap()
}

fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn integer_weights_in_the_graph_equal_fake_quantization() {
    let model = linear_model(1);
    let x = noise(&[1, 6, 16], 9);
    for weights in [8, 6, 4, 3, 2] {
        let bits = GraphBits {
            weights,
            activations: None,
        };
        let (q, summary) = quantize(&model, &inputs(&x), bits);
        assert_eq!(summary.emit.quantized_weights, 1);
        assert_eq!(summary.emit.int4_storage, weights <= 4);
        if weights <= 4 {
            assert_eq!(q.opset(), 21, "int4 storage needs opset 21");
        }
        let got = run(&q, &x);
        let want = reference(&model, &x, bits, None);
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-4, "W{weights}: max difference {err}");
        // And the quantization did something: fewer bits, larger error against FP.
        let fp = run(&model, &x);
        if weights <= 4 {
            assert!(max_abs_diff(&got, &fp) > 1e-3);
        }
    }
}

#[test]
fn activation_quantizers_in_the_graph_equal_the_rust_quantizers() {
    let model = linear_model(2);
    let x = noise(&[1, 6, 16], 4);
    for activations in [8, 6, 4] {
        let bits = GraphBits {
            weights: 8,
            activations: Some(activations),
        };
        let (q, summary) = quantize(&model, &inputs(&x), bits);
        let act = summary.activations.get("x").expect("x is quantized");
        let (real, simulated) = (
            summary.emit.real_activations,
            summary.emit.simulated_activations,
        );
        assert_eq!(
            (real, simulated),
            if activations == 8 { (1, 0) } else { (0, 1) }
        );
        let got = run(&q, &x);
        let want = reference(&model, &x, bits, Some(act));
        let err = max_abs_diff(&got, &want);
        assert!(err < 1e-4, "A{activations}: max difference {err}");
    }
}

#[test]
fn log_sqrt2_graph_matches_the_rust_quantizer_on_softmax_outputs() {
    // x → Softmax → MatMul(·, v) with v an input: the softmax side gets the log-√2 quantizer.
    let mut b = Builder::new("attn", 17);
    let x = b.input("x", dtype::FLOAT, &[1, 6, 6]);
    let v = b.input("v", dtype::FLOAT, &[1, 6, 4]);
    let p = b.op("Softmax", &[&x], vec![attr::int("axis", -1)]);
    b.node("MatMul", &[p.as_str(), v.as_str()], &["out"], vec![]);
    b.output("out");
    let model = b.finish();
    let (xs, vs) = (noise(&[1, 6, 6], 3).mapv(|a| a * 6.0), noise(&[1, 6, 4], 5));
    let feeds = vec![vec![
        ("x".to_string(), TensorData::F32(xs.clone())),
        ("v".to_string(), TensorData::F32(vs.clone())),
    ]];
    let bits = GraphBits {
        weights: 8,
        activations: Some(4),
    };
    let (q, summary) = quantize(&model, &feeds, bits);
    let sites = summary.activations.len();
    assert_eq!(sites, 2);
    let Some(ActQuant::Log(lq)) = summary.activations.get(&p) else {
        panic!("softmax output should get the log-sqrt2 quantizer")
    };
    let Some(ActQuant::Uniform(vq)) = summary.activations.get("v") else {
        panic!()
    };
    let mut r = Runner::new(&q, "attn", &exact()).unwrap();
    let (tx, tv) = (TensorData::F32(xs.clone()), TensorData::F32(vs.clone()));
    let TensorData::F32(got) = r
        .run(&[("x", &tx), ("v", &tv)])
        .unwrap()
        .remove("out")
        .unwrap()
    else {
        panic!()
    };
    let x2 = xs.into_shape_with_order((6, 6)).unwrap();
    let probs = Array2::from_shape_fn((6, 6), |(i, j)| {
        let m = x2.row(i).iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = x2.row(i).iter().map(|a| (a - m).exp()).sum();
        lq.fake((x2[[i, j]] - m).exp() / z)
    });
    let v2 = vs
        .into_shape_with_order((6, 4))
        .unwrap()
        .mapv(|a| vq.fake(a));
    let want = probs
        .dot(&v2)
        .into_dyn()
        .into_shape_with_order(IxDyn(&[1, 6, 4]))
        .unwrap();
    let err = max_abs_diff(&got, &want);
    assert!(err < 1e-4, "max difference {err}");
}

fn starter_encoder() -> Model {
    bundled_encoder("ct-starter")
}

fn litemedsam_encoder() -> Model {
    bundled_encoder("litemedsam")
}

fn bundled_encoder(name: &str) -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/models")
        .join(name);
    Model::load(&dir.join("encoder.onnx")).unwrap()
}

/// A smooth random image in the encoder's normalized units.
fn smooth_image(seed: u64) -> TensorData {
    let n = noise(&[8, 8], seed);
    TensorData::F32(ArrayD::from_shape_fn(IxDyn(&[1, 3, 256, 256]), |i| {
        n[[i[2] / 32, i[3] / 32]] * 1.5 + n[[(i[2] / 13) % 8, (i[3] / 17) % 8]] * 0.3
    }))
}

fn embed(model: &Model, image: &TensorData) -> ArrayD<f32> {
    let mut r = Runner::new(model, "encoder", &SessionConfig::default()).unwrap();
    match r
        .run(&[("image", image)])
        .unwrap()
        .remove("image_embeddings")
        .unwrap()
    {
        TensorData::F32(a) => a,
        _ => panic!(),
    }
}

fn cosine(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn reparameterization_leaves_the_fp_encoder_unchanged() {
    // 8 blocks: norm1 → qkv and norm2 → lin1 each.
    reparameterization_is_exact(&starter_encoder(), 16);
}

#[test]
fn reparameterization_leaves_the_fp_tinyvit_encoder_unchanged() {
    // 10 TinyViT blocks: the attention's norm → qkv and the MLP's norm → fc1 each.
    reparameterization_is_exact(&litemedsam_encoder(), 20);
}

fn reparameterization_is_exact(encoder: &Model, norms: usize) {
    let encoder = encoder.clone();
    let calib = smooth_image(1);
    let shapes = Shapes::probe(&encoder, &[("image", &calib)]).unwrap();
    let sites = find_sites(&encoder, &shapes);
    assert_eq!(sites.layer_norms.len(), norms, "{:?}", sites.layer_norms);
    let requests: Vec<(String, Collect)> = sites
        .layer_norms
        .iter()
        .flat_map(|g| {
            g.activations.iter().map(|a| {
                (
                    a.clone(),
                    Collect::PerChannel {
                        channels: g.channels,
                    },
                )
            })
        })
        .collect();
    let feeds = vec![vec![("image".to_string(), calib)]];
    let samples = collect(
        &encoder,
        &requests,
        &feeds,
        &SessionConfig::default(),
        &mut |_, _| true,
    )
    .unwrap();
    let mut reparam = encoder.clone();
    for g in &sites.layer_norms {
        let s = &samples[&g.activations[0]];
        let u = reparameterize(&mut reparam, g, &s.values, 4).unwrap();
        assert!(u.scale > 0.0);
    }
    assert_ne!(reparam, encoder, "the weights changed");
    let test = smooth_image(2);
    let (a, b) = (embed(&encoder, &test), embed(&reparam, &test));
    let scale = a.iter().map(|v| v.abs()).fold(0.0, f32::max);
    let err = max_abs_diff(&a, &b);
    assert!(
        err <= 2e-4 * scale.max(1.0),
        "max difference {err} (output scale {scale})"
    );
}

#[test]
fn quantized_starter_encoder_tracks_fp_and_degrades_with_fewer_bits() {
    let encoder = starter_encoder();
    let feeds: Vec<Vec<(String, TensorData)>> = (10..13)
        .map(|s| vec![("image".to_string(), smooth_image(s))])
        .collect();
    let test = smooth_image(20);
    let fp = embed(&encoder, &test);
    let mut agreement = Vec::new();
    for (w, a) in [(8, Some(8)), (4, Some(8)), (4, Some(4))] {
        let bits = GraphBits {
            weights: w,
            activations: a,
        };
        let (q, summary) = quantize_graph(
            &encoder,
            &feeds,
            bits,
            true,
            0.0,
            &SessionConfig::default(),
            &mut |_, _, _| true,
        )
        .unwrap();
        assert_eq!(summary.reparameterized_norms, 16);
        // qkv, proj, lin1, lin2 per block + patch embedding + two neck convolutions.
        assert_eq!(summary.emit.quantized_weights, 8 * 4 + 3);
        let c = cosine(&fp, &embed(&q, &test));
        eprintln!("W{w}A{a:?}: cosine similarity to FP {c:.5}");
        agreement.push(c);
    }
    assert!(agreement[0] > 0.995, "W8A8 cosine {}", agreement[0]);
    assert!(agreement[2] > 0.8, "W4A4 cosine {}", agreement[2]);
    assert!(agreement[0] > agreement[2]);
}

#[test]
fn tinyvit_w8a8_gives_dense_convolutions_the_integer_pattern_and_keeps_depthwise_inputs_float() {
    let encoder = litemedsam_encoder();
    let feeds: Vec<Vec<(String, TensorData)>> = (30..32)
        .map(|s| vec![("image".to_string(), smooth_image(s))])
        .collect();
    let bits = GraphBits {
        weights: 8,
        activations: Some(8),
    };
    let (q, summary) = quantize_graph(
        &encoder,
        &feeds,
        bits,
        false,
        0.0,
        &SessionConfig::default(),
        &mut |_, _, _| true,
    )
    .unwrap();
    // 29 convolutions (patch embedding, MBConv, depthwise local convs, neck) + 40 linear layers
    assert_eq!(summary.emit.quantized_weights, 69);
    assert!(
        summary.emit.float_stored_weights >= 15,
        "the depthwise ones at least"
    );
    let g = q.graph();
    let producers = q.producers();
    let made_by = |t: &str| producers.get(t).map(|&i| &g.node[i]);
    let dequantized_activation = |t: &str| {
        made_by(t).is_some_and(|dq| {
            dq.op_type == "DequantizeLinear"
                && made_by(&dq.input[0]).is_some_and(|n| n.op_type == "QuantizeLinear")
        })
    };
    let consumers = q.consumers();
    let (mut integer, mut depthwise) = (0, 0);
    for conv in g.node.iter().filter(|n| n.op_type == "Conv") {
        if conv.attr_int("group", 1) > 1 {
            depthwise += 1;
            assert!(
                !dequantized_activation(&conv.input[0]),
                "{} input",
                conv.name
            );
            // float input: the quantized weights are a float constant ONNX Runtime can prepack
            assert!(q.has_initializer(&conv.input[1]), "{} weights", conv.name);
            continue;
        }
        let Some(weight_dq) = made_by(&conv.input[1]) else {
            continue; // a float-input dense conv (kept float by the channel-share rule)
        };
        let output_q = consumers[&conv.output[0]]
            .iter()
            .all(|&c| g.node[c].op_type == "QuantizeLinear");
        if !output_q {
            continue;
        }
        integer += 1;
        // what ONNX Runtime fuses into QLinearConv: quantized input, int8 weights with one
        // zero point (0), int32 bias, quantized output
        assert!(
            dequantized_activation(&conv.input[0]),
            "{} input",
            conv.name
        );
        let TensorData::I8(zp) = q.initializer(&weight_dq.input[2]).unwrap() else {
            panic!("int8 weight zero points");
        };
        assert!(
            zp.iter().all(|&z| z == 0),
            "{}: zero points {zp:?}",
            conv.name
        );
        let bias_dq = made_by(&conv.input[2]).expect("bias behind DequantizeLinear");
        assert!(matches!(
            q.initializer(&bias_dq.input[0]).unwrap(),
            TensorData::I32(_)
        ));
    }
    // depthwise: 2 MBConv blocks, 3 downsamples, 10 attention blocks' local convolutions
    assert_eq!(depthwise, 15);
    assert!(integer >= 1, "no integer convolution");
    // the full-resolution MBConv expansions: one channel range dwarfs the rest
    assert!(
        summary
            .kept_float
            .iter()
            .any(|t| t.contains("layers.0/blocks.0/conv1")),
        "{:?}",
        summary.kept_float
    );
}

#[test]
fn reparameterization_runs_by_default_below_8_bit_activations_only() {
    let bits = |weights, activations| GraphBits {
        weights,
        activations,
    };
    assert!(!reparameterize_by_default(bits(8, Some(8))));
    assert!(!reparameterize_by_default(bits(4, Some(8))));
    assert!(reparameterize_by_default(bits(4, Some(4))));
    assert!(reparameterize_by_default(bits(6, Some(6))));
    assert!(!reparameterize_by_default(bits(4, None)));
}

#[test]
fn below_8_bits_the_costliest_layers_keep_8bit_weights_within_the_budget() {
    let encoder = starter_encoder();
    let feeds = vec![vec![("image".to_string(), smooth_image(41))]];
    let bits = GraphBits {
        weights: 4,
        activations: Some(8),
    };
    let weight_types = |budget: f64| {
        let (q, summary) = quantize_graph(
            &encoder,
            &feeds,
            bits,
            false,
            budget,
            &SessionConfig::default(),
            &mut |_, _, _| true,
        )
        .unwrap();
        let types: HashMap<i32, usize> = q
            .graph()
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .filter_map(|n| q.graph().initializer.iter().find(|i| i.name == n.input[0]))
            .fold(HashMap::new(), |mut m, i| {
                *m.entry(i.data_type).or_default() += 1;
                m
            });
        (types, summary.eight_bit_layers.len())
    };
    let int = |types: &HashMap<i32, usize>, t: i32| types.get(&t).copied().unwrap_or(0);
    let (plain, none) = weight_types(0.0);
    let (mixed, kept) = weight_types(0.05);
    assert_eq!(none, 0);
    assert_eq!(int(&plain, dtype::INT8), 0, "{plain:?}");
    assert!(
        kept >= 1,
        "a 5 % budget keeps some layer of the starter's 35"
    );
    assert_eq!(int(&mixed, dtype::INT8), kept, "{mixed:?}");
    assert_eq!(int(&mixed, emit::INT4) + kept, int(&plain, emit::INT4));
}

#[test]
fn tinyvit_4bit_weights_cost_most_in_its_small_convolutions() {
    let encoder = litemedsam_encoder();
    let image = smooth_image(42);
    let shapes = Shapes::probe(&encoder, &[("image", &image)]).unwrap();
    let sites = find_sites(&encoder, &shapes);
    let feeds = vec![vec![("image".to_string(), image.clone())]];
    let costs = sensitivity::layer_costs(
        &encoder,
        &sites,
        &feeds,
        4,
        &SessionConfig::default(),
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(costs.len(), 69);
    let cost = |name: &str| costs.iter().find(|c| c.layer.contains(name)).unwrap();
    let kept: Vec<&str> = sensitivity::eight_bit_layers(&costs, 0.05)
        .iter()
        .map(|c| c.layer.as_str())
        .collect();
    eprintln!("kept at 8 bits: {kept:?}");
    // Per weight, the patch embedding's second convolution (2048 weights) costs hundreds of
    // times what a large MLP layer of the last stage does, so it is kept and they are not
    let per_weight = |c: &sensitivity::LayerCost| c.error / c.params as f64;
    let stem = cost("/patch_embed/seq/seq.2/");
    let mlps: Vec<_> = costs.iter().filter(|c| c.params == 409_600).collect();
    assert_eq!(mlps.len(), 4, "fc1 and fc2 of the last stage's two blocks");
    for mlp in &mlps {
        assert!(
            per_weight(stem) > 100.0 * per_weight(mlp),
            "{stem:?} {mlp:?}"
        );
        assert!(!kept.contains(&mlp.layer.as_str()), "{kept:?}");
    }
    assert!(kept.contains(&stem.layer.as_str()), "{kept:?}");
}
