//! Gradient checks: the built gradient (f32, one ORT session) against central finite
//! differences on ORT, in f64 where ORT has the op in double, else in f32 along random directions.
//! This file holds the harness; `ops` checks each op's rule, `graphs` whole graphs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod graphs;
mod ops;

use super::*;
use crate::graph::proto::dtype;
use crate::graph::{Builder, Model, Runner, Shapes, TensorData, attr};
use crate::runtime::SessionConfig;
use ndarray::{ArrayD, IxDyn};

/// How random inputs are drawn.
#[derive(Clone, Copy)]
enum Dist {
    /// Uniform in (−1, 1).
    Sym,
    /// Uniform in (0.5, 2): for Log, Sqrt, Div, Pow bases.
    Pos,
    /// |x| in (0.2, 1) with random sign: away from kinks at 0.
    Away,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn draw(&mut self, d: Dist) -> f64 {
        let u = self.next();
        match d {
            Dist::Sym => 2.0 * u - 1.0,
            Dist::Pos => 0.5 + 1.5 * u,
            Dist::Away => {
                let m = 0.2 + 0.8 * u;
                if self.next() < 0.5 { -m } else { m }
            }
        }
    }
    fn array(&mut self, shape: &[usize], d: Dist) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.draw(d))
    }
}

fn as_type(a: &ArrayD<f64>, elem: i32) -> TensorData {
    if elem == dtype::DOUBLE {
        TensorData::F64(a.clone())
    } else {
        TensorData::F32(a.mapv(|v| v as f32))
    }
}

struct Case<'a> {
    name: &'a str,
    opset: i64,
    inputs: Vec<(&'a str, Vec<usize>, Dist)>,
    wrt: Vec<&'a str>,
    /// Builds the op(s) under test on the declared inputs; returns the tensor to check.
    build: &'a dyn Fn(&mut Builder, i32) -> String,
}

impl<'a> Case<'a> {
    fn new(
        name: &'a str,
        inputs: Vec<(&'a str, Vec<usize>, Dist)>,
        build: &'a dyn Fn(&mut Builder, i32) -> String,
    ) -> Self {
        let wrt = inputs.iter().map(|i| i.0).collect();
        Self {
            name,
            opset: 17,
            inputs,
            wrt,
            build,
        }
    }
    fn opset(mut self, v: i64) -> Self {
        self.opset = v;
        self
    }
    fn wrt(mut self, w: Vec<&'a str>) -> Self {
        self.wrt = w;
        self
    }
}

/// The case's graph in element type `elem` with loss = Σ y ⊙ R (R fixed random weights, so
/// every output element matters), and its input values.
fn model(
    case: &Case,
    elem: i32,
    values: &[ArrayD<f64>],
    weights: Option<&ArrayD<f64>>,
) -> (Model, String, String) {
    let mut b = Builder::new(case.name, case.opset);
    for (name, shape, _) in &case.inputs {
        let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        b.input(name, elem, &s);
    }
    let _ = values;
    let y = (case.build)(&mut b, elem);
    let loss = match weights {
        Some(w) => {
            let r = b.constant("r", &as_type(w, elem));
            let p = b.op("Mul", &[&y, &r], vec![]);
            b.op("ReduceSum", &[&p], vec![attr::int("keepdims", 0)])
        }
        None => y.clone(),
    };
    b.output(&loss);
    (b.finish(), y, loss)
}

fn feeds<'a>(case: &'a Case, data: &'a [TensorData]) -> Vec<(&'a str, &'a TensorData)> {
    case.inputs
        .iter()
        .zip(data)
        .map(|((n, _, _), d)| (*n, d))
        .collect()
}

fn rel_err(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    let diff = (a - b).mapv(|v| v * v).sum().sqrt();
    let scale = a
        .mapv(|v| v * v)
        .sum()
        .sqrt()
        .max(b.mapv(|v| v * v).sum().sqrt())
        .max(1e-6);
    diff / scale
}

