//! Whole graphs: errors, fan-out, initializers, the DFQ-SAM loss terms.

use super::*;

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

// The loss terms of data-free calibration-image synthesis (DESIGN.md §3), as graphs.

/// Patch-similarity entropy: cosine similarities of tokens, Gaussian KDE (bandwidth 0.01)
/// evaluated at the similarity values, entropy = −mean log density.
#[test]
fn dfq_patch_similarity_entropy() {
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
}

/// Pseudo-label loss: 20·focal + dice on sigmoid masks, + MSE(IoU prediction, soft IoU).
#[test]
fn dfq_pseudo_label_loss() {
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
}

/// Total variation: mean squared and mean absolute neighbour differences.
#[test]
fn dfq_total_variation() {
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
