//! Per-op gradient checks: the built gradient (f32, one ORT session) against central finite
//! differences on ORT, in f64 where ORT has the op in double, else in f32 along random directions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

#[test]
fn elementwise_binary_with_broadcasting() {
    binary(
        "add",
        "Add",
        vec![2, 3, 4],
        vec![3, 1],
        Dist::Sym,
        Dist::Sym,
    );
    binary("sub", "Sub", vec![4], vec![2, 3, 4], Dist::Sym, Dist::Sym);
    binary(
        "mul",
        "Mul",
        vec![2, 1, 4],
        vec![3, 1],
        Dist::Sym,
        Dist::Sym,
    );
    binary(
        "div",
        "Div",
        vec![2, 3, 4],
        vec![1, 4],
        Dist::Sym,
        Dist::Pos,
    );
    binary("pow", "Pow", vec![2, 3], vec![3], Dist::Pos, Dist::Sym);
    binary("max", "Max", vec![2, 3], vec![3], Dist::Sym, Dist::Sym);
    binary("min", "Min", vec![2, 3], vec![2, 1], Dist::Sym, Dist::Sym);
    binary("sum", "Sum", vec![2, 3], vec![3], Dist::Sym, Dist::Sym);
    binary("mean", "Mean", vec![2, 3], vec![1], Dist::Sym, Dist::Sym);
    let square = |b: &mut Builder, e: i32| {
        let two = scalar(b, 2.0, e);
        b.op("Pow", &["x", two.as_str()], vec![])
    };
    check(Case::new(
        "pow_const",
        vec![("x", vec![3, 4], Dist::Sym)],
        &square,
    ));
    let same = |b: &mut Builder, _: i32| b.op("Mul", &["x", "x"], vec![]);
    check(Case::new(
        "mul_fanout",
        vec![("x", vec![5], Dist::Sym)],
        &same,
    ));
}

#[test]
fn elementwise_unary() {
    unary("sqrt", "Sqrt", Dist::Pos);
    unary("exp", "Exp", Dist::Sym);
    unary("log", "Log", Dist::Pos);
    unary("neg", "Neg", Dist::Sym);
    unary("abs", "Abs", Dist::Away);
    unary("reciprocal", "Reciprocal", Dist::Pos);
    unary("erf", "Erf", Dist::Sym);
    unary("relu", "Relu", Dist::Away);
    unary("sigmoid", "Sigmoid", Dist::Sym);
    unary("tanh", "Tanh", Dist::Sym);
    unary("sin", "Sin", Dist::Sym);
    unary("cos", "Cos", Dist::Sym);
    unary("softplus", "Softplus", Dist::Sym);
    unary("identity", "Identity", Dist::Sym);
    let leaky =
        |b: &mut Builder, _: i32| b.op("LeakyRelu", &["x"], vec![attr::float("alpha", 0.1)]);
    check(Case::new(
        "leaky_relu",
        vec![("x", vec![2, 5], Dist::Away)],
        &leaky,
    ));
    for approx in ["none", "tanh"] {
        let gelu = move |b: &mut Builder, _: i32| {
            b.op("Gelu", &["x"], vec![attr::string("approximate", approx)])
        };
        check(Case::new("gelu", vec![("x", vec![2, 6], Dist::Sym)], &gelu).opset(20));
    }
    let clip = |b: &mut Builder, e: i32| {
        let (lo, hi) = (scalar(b, -0.5, e), scalar(b, 0.5, e));
        b.op("Clip", &["x", lo.as_str(), hi.as_str()], vec![])
    };
    check(Case::new("clip", vec![("x", vec![3, 4], Dist::Sym)], &clip).wrt(vec!["x"]));
    let cast = |b: &mut Builder, _: i32| {
        let d = b.op(
            "Cast",
            &["x"],
            vec![attr::int("to", i64::from(dtype::DOUBLE))],
        );
        b.op(
            "Cast",
            &[d.as_str()],
            vec![attr::int("to", i64::from(dtype::FLOAT))],
        )
    };
    check(Case::new("cast", vec![("x", vec![4], Dist::Sym)], &cast));
}

