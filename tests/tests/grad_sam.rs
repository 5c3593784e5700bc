//! Whole-model gradient check: a scalar of the SAM decoder's outputs, differentiated through
//! decoder and encoder with respect to the input image, against finite differences along random
//! directions. Runs on the starter bundle (assets/models/ct-starter) or the bundle named by
//! `LUMEN_TEST_MODEL` (any official-style SAM export: encoder.onnx + decoder.onnx).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lumen_engine::grad::{GradRequest, build_gradient, fd};
use lumen_engine::graph::proto::{tensor_shape_proto::dimension::Value, type_proto};
use lumen_engine::graph::{Builder, Model, Runner, Shapes, TensorData, attr, compose};
use lumen_engine::runtime::SessionConfig;
use ndarray::{ArrayD, IxDyn};
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    match std::env::var_os("LUMEN_TEST_MODEL") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => lumen_tests::repo_root().join("assets/models/ct-starter"),
    }
}

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn array(&mut self, shape: &[usize]) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.uniform())
    }
}

/// Static dims of a graph input.
fn input_dims(m: &Model, name: &str) -> Vec<usize> {
    let vi = m.graph().input.iter().find(|i| i.name == name).unwrap();
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.clone())
    else {
        panic!("{name} is not a tensor")
    };
    t.shape
        .unwrap()
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimValue(v)) => *v as usize,
            _ => 1, // symbolic (batch, number of points): use 1 / the prompt's own size
        })
        .collect()
}

fn f32_tensor(a: ArrayD<f64>) -> TensorData {
    TensorData::F32(a.mapv(|v| v as f32))
}

#[test]
fn decoder_output_gradient_wrt_image_matches_finite_differences() {
    let dir = model_dir();
    let encoder = Model::load(&dir.join("encoder.onnx")).expect("starter encoder.onnx");
    let decoder = Model::load(&dir.join("decoder.onnx")).expect("starter decoder.onnx");
    let joint = compose(
        &encoder,
        &decoder,
        &[("image_embeddings", "image_embeddings")],
        "dec/",
    )
    .unwrap();

    let image_dims = input_dims(&encoder, "image");
    let s = image_dims[2] as f32;
    let mut rng = Rng(42);
    let image = f32_tensor(rng.array(&image_dims));
    let coords =
        TensorData::F32(ndarray::arr3(&[[[0.3 * s, 0.25 * s], [0.7 * s, 0.8 * s]]]).into_dyn());
    let labels = TensorData::F32(ndarray::arr2(&[[2.0f32, 3.0]]).into_dyn());
    let mask_input = TensorData::F32(ArrayD::zeros(IxDyn(&input_dims(&decoder, "mask_input"))));
    let has_mask = TensorData::F32(ndarray::arr1(&[0.0f32]).into_dyn());
    let orig = TensorData::F32(ndarray::arr1(&[s, s]).into_dyn());
    let feeds: Vec<(&str, &TensorData)> = vec![
        ("image", &image),
        ("dec/point_coords", &coords),
        ("dec/point_labels", &labels),
        ("dec/mask_input", &mask_input),
        ("dec/has_mask_input", &has_mask),
        ("dec/orig_im_size", &orig),
    ];

    // loss = mean(masks ⊙ R1) + mean(low_res_masks ⊙ R2) + Σ iou ⊙ r3 with fixed random weights.
    let shapes = Shapes::probe(&joint, &feeds).unwrap();
    let mut b = Builder::from_model(joint);
    let mut terms = Vec::new();
    for (out, reduce) in [
        ("dec/masks", "ReduceMean"),
        ("dec/low_res_masks", "ReduceMean"),
        ("dec/iou_predictions", "ReduceSum"),
    ] {
        let shape: Vec<usize> = shapes
            .get(out)
            .unwrap()
            .shape
            .iter()
            .map(|&d| d as usize)
            .collect();
        let r = b.constant("r", &f32_tensor(rng.array(&shape)));
        let p = b.op("Mul", &[out, r.as_str()], vec![]);
        terms.push(b.op(reduce, &[p.as_str()], vec![attr::int("keepdims", 0)]));
    }
    let t = b.op("Add", &[terms[0].as_str(), terms[1].as_str()], vec![]);
    let loss = b.op("Add", &[t.as_str(), terms[2].as_str()], vec![]);
    b.model.set_outputs(&[loss.as_str()]).unwrap();
    let model = b.finish();
    let shapes = Shapes::probe(&model, &feeds).unwrap();
    let request = GradRequest {
        output: loss.clone(),
        wrt: vec!["image".into()],
        keep: vec![],
    };
    let grad = build_gradient(&model, &request, &shapes).unwrap();
    let mut runner = Runner::new(&grad.model, "sam gradient", &SessionConfig::default()).unwrap();
    let out = runner.run(&feeds).unwrap();
    let g = out[grad.gradient_of("image").unwrap()]
        .to_f64_vec()
        .unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    assert!(g.iter().any(|v| *v != 0.0));
    assert_eq!(g.len(), image_dims.iter().product::<usize>());

    // f32 finite differences carry ~1e-7 relative roundoff in the loss, so a step of 3e-3 (in
    // normalized pixel units) balances roundoff against curvature; the check aggregates six
    // random directions (a wrong rule gives errors of order one, see grad::tests for the per-op
    // checks at 1e-3).
    let mut forward = Runner::new(&model, "sam forward", &SessionConfig::default()).unwrap();
    let (mut diff2, mut norm2) = (0.0, 0.0);
    for k in 0..6 {
        let dir = rng.array(&image_dims);
        let an: f64 = g.iter().zip(dir.iter()).map(|(a, d)| a * d).sum();
        let fd =
            fd::directional_derivative(&mut forward, &loss, &feeds, "image", &dir, 3e-3).unwrap();
        let err = (fd - an).abs() / fd.abs().max(an.abs());
        eprintln!(
            "direction {k}: finite difference {fd:.6e}, gradient {an:.6e}, relative error {err:.2e}"
        );
        assert!(
            err <= 0.25,
            "direction {k}: FD {fd} vs gradient {an} (relative error {err:.2e})"
        );
        diff2 += (fd - an).powi(2);
        norm2 += an.powi(2);
    }
    let err = (diff2 / norm2).sqrt();
    eprintln!("relative error over all directions: {err:.2e}");
    assert!(err <= 2e-2, "relative error {err:.2e} over the directions");
}
