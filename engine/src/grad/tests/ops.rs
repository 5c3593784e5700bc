//! Each op's gradient rule against finite differences.

use super::*;

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