#[test]
fn where_selects_gradients() {
    let f = |b: &mut Builder, e: i32| {
        let zero = scalar(b, 0.0, e);
        let c = b.op("Greater", &["c", zero.as_str()], vec![]);
        b.op("Where", &[c.as_str(), "a", "b"], vec![])
    };
    check(
        Case::new(
            "where",
            vec![
                ("c", vec![2, 3], Dist::Sym),
                ("a", vec![2, 3], Dist::Sym),
                ("b", vec![3], Dist::Sym),
            ],
            &f,
        )
        .wrt(vec!["a", "b"]),
    );
}

#[test]
fn matmul_gemm_einsum() {
    let mm = |b: &mut Builder, _: i32| b.op("MatMul", &["a", "b"], vec![]);
    for (sa, sb) in [
        (vec![3, 4], vec![4, 5]),
        (vec![2, 1, 3, 4], vec![3, 4, 2]),
        (vec![4], vec![2, 4, 3]),
        (vec![2, 3, 4], vec![4]),
        (vec![4], vec![4]),
    ] {
        check(Case::new(
            "matmul",
            vec![("a", sa, Dist::Sym), ("b", sb, Dist::Sym)],
            &mm,
        ));
    }
    for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let gemm = move |b: &mut Builder, _: i32| {
            b.op(
                "Gemm",
                &["a", "b", "c"],
                vec![
                    attr::int("transA", ta),
                    attr::int("transB", tb),
                    attr::float("alpha", 0.7),
                    attr::float("beta", 1.3),
                ],
            )
        };
        let sa = if ta == 1 { vec![4, 3] } else { vec![3, 4] };
        let sb = if tb == 1 { vec![5, 4] } else { vec![4, 5] };
        check(Case::new(
            "gemm",
            vec![
                ("a", sa, Dist::Sym),
                ("b", sb, Dist::Sym),
                ("c", vec![5], Dist::Sym),
            ],
            &gemm,
        ));
    }
    for (eq, sa, sb) in [
        ("bhwc,hkc->bhwk", vec![2, 3, 4, 5], vec![3, 2, 5]),
        ("ij,jk", vec![3, 4], vec![4, 2]),
        ("ij,k->i", vec![3, 4], vec![2]),
    ] {
        let f = move |b: &mut Builder, _: i32| {
            b.op("Einsum", &["a", "b"], vec![attr::string("equation", eq)])
        };
        check(
            Case::new(
                "einsum",
                vec![("a", sa, Dist::Sym), ("b", sb, Dist::Sym)],
                &f,
            )
            .opset(17),
        );
    }
}

fn weights(b: &mut Builder, shape: &[usize], seed: u64) -> String {
    let w = Rng(seed).array(shape, Dist::Sym).mapv(|v| v as f32);
    b.constant("w", &TensorData::F32(w))
}