fn check(case: Case) {
    let mut rng = Rng(0x5eed ^ (case.name.len() as u64 * 7919));
    let values: Vec<ArrayD<f64>> = case
        .inputs
        .iter()
        .map(|(_, s, d)| rng.array(s, *d))
        .collect();
    let f32_data: Vec<TensorData> = values.iter().map(|v| as_type(v, dtype::FLOAT)).collect();
    // The output shape, for the loss weights.
    let (probe_model, y, _) = model(&case, dtype::FLOAT, &values, None);
    let probe = Shapes::probe(&probe_model, &feeds(&case, &f32_data)).unwrap();
    let ys: Vec<usize> = probe
        .get(&y)
        .unwrap()
        .shape
        .iter()
        .map(|&d| d as usize)
        .collect();
    let weights = rng.array(&ys, Dist::Sym);

    let (m32, _, loss) = model(&case, dtype::FLOAT, &values, Some(&weights));
    let shapes = Shapes::probe(&m32, &feeds(&case, &f32_data)).unwrap();
    let request = GradRequest {
        output: loss.clone(),
        wrt: case.wrt.iter().map(|s| s.to_string()).collect(),
        keep: vec![],
    };
    let grad = build_gradient(&m32, &request, &shapes)
        .unwrap_or_else(|e| panic!("{}: building the gradient failed: {e}", case.name));
    let mut runner = Runner::new(&grad.model, case.name, &SessionConfig::default())
        .unwrap_or_else(|e| panic!("{}: gradient model does not load: {e}", case.name));
    let out = runner.run(&feeds(&case, &f32_data)).unwrap();

    // Reference in f64 when ORT runs the case in double; otherwise f32 directional derivatives.
    let (m64, _, loss64) = model(&case, dtype::DOUBLE, &values, Some(&weights));
    let f64_data: Vec<TensorData> = values.iter().map(|v| as_type(v, dtype::DOUBLE)).collect();
    let single = SessionConfig {
        intra_threads: 1,
        optimize: true,
    };
    let mut r64 = Runner::new(&m64, "f64 reference", &single).ok();
    if let Some(r) = r64.as_mut()
        && r.run(&feeds(&case, &f64_data)).is_err()
    {
        r64 = None;
    }
    eprintln!(
        "{}: reference {}",
        case.name,
        if r64.is_some() {
            "f64 per element"
        } else {
            "f32 directional"
        }
    );
    for (w, gname) in &grad.gradients {
        let analytic = out[gname].to_f64_vec().unwrap();
        let shape = case.inputs.iter().find(|i| i.0 == w).unwrap().1.clone();
        let analytic = ArrayD::from_shape_vec(IxDyn(&shape), analytic).unwrap();
        match r64.as_mut() {
            Some(r) => {
                let fd = fd::gradient(r, &loss64, &feeds(&case, &f64_data), w, 1e-5).unwrap();
                let e = rel_err(&analytic, &fd);
                eprintln!("  d/d{w}: relative error {e:.1e}");
                assert!(
                    e <= 1e-3,
                    "{} d/d{w}: relative error {e:.2e} (f64 FD)\nanalytic {analytic:?}\nfd {fd:?}",
                    case.name
                );
            }
            None => {
                let mut r32 = Runner::new(&m32, "f32 reference", &single).unwrap();
                for k in 0..3 {
                    let dir = rng.array(&shape, Dist::Sym);
                    let fd = fd::directional_derivative(
                        &mut r32,
                        &loss,
                        &feeds(&case, &f32_data),
                        w,
                        &dir,
                        1e-2,
                    )
                    .unwrap();
                    let an = (&analytic * &dir).sum();
                    let e = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-6);
                    eprintln!("  d/d{w} direction {k}: relative error {e:.1e}");
                    assert!(
                        e <= 1e-3,
                        "{} d/d{w} direction {k}: relative error {e:.2e} (f32 FD {fd}, analytic {an})",
                        case.name
                    );
                }
            }
        }
    }
}

// ---- helpers to build cases ----

fn unary(name: &str, op: &'static str, d: Dist) {
    let f = move |b: &mut Builder, _: i32| b.op(op, &["x"], vec![]);
    check(Case::new(name, vec![("x", vec![2, 3, 4], d)], &f));
}

fn binary(name: &str, op: &'static str, sa: Vec<usize>, sb: Vec<usize>, da: Dist, db: Dist) {
    let f = move |b: &mut Builder, _: i32| b.op(op, &["a", "b"], vec![]);
    check(Case::new(name, vec![("a", sa, da), ("b", sb, db)], &f));
}

fn scalar(b: &mut Builder, v: f64, elem: i32) -> String {
    b.scalar(v, elem)
}

fn weights(b: &mut Builder, shape: &[usize], seed: u64) -> String {
    let w = Rng(seed).array(shape, Dist::Sym).mapv(|v| v as f32);
    b.constant("w", &TensorData::F32(w))
}