type Attrs = Vec<crate::graph::proto::AttributeProto>;
type ConvCase = (&'static str, Vec<usize>, Vec<usize>, Attrs);
type ResizeCase = (&'static str, Attrs, Option<Vec<f32>>, Option<Vec<i64>>);

#[test]
fn conv_and_conv_transpose_input_gradients() {
    let cases: Vec<ConvCase> = vec![
        (
            "conv_s2_p1",
            vec![1, 3, 7, 7],
            vec![4, 3, 3, 3],
            vec![
                attr::ints("strides", &[2, 2]),
                attr::ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        (
            "conv_group",
            vec![2, 4, 6, 6],
            vec![6, 2, 3, 3],
            vec![attr::int("group", 2)],
        ),
        (
            "conv_dilated",
            vec![1, 2, 9, 8],
            vec![3, 2, 3, 2],
            vec![
                attr::ints("dilations", &[2, 1]),
                attr::ints("pads", &[0, 1, 2, 0]),
            ],
        ),
        (
            "conv_same",
            vec![1, 2, 6, 5],
            vec![2, 2, 3, 3],
            vec![
                attr::string("auto_pad", "SAME_UPPER"),
                attr::ints("strides", &[2, 2]),
            ],
        ),
        (
            "conv_patch",
            vec![1, 3, 8, 8],
            vec![5, 3, 4, 4],
            vec![attr::ints("strides", &[4, 4])],
        ),
        (
            "conv1d",
            vec![2, 3, 10],
            vec![4, 3, 3],
            vec![attr::ints("pads", &[1, 1])],
        ),
    ];
    for (name, sx, sw, attrs) in cases {
        let f = move |b: &mut Builder, _: i32| {
            let w = weights(b, &sw, 3);
            b.op("Conv", &["x", w.as_str()], attrs.clone())
        };
        check(Case::new(name, vec![("x", sx, Dist::Sym)], &f));
    }
    let tcases: Vec<ConvCase> = vec![
        (
            "convT_s2",
            vec![1, 4, 3, 3],
            vec![4, 3, 2, 2],
            vec![attr::ints("strides", &[2, 2])],
        ),
        (
            "convT_p1",
            vec![1, 2, 4, 4],
            vec![2, 3, 3, 3],
            vec![
                attr::ints("strides", &[2, 2]),
                attr::ints("pads", &[1, 1, 1, 1]),
                attr::ints("output_padding", &[1, 1]),
            ],
        ),
        (
            "convT_group",
            vec![1, 4, 3, 3],
            vec![4, 1, 2, 2],
            vec![attr::int("group", 2), attr::ints("strides", &[2, 2])],
        ),
    ];
    for (name, sx, sw, attrs) in tcases {
        let f = move |b: &mut Builder, _: i32| {
            let w = weights(b, &sw, 4);
            let bias = weights(b, &[sw[1] * if name == "convT_group" { 2 } else { 1 }], 5);
            b.op(
                "ConvTranspose",
                &["x", w.as_str(), bias.as_str()],
                attrs.clone(),
            )
        };
        check(Case::new(name, vec![("x", sx, Dist::Sym)], &f));
    }
}

#[test]
fn reductions() {
    for op in [
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "ReduceSumSquare",
        "ReduceL2",
        "ReduceL1",
        "ReduceLogSumExp",
    ] {
        let f = move |b: &mut Builder, _: i32| {
            if op == "ReduceSum" {
                let axes = b.const_i64(&[1, -1]);
                b.op(op, &["x", axes.as_str()], vec![attr::int("keepdims", 0)])
            } else {
                b.op(
                    op,
                    &["x"],
                    vec![attr::ints("axes", &[1]), attr::int("keepdims", 1)],
                )
            }
        };
        let d = if op == "ReduceL1" {
            Dist::Away
        } else {
            Dist::Sym
        };
        check(Case::new(op, vec![("x", vec![2, 3, 4], d)], &f));
    }
    // Opset 18: axes as an input; no axes: everything.
    let f = |b: &mut Builder, _: i32| {
        let axes = b.const_i64(&[0, 2]);
        b.op("ReduceMean", &["x", axes.as_str()], vec![])
    };
    check(Case::new("reduce_mean_18", vec![("x", vec![2, 3, 4], Dist::Sym)], &f).opset(18));
    let all = |b: &mut Builder, _: i32| b.op("ReduceMax", &["x"], vec![attr::int("keepdims", 0)]);
    check(Case::new(
        "reduce_max_all",
        vec![("x", vec![3, 4], Dist::Sym)],
        &all,
    ));
}

#[test]
fn softmax_and_layer_norm() {
    for axis in [1, -1] {
        let f =
            move |b: &mut Builder, _: i32| b.op("Softmax", &["x"], vec![attr::int("axis", axis)]);
        check(Case::new(
            "softmax",
            vec![("x", vec![2, 3, 4], Dist::Sym)],
            &f,
        ));
        let f = move |b: &mut Builder, _: i32| {
            b.op("LogSoftmax", &["x"], vec![attr::int("axis", axis)])
        };
        check(Case::new(
            "log_softmax",
            vec![("x", vec![2, 3, 4], Dist::Sym)],
            &f,
        ));
    }
    for axis in [-1, 1] {
        let f = move |b: &mut Builder, _: i32| {
            b.op(
                "LayerNormalization",
                &["x", "s", "b"],
                vec![attr::int("axis", axis), attr::float("epsilon", 1e-5)],
            )
        };
        let ps = if axis == -1 { vec![4] } else { vec![3, 4] };
        check(Case::new(
            "layer_norm",
            vec![
                ("x", vec![2, 3, 4], Dist::Sym),
                ("s", ps.clone(), Dist::Sym),
                ("b", ps, Dist::Sym),
            ],
            &f,
        ));
    }
    // The decomposed form older exports use.
    let f = |b: &mut Builder, e: i32| {
        let mu = b.op("ReduceMean", &["x"], vec![attr::ints("axes", &[-1])]);
        let xc = b.op("Sub", &["x", mu.as_str()], vec![]);
        let two = scalar(b, 2.0, e);
        let sq = b.op("Pow", &[xc.as_str(), two.as_str()], vec![]);
        let var = b.op(
            "ReduceMean",
            &[sq.as_str()],
            vec![attr::ints("axes", &[-1])],
        );
        let eps = scalar(b, 1e-6, e);
        let ve = b.op("Add", &[&var, &eps], vec![]);
        let sd = b.op("Sqrt", &[&ve], vec![]);
        let n = b.op("Div", &[&xc, &sd], vec![]);
        let m = b.op("Mul", &[n.as_str(), "s"], vec![]);
        b.op("Add", &[m.as_str(), "b"], vec![])
    };
    check(Case::new(
        "layer_norm_decomposed",
        vec![
            ("x", vec![2, 3, 5], Dist::Sym),
            ("s", vec![5], Dist::Sym),
            ("b", vec![5], Dist::Sym),
        ],
        &f,
    ));
}

#[test]
fn shape_ops() {
    let x = || vec![("x", vec![2, 3, 4], Dist::Sym)];
    let reshape = |b: &mut Builder, _: i32| {
        let s = b.const_i64(&[4, -1]);
        b.op("Reshape", &["x", s.as_str()], vec![])
    };
    check(Case::new("reshape", x(), &reshape));
    let flatten = |b: &mut Builder, _: i32| b.op("Flatten", &["x"], vec![attr::int("axis", 2)]);
    check(Case::new("flatten", x(), &flatten));
    let unsq = |b: &mut Builder, _: i32| {
        let a = b.const_i64(&[0, 3]);
        let u = b.op("Unsqueeze", &["x", a.as_str()], vec![]);
        let s = b.const_i64(&[0]);
        b.op("Squeeze", &[u.as_str(), s.as_str()], vec![])
    };
    check(Case::new("unsqueeze_squeeze", x(), &unsq));
    let tr =
        |b: &mut Builder, _: i32| b.op("Transpose", &["x"], vec![attr::ints("perm", &[1, 2, 0])]);
    check(Case::new("transpose", x(), &tr));
    let concat =
        |b: &mut Builder, _: i32| b.op("Concat", &["x", "y", "x"], vec![attr::int("axis", 1)]);
    check(Case::new(
        "concat",
        vec![
            ("x", vec![2, 3, 4], Dist::Sym),
            ("y", vec![2, 2, 4], Dist::Sym),
        ],
        &concat,
    ));
    let split = |b: &mut Builder, _: i32| {
        let sizes = b.const_i64(&[1, 2, 1]);
        let parts = b.op_n(
            "Split",
            &["x", sizes.as_str()],
            vec![attr::int("axis", 2)],
            3,
        );
        // The middle part is unused: its gradient is zero.
        b.op("Mul", &[parts[0].as_str(), parts[2].as_str()], vec![])
    };
    check(Case::new("split", x(), &split));
    let slice = |b: &mut Builder, _: i32| {
        let (s, e, a) = (
            b.const_i64(&[1, -3]),
            b.const_i64(&[3, 100]),
            b.const_i64(&[1, 2]),
        );
        b.op("Slice", &["x", s.as_str(), e.as_str(), a.as_str()], vec![])
    };
    check(Case::new("slice", x(), &slice));
    let strided = |b: &mut Builder, _: i32| {
        let (s, e, a, st) = (
            b.const_i64(&[-1, 0, 3]),
            b.const_i64(&[i64::MIN, 3, 0]),
            b.const_i64(&[2, 1, 0]),
            b.const_i64(&[-1, 2, -2]),
        );
        b.op(
            "Slice",
            &["x", s.as_str(), e.as_str(), a.as_str(), st.as_str()],
            vec![],
        )
    };
    check(Case::new(
        "slice_strided_flip",
        vec![("x", vec![4, 3, 5], Dist::Sym)],
        &strided,
    ));
    let gather = |b: &mut Builder, _: i32| {
        let idx = TensorData::I64(ndarray::arr2(&[[0i64, 2], [2, -1]]).into_dyn());
        let i = b.constant("idx", &idx);
        b.op("Gather", &["x", i.as_str()], vec![attr::int("axis", 2)])
    };
    check(Case::new("gather", x(), &gather));
    let gather0 = |b: &mut Builder, _: i32| {
        let i = b.constant("i", &TensorData::I64(ndarray::arr0(1i64).into_dyn()));
        b.op("Gather", &["x", i.as_str()], vec![attr::int("axis", 1)])
    };
    check(Case::new("gather_scalar", x(), &gather0));
    let pad = |b: &mut Builder, _: i32| {
        let p = b.const_i64(&[0, 1, 2, 0, 0, -1]);
        b.op("Pad", &["x", p.as_str()], vec![])
    };
    check(Case::new("pad", x(), &pad));
    let expand = |b: &mut Builder, _: i32| {
        let s = b.const_i64(&[2, 2, 3, 4]);
        b.op("Expand", &["y", s.as_str()], vec![])
    };
    check(Case::new(
        "expand",
        vec![("y", vec![3, 1], Dist::Sym)],
        &expand,
    ));
    let tile = |b: &mut Builder, _: i32| {
        let r = b.const_i64(&[2, 1, 3]);
        b.op("Tile", &["x", r.as_str()], vec![])
    };
    check(Case::new("tile", x(), &tile));
}

#[test]
fn resize_modes() {
    let modes: Vec<ResizeCase> = vec![
        (
            "bilinear_up",
            vec![attr::string("mode", "linear")],
            Some(vec![1.0, 1.0, 2.0, 2.0]),
            None,
        ),
        (
            "bilinear_align",
            vec![
                attr::string("mode", "linear"),
                attr::string("coordinate_transformation_mode", "align_corners"),
            ],
            None,
            Some(vec![1, 2, 7, 5]),
        ),
        (
            "bilinear_down",
            vec![
                attr::string("mode", "linear"),
                attr::string("coordinate_transformation_mode", "pytorch_half_pixel"),
            ],
            None,
            Some(vec![1, 2, 3, 2]),
        ),
        (
            "nearest",
            vec![
                attr::string("mode", "nearest"),
                attr::string("coordinate_transformation_mode", "asymmetric"),
                attr::string("nearest_mode", "floor"),
            ],
            Some(vec![1.0, 1.0, 2.0, 3.0]),
            None,
        ),
        (
            "cubic",
            vec![attr::string("mode", "cubic")],
            Some(vec![1.0, 1.0, 1.5, 2.0]),
            None,
        ),
    ];
    for (name, attrs, scales, sizes) in modes {
        let f = move |b: &mut Builder, _: i32| match (&scales, &sizes) {
            (Some(s), _) => {
                let sc = b.constant(
                    "sc",
                    &TensorData::F32(ndarray::Array1::from(s.clone()).into_dyn()),
                );
                b.op("Resize", &["x", "", sc.as_str()], attrs.clone())
            }
            (_, Some(z)) => {
                let sz = b.const_i64(z);
                b.op("Resize", &["x", "", "", sz.as_str()], attrs.clone())
            }
            _ => unreachable!(),
        };
        check(Case::new(
            name,
            vec![("x", vec![1, 2, 4, 3], Dist::Sym)],
            &f,
        ));
    }
}

#[test]
fn unsupported_op_error_names_op_and_node() {
    let mut b = Builder::new("t", 17);
    b.input("x", dtype::FLOAT, &[3]);
    let y = b.op("Hardmax", &["x"], vec![]);
    let s = b.op("ReduceSum", &[y.as_str()], vec![attr::int("keepdims", 0)]);
    b.output(&s);
    let m = b.finish();
    let x = TensorData::F32(ndarray::arr1(&[1.0f32, 2.0, 3.0]).into_dyn());
    let shapes = Shapes::probe(&m, &[("x", &x)]).unwrap();
    let req = GradRequest {
        output: s.clone(),
        wrt: vec!["x".into()],
        keep: vec![],
    };
    let e = build_gradient(&m, &req, &shapes).unwrap_err().to_string();
    assert!(e.contains("Hardmax") && e.contains("Hardmax_node"), "{e}");
    assert_eq!(unsupported_nodes(&m).len(), 1);
    // Not a scalar.
    let req = GradRequest {
        output: y,
        wrt: vec!["x".into()],
        keep: vec![],
    };
    assert!(matches!(
        build_gradient(&m, &req, &shapes),
        Err(GradError::NotScalar { .. })
    ));
}

#[test]
fn fan_out_and_unconnected_inputs() {
    // y = sum(x*x + sin(x)) + 0*z: x used three times; z unconnected except through a constant path.
    let f = |b: &mut Builder, _: i32| {
        let xx = b.op("Mul", &["x", "x"], vec![]);
        let s = b.op("Sin", &["x"], vec![]);
        b.op("Add", &[xx.as_str(), s.as_str()], vec![])
    };
    check(Case::new("fanout", vec![("x", vec![2, 3], Dist::Sym)], &f));
    let mut b = Builder::new("t", 17);
    b.input("x", dtype::FLOAT, &[2]);
    b.input("z", dtype::FLOAT, &[2]);
    let sh = b.op("Shape", &["z"], vec![]);
    let c = b.op("Cast", &[sh.as_str()], vec![attr::int("to", 1)]);
    let y = b.op("Mul", &["x", c.as_str()], vec![]);
    let s = b.op("ReduceSum", &[y.as_str()], vec![attr::int("keepdims", 0)]);
    b.output(&s);
    let m = b.finish();
    let x = TensorData::F32(ndarray::arr1(&[1.0f32, 2.0]).into_dyn());
    let shapes = Shapes::probe(&m, &[("x", &x), ("z", &x)]).unwrap();
    let req = GradRequest {
        output: s.clone(),
        wrt: vec!["x".into(), "z".into()],
        keep: vec![],
    };
    let g = build_gradient(&m, &req, &shapes).unwrap();
    let mut r = Runner::new(&g.model, "t", &SessionConfig::default()).unwrap();
    let out = r.run(&[("x", &x), ("z", &x)]).unwrap();
    assert_eq!(
        out[g.gradient_of("x").unwrap()].to_f64_vec().unwrap(),
        vec![2.0, 2.0]
    );
    assert_eq!(
        out[g.gradient_of("z").unwrap()].to_f64_vec().unwrap(),
        vec![0.0, 0.0]
    );
}

#[test]
fn gradients_with_respect_to_initializers() {
    // The design is open for weights: Gemm B and LayerNorm scale/bias are initializers here.
    let mut b = Builder::new("w", 17);
    b.input("x", dtype::FLOAT, &[3, 4]);
    let w = weights(&mut b, &[4, 2], 8);
    let y = b.op("MatMul", &["x", w.as_str()], vec![]);
    let t = b.op("Tanh", &[y.as_str()], vec![]);
    let s = b.op("ReduceSum", &[t.as_str()], vec![attr::int("keepdims", 0)]);
    b.output(&s);
    let m = b.finish();
    let x = TensorData::F32(Rng(3).array(&[3, 4], Dist::Sym).mapv(|v| v as f32));
    let shapes = Shapes::probe(&m, &[("x", &x)]).unwrap();
    let req = GradRequest {
        output: s.clone(),
        wrt: vec![w.clone()],
        keep: vec![],
    };
    let g = build_gradient(&m, &req, &shapes).unwrap();
    let mut r = Runner::new(&g.model, "w", &SessionConfig::default()).unwrap();
    let out = r.run(&[("x", &x)]).unwrap();
    let an = out[g.gradient_of(&w).unwrap()].to_f64_vec().unwrap();
    let w0 = m.initializer(&w).unwrap();
    // Reference: FD on the same model with the weight as an (overridable) input.
    let mut mi = m.clone();
    mi.graph_mut()
        .input
        .push(crate::graph::value_info(&w, dtype::FLOAT, &[4, 2]));
    let mut ri = Runner::new(&mi, "wi", &SessionConfig::default()).unwrap();
    let dir = Rng(4).array(&[4, 2], Dist::Sym);
    let fd =
        fd::directional_derivative(&mut ri, &s, &[("x", &x), (w.as_str(), &w0)], &w, &dir, 1e-2)
            .unwrap();
    let dd: f64 = an.iter().zip(dir.iter()).map(|(a, d)| a * d).sum();
    assert!(
        (fd - dd).abs() <= 1e-3 * fd.abs().max(1e-3),
        "fd {fd} analytic {dd}"
    );
}

/// The loss terms of data-free calibration-image synthesis (DESIGN.md §3), as graphs.
#[test]
fn dfq_loss_terms() {
    // Patch-similarity entropy: cosine similarities of tokens, Gaussian KDE (bandwidth 0.01)
    // evaluated at the similarity values, entropy = −mean log density.
    let pse = |b: &mut Builder, e: i32| {
        let sq = b.op("Mul", &["x", "x"], vec![]);
        let axes = b.const_i64(&[-1]);
        let n2 = b.op(
            "ReduceSum",
            &[sq.as_str(), axes.as_str()],
            vec![attr::int("keepdims", 1)],
        );
        let eps = scalar(b, 1e-8, e);
        let n2e = b.op("Add", &[&n2, &eps], vec![]);
        let norm = b.op("Sqrt", &[&n2e], vec![]);
        let xn = b.op("Div", &["x", norm.as_str()], vec![]);
        let xt = b.op("Transpose", &[&xn], vec![attr::ints("perm", &[0, 2, 1])]);
        let sim = b.op("MatMul", &[&xn, &xt], vec![]);
        let flat = b.const_i64(&[-1, 1]);
        let s = b.op("Reshape", &[sim.as_str(), flat.as_str()], vec![]);
        let st = b.op("Transpose", &[&s], vec![attr::ints("perm", &[1, 0])]);
        let d = b.op("Sub", &[&s, &st], vec![]);
        let bw = 0.01;
        let k = scalar(b, -0.5 / (bw * bw), e);
        let d2 = b.op("Mul", &[&d, &d], vec![]);
        let ex = b.op("Mul", &[&d2, &k], vec![]);
        let kern = b.op("Exp", &[&ex], vec![]);
        let dens = b.op(
            "ReduceMean",
            &[kern.as_str()],
            vec![attr::ints("axes", &[1])],
        );
        let c = scalar(b, 1.0 / (bw * (2.0 * std::f64::consts::PI).sqrt()), e);
        let dens = b.op("Mul", &[&dens, &c], vec![]);
        let l = b.op("Log", &[&dens], vec![]);
        let h = b.op("ReduceMean", &[l.as_str()], vec![attr::int("keepdims", 0)]);
        b.op("Neg", &[&h], vec![])
    };
    check(Case::new(
        "pse_kde_entropy",
        vec![("x", vec![1, 6, 4], Dist::Sym)],
        &pse,
    ));

    // Pseudo-label loss: 20·focal + dice on sigmoid masks, + MSE(IoU prediction, soft IoU).
    let seg = |b: &mut Builder, e: i32| {
        let t = Rng(11)
            .array(&[1, 2, 4, 4], Dist::Sym)
            .mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        let t = b.constant("target", &as_type(&t, e));
        let one = scalar(b, 1.0, e);
        let p = b.op("Sigmoid", &["z"], vec![]);
        let q = b.op("Sub", &[&one, &p], vec![]);
        let two = scalar(b, 2.0, e);
        let lp = b.op("Log", &[&p], vec![]);
        let lq = b.op("Log", &[&q], vec![]);
        let qg = b.op("Pow", &[&q, &two], vec![]);
        let pg = b.op("Pow", &[&p, &two], vec![]);
        let alpha = scalar(b, 0.25, e);
        let nalpha = scalar(b, 0.75, e);
        let pos = b.op("Mul", &[&qg, &lp], vec![]);
        let pos = b.op("Mul", &[&pos, &t], vec![]);
        let pos = b.op("Mul", &[&pos, &alpha], vec![]);
        let nt = b.op("Sub", &[&one, &t], vec![]);
        let neg = b.op("Mul", &[&pg, &lq], vec![]);
        let neg = b.op("Mul", &[&neg, &nt], vec![]);
        let neg = b.op("Mul", &[&neg, &nalpha], vec![]);
        let f = b.op("Add", &[&pos, &neg], vec![]);
        let f = b.op("ReduceMean", &[f.as_str()], vec![attr::int("keepdims", 0)]);
        let k20 = scalar(b, -20.0, e);
        let focal = b.op("Mul", &[&f, &k20], vec![]);
        let axes = b.const_i64(&[2, 3]);
        let pt = b.op("Mul", &[&p, &t], vec![]);
        let inter = b.op("ReduceSum", &[pt.as_str(), axes.as_str()], vec![]);
        let sp = b.op("ReduceSum", &[p.as_str(), axes.as_str()], vec![]);
        let st = b.op("ReduceSum", &[t.as_str(), axes.as_str()], vec![]);
        let den = b.op("Add", &[&sp, &st], vec![]);
        let den1 = b.op("Add", &[&den, &one], vec![]);
        let num = b.op("Mul", &[&inter, &two], vec![]);
        let num1 = b.op("Add", &[&num, &one], vec![]);
        let ratio = b.op("Div", &[&num1, &den1], vec![]);
        let dice = b.op("Sub", &[&one, &ratio], vec![]);
        let dice = b.op(
            "ReduceMean",
            &[dice.as_str()],
            vec![attr::int("keepdims", 0)],
        );
        let union = b.op("Sub", &[&den, &inter], vec![]);
        let iou = b.op("Div", &[&inter, &union], vec![]);
        let diff = b.op("Sub", &["iou_pred", iou.as_str()], vec![]);
        let mse = b.op("Mul", &[&diff, &diff], vec![]);
        let mse = b.op(
            "ReduceMean",
            &[mse.as_str()],
            vec![attr::int("keepdims", 0)],
        );
        let l = b.op("Add", &[&focal, &dice], vec![]);
        b.op("Add", &[&l, &mse], vec![])
    };
    check(Case::new(
        "focal_dice_iou",
        vec![
            ("z", vec![1, 2, 4, 4], Dist::Sym),
            ("iou_pred", vec![1, 2], Dist::Sym),
        ],
        &seg,
    ));

    // Total variation: mean squared and mean absolute neighbour differences.
    let tv = |b: &mut Builder, _: i32| {
        let mut terms = Vec::new();
        for axis in [2i64, 3] {
            let (s0, e0, s1, e1, a) = (
                b.const_i64(&[1]),
                b.const_i64(&[i64::MAX]),
                b.const_i64(&[0]),
                b.const_i64(&[-1]),
                b.const_i64(&[axis]),
            );
            let hi = b.op(
                "Slice",
                &["x", s0.as_str(), e0.as_str(), a.as_str()],
                vec![],
            );
            let lo = b.op(
                "Slice",
                &["x", s1.as_str(), e1.as_str(), a.as_str()],
                vec![],
            );
            let d = b.op("Sub", &[&hi, &lo], vec![]);
            let d2 = b.op("Mul", &[&d, &d], vec![]);
            terms.push(b.op("ReduceMean", &[d2.as_str()], vec![attr::int("keepdims", 0)]));
            let ad = b.op("Abs", &[&d], vec![]);
            terms.push(b.op("ReduceMean", &[ad.as_str()], vec![attr::int("keepdims", 0)]));
        }
        b.op("Sum", &terms, vec![])
    };
    check(Case::new(
        "total_variation",
        vec![("x", vec![1, 3, 5, 6], Dist::Sym)],
        &tv,
    ));
}
