//! The synthesis objective as one ONNX graph: encoder → decoder, plus the loss terms, then
//! differentiated with respect to the encoder's input image by `grad`.
//!
//! - patch-similarity entropy (PSE) of every encoder block's attention output (attn·V): cosine
//!   similarities between a fixed subset of tokens, their differential entropy estimated with a
//!   Gaussian KDE (bandwidth 0.01), maximized;
//! - the pseudo-label loss: 20·focal + dice + MSE(IoU prediction, soft IoU) between the
//!   decoder's low-res masks for a box prompt and the current pseudo-label;
//! - total variation of the image pulled toward a target level.

use crate::grad::{GradRequest, Gradient, build_gradient};
use crate::graph::proto::dtype;
use crate::graph::{Builder, GraphError, Model, Shapes, TensorData, attr, compose};
use ndarray::{ArrayD, IxDyn};

/// Names of the tensors a synthesis step feeds and reads.
pub const IMAGE: &str = "image";
pub const POINT_COORDS: &str = "dec/point_coords";
pub const POINT_LABELS: &str = "dec/point_labels";
pub const MASK_INPUT: &str = "dec/mask_input";
pub const HAS_MASK_INPUT: &str = "dec/has_mask_input";
pub const ORIG_IM_SIZE: &str = "dec/orig_im_size";
pub const LOW_RES_MASKS: &str = "dec/low_res_masks";
pub const IOU_PREDICTIONS: &str = "dec/iou_predictions";
pub const TARGET: &str = "synth/target";

/// Weights of the loss terms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossWeights {
    pub pse: f32,
    pub label: f32,
    pub tv: f32,
    /// Target mean absolute neighbour difference of the normalized image.
    pub tv_target: f32,
}

/// Tokens per attention map and similarity values per KDE evaluation: enough to estimate the
/// entropy, small enough that the KDE's pairwise matrix stays cheap.
const TOKENS: usize = 32;
const HEAD_BATCHES: usize = 4;
const KDE_POINTS: usize = 256;
const BANDWIDTH: f64 = 0.01;

/// The differentiated objective and the names of its parts.
#[derive(Debug, Clone)]
pub struct Objective {
    pub gradient: Gradient,
    pub loss: String,
    pub entropy: String,
    pub label_loss: String,
    pub tv: String,
    /// Number of encoder blocks whose attention output enters the entropy term.
    pub blocks: usize,
    /// Low-res mask size (the decoder's mask_input size).
    pub low_res: (usize, usize),
}

/// The attention outputs (attn·V) of an encoder: MatMuls whose first input is a Softmax.
pub fn attention_outputs(encoder: &Model) -> Vec<String> {
    let g = encoder.graph();
    let producers = encoder.producers();
    g.node
        .iter()
        .filter(|n| n.op_type == "MatMul")
        .filter(|n| {
            producers
                .get(&n.input[0])
                .is_some_and(|&p| g.node[p].op_type == "Softmax")
        })
        .map(|n| n.output[0].clone())
        .collect()
}

/// Builds and differentiates the objective for one image size `s` and low-res size.
pub fn build(
    encoder: &Model,
    decoder: &Model,
    s: usize,
    low_res: (usize, usize),
    weights: LossWeights,
    seed: u64,
) -> Result<Objective, crate::grad::GradError> {
    let attention = attention_outputs(encoder);
    let joint = compose(
        encoder,
        decoder,
        &[("image_embeddings", "image_embeddings")],
        "dec/",
    )?;
    let feeds = example_feeds(s, low_res);
    let feed_refs: Vec<(&str, &TensorData)> = feeds.iter().map(|(n, t)| (*n, t)).collect();
    let shapes = Shapes::probe(&joint, &feed_refs)?;

    let mut b = Builder::from_model(joint);
    b.set_prefix("synth/");
    b.input(
        TARGET,
        dtype::FLOAT,
        &[1, 1, low_res.0 as i64, low_res.1 as i64],
    );
    let mut rng = seed;
    let mut entropies = Vec::new();
    for t in &attention {
        let shape = shapes
            .get(t)
            .map(|i| i.shape.clone())
            .ok_or_else(|| crate::grad::GradError::NoShape(t.clone()))?;
        // [batch·heads, tokens, dim] (SAM's ViT) or [windows, heads, tokens, dim] (TinyViT's
        // windowed attention): the latter is taken as windows·heads rows of tokens
        let (tensor, shape) = match shape.as_slice() {
            [_, _, _] => (t.clone(), shape),
            &[w, h, n, d] => {
                let rows = b.const_i64(&[w * h, n, d]);
                (
                    b.op("Reshape", &[t.as_str(), rows.as_str()], vec![]),
                    vec![w * h, n, d],
                )
            }
            _ => continue,
        };
        entropies.push(patch_similarity_entropy(&mut b, &tensor, &shape, &mut rng));
    }
    let blocks = entropies.len();
    let entropy = mean_of(&mut b, &entropies);
    let label_loss = pseudo_label_loss(&mut b);
    let tv = total_variation(&mut b, IMAGE);

    let (wp, wl, wt) = (
        scalar(&mut b, -weights.pse),
        scalar(&mut b, weights.label),
        scalar(&mut b, weights.tv),
    );
    let target = scalar(&mut b, weights.tv_target);
    let dtv = b.op("Sub", &[tv.as_str(), target.as_str()], vec![]);
    let tv_pen = b.op("Mul", &[dtv.as_str(), dtv.as_str()], vec![]);
    let terms = [
        b.op("Mul", &[entropy.as_str(), wp.as_str()], vec![]),
        b.op("Mul", &[label_loss.as_str(), wl.as_str()], vec![]),
        b.op("Mul", &[tv_pen.as_str(), wt.as_str()], vec![]),
    ];
    let loss = b.op("Sum", &terms, vec![]);
    let model = b.finish();

    let mut feeds_with_target = feeds;
    feeds_with_target.push((
        TARGET,
        TensorData::F32(ArrayD::zeros(IxDyn(&[1, 1, low_res.0, low_res.1]))),
    ));
    let refs: Vec<(&str, &TensorData)> = feeds_with_target.iter().map(|(n, t)| (*n, t)).collect();
    let mut probed = model.clone();
    probed.set_outputs(&[loss.as_str()])?;
    let shapes = Shapes::probe(&probed, &refs)?;
    let request = GradRequest {
        output: loss.clone(),
        wrt: vec![IMAGE.to_string()],
        keep: vec![
            LOW_RES_MASKS.to_string(),
            IOU_PREDICTIONS.to_string(),
            entropy.clone(),
            label_loss.clone(),
            tv.clone(),
        ],
    };
    let gradient = build_gradient(&probed, &request, &shapes)?;
    Ok(Objective {
        gradient,
        loss,
        entropy,
        label_loss,
        tv,
        blocks,
        low_res,
    })
}

/// Feeds of the right shapes for probing (a box prompt, no mask input).
fn example_feeds(s: usize, low_res: (usize, usize)) -> Vec<(&'static str, TensorData)> {
    let sf = s as f32;
    vec![
        (IMAGE, TensorData::F32(ArrayD::zeros(IxDyn(&[1, 3, s, s])))),
        (
            POINT_COORDS,
            TensorData::F32(
                ndarray::arr3(&[[[0.3 * sf, 0.3 * sf], [0.6 * sf, 0.6 * sf]]]).into_dyn(),
            ),
        ),
        (
            POINT_LABELS,
            TensorData::F32(ndarray::arr2(&[[2.0f32, 3.0]]).into_dyn()),
        ),
        (
            MASK_INPUT,
            TensorData::F32(ArrayD::zeros(IxDyn(&[1, 1, low_res.0, low_res.1]))),
        ),
        (
            HAS_MASK_INPUT,
            TensorData::F32(ndarray::arr1(&[0.0f32]).into_dyn()),
        ),
        (
            ORIG_IM_SIZE,
            TensorData::F32(ndarray::arr1(&[sf, sf]).into_dyn()),
        ),
    ]
}

fn scalar(b: &mut Builder, v: f32) -> String {
    b.constant("k", &TensorData::F32(ndarray::arr0(v).into_dyn()))
}

fn gather(b: &mut Builder, x: &str, indices: &[i64], axis: i64) -> String {
    let idx = b.const_i64(indices);
    b.op("Gather", &[x, idx.as_str()], vec![attr::int("axis", axis)])
}

fn mean_all(b: &mut Builder, x: &str) -> String {
    b.op("ReduceMean", &[x], vec![attr::int("keepdims", 0)])
}

fn mean_of(b: &mut Builder, parts: &[String]) -> String {
    if parts.is_empty() {
        return scalar(b, 0.0);
    }
    let sum = b.op("Sum", parts, vec![]);
    let n = scalar(b, parts.len() as f32);
    b.op("Div", &[sum.as_str(), n.as_str()], vec![])
}

fn next(rng: &mut u64) -> u64 {
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *rng >> 33
}

/// `count` evenly spaced indices in 0..n with a random offset.
fn spread(n: usize, count: usize, rng: &mut u64) -> Vec<i64> {
    let count = count.min(n).max(1);
    let step = n / count;
    let offset = if step > 1 {
        next(rng) as usize % step
    } else {
        0
    };
    (0..count).map(|i| (i * step + offset) as i64).collect()
}

/// Entropy of the cosine similarities between tokens of an attention output [BH, T, d].
fn patch_similarity_entropy(b: &mut Builder, t: &str, shape: &[i64], rng: &mut u64) -> String {
    let (bh, tokens) = (shape[0] as usize, shape[1] as usize);
    let heads = spread(bh, HEAD_BATCHES, rng);
    let toks = spread(tokens, TOKENS, rng);
    let (nh, k) = (heads.len(), toks.len());
    let x = gather(b, t, &heads, 0);
    let x = gather(b, &x, &toks, 1);
    let sq = b.op("Mul", &[x.as_str(), x.as_str()], vec![]);
    let last = b.const_i64(&[-1]);
    let n2 = b.op(
        "ReduceSum",
        &[sq.as_str(), last.as_str()],
        vec![attr::int("keepdims", 1)],
    );
    let eps = scalar(b, 1e-8);
    let n2 = b.op("Add", &[n2.as_str(), eps.as_str()], vec![]);
    let norm = b.op("Sqrt", &[n2.as_str()], vec![]);
    let xn = b.op("Div", &[x.as_str(), norm.as_str()], vec![]);
    let xt = b.op(
        "Transpose",
        &[xn.as_str()],
        vec![attr::ints("perm", &[0, 2, 1])],
    );
    let sim = b.op("MatMul", &[xn.as_str(), xt.as_str()], vec![]);
    let flat = b.const_i64(&[-1]);
    let sim = b.op("Reshape", &[sim.as_str(), flat.as_str()], vec![]);
    // Pairs i < j only: the diagonal is always 1 and the matrix symmetric.
    let mut pairs = Vec::new();
    for h in 0..nh {
        for i in 0..k {
            for j in i + 1..k {
                pairs.push((h * k * k + i * k + j) as i64);
            }
        }
    }
    let values = gather(b, &sim, &pairs, 0);
    let eval_points = spread(pairs.len(), KDE_POINTS, rng);
    let at = gather(b, &values, &eval_points, 0);
    let col = b.const_i64(&[-1, 1]);
    let at = b.op("Reshape", &[at.as_str(), col.as_str()], vec![]);
    let row = b.const_i64(&[1, -1]);
    let all = b.op("Reshape", &[values.as_str(), row.as_str()], vec![]);
    let d = b.op("Sub", &[at.as_str(), all.as_str()], vec![]);
    let d2 = b.op("Mul", &[d.as_str(), d.as_str()], vec![]);
    let k_exp = scalar(b, (-0.5 / (BANDWIDTH * BANDWIDTH)) as f32);
    let e = b.op("Mul", &[d2.as_str(), k_exp.as_str()], vec![]);
    let kern = b.op("Exp", &[e.as_str()], vec![]);
    // Opset 17: ReduceMean takes its axes as an attribute.
    let dens = b.op(
        "ReduceMean",
        &[kern.as_str()],
        vec![attr::ints("axes", &[1]), attr::int("keepdims", 0)],
    );
    let c = scalar(
        b,
        (1.0 / (BANDWIDTH * (2.0 * std::f64::consts::PI).sqrt())) as f32,
    );
    let dens = b.op("Mul", &[dens.as_str(), c.as_str()], vec![]);
    let log = b.op("Log", &[dens.as_str()], vec![]);
    let h = mean_all(b, &log);
    b.op("Neg", &[h.as_str()], vec![])
}

/// 20·focal + dice + MSE(IoU prediction, soft IoU), every decoder mask against the target.
fn pseudo_label_loss(b: &mut Builder) -> String {
    // Clipped logits keep log σ finite (a saturated σ would give 0·(−∞) in the focal term).
    let (lo, hi) = (scalar(b, -15.0), scalar(b, 15.0));
    let z = b.op("Clip", &[LOW_RES_MASKS, lo.as_str(), hi.as_str()], vec![]);
    let t = TARGET;
    let one = scalar(b, 1.0);
    let two = scalar(b, 2.0);
    let p = b.op("Sigmoid", &[z.as_str()], vec![]);
    let q = b.op("Sub", &[one.as_str(), p.as_str()], vec![]);
    let lp = b.op("Log", &[p.as_str()], vec![]);
    let lq = b.op("Log", &[q.as_str()], vec![]);
    let qg = b.op("Mul", &[q.as_str(), q.as_str()], vec![]);
    let pg = b.op("Mul", &[p.as_str(), p.as_str()], vec![]);
    let (alpha, nalpha) = (scalar(b, 0.25), scalar(b, 0.75));
    let pos = b.op("Mul", &[qg.as_str(), lp.as_str()], vec![]);
    let pos = b.op("Mul", &[pos.as_str(), t], vec![]);
    let pos = b.op("Mul", &[pos.as_str(), alpha.as_str()], vec![]);
    let nt = b.op("Sub", &[one.as_str(), t], vec![]);
    let neg = b.op("Mul", &[pg.as_str(), lq.as_str()], vec![]);
    let neg = b.op("Mul", &[neg.as_str(), nt.as_str()], vec![]);
    let neg = b.op("Mul", &[neg.as_str(), nalpha.as_str()], vec![]);
    let f = b.op("Add", &[pos.as_str(), neg.as_str()], vec![]);
    let f = mean_all(b, &f);
    let k20 = scalar(b, -20.0);
    let focal = b.op("Mul", &[f.as_str(), k20.as_str()], vec![]);
    let axes = b.const_i64(&[2, 3]);
    let pt = b.op("Mul", &[p.as_str(), t], vec![]);
    let sum = |b: &mut Builder, x: &str| {
        b.op(
            "ReduceSum",
            &[x, axes.as_str()],
            vec![attr::int("keepdims", 0)],
        )
    };
    let inter = sum(b, &pt);
    let sp = sum(b, &p);
    let st = sum(b, t);
    let den = b.op("Add", &[sp.as_str(), st.as_str()], vec![]);
    let den1 = b.op("Add", &[den.as_str(), one.as_str()], vec![]);
    let num = b.op("Mul", &[inter.as_str(), two.as_str()], vec![]);
    let num1 = b.op("Add", &[num.as_str(), one.as_str()], vec![]);
    let ratio = b.op("Div", &[num1.as_str(), den1.as_str()], vec![]);
    let dice = b.op("Sub", &[one.as_str(), ratio.as_str()], vec![]);
    let dice = mean_all(b, &dice);
    let union = b.op("Sub", &[den1.as_str(), inter.as_str()], vec![]);
    let iou = b.op("Div", &[inter.as_str(), union.as_str()], vec![]);
    let diff = b.op("Sub", &[IOU_PREDICTIONS, iou.as_str()], vec![]);
    let sq = b.op("Mul", &[diff.as_str(), diff.as_str()], vec![]);
    let mse = mean_all(b, &sq);
    b.op("Sum", &[focal, dice, mse], vec![])
}

/// Mean absolute difference between horizontal and vertical neighbours.
fn total_variation(b: &mut Builder, x: &str) -> String {
    let mut terms = Vec::new();
    for axis in [2i64, 3] {
        let (s0, e0, s1, e1, a) = (
            b.const_i64(&[1]),
            b.const_i64(&[i64::MAX]),
            b.const_i64(&[0]),
            b.const_i64(&[-1]),
            b.const_i64(&[axis]),
        );
        let hi = b.op("Slice", &[x, s0.as_str(), e0.as_str(), a.as_str()], vec![]);
        let lo = b.op("Slice", &[x, s1.as_str(), e1.as_str(), a.as_str()], vec![]);
        let d = b.op("Sub", &[hi.as_str(), lo.as_str()], vec![]);
        let ad = b.op("Abs", &[d.as_str()], vec![]);
        terms.push(mean_all(b, &ad));
    }
    mean_of(b, &terms)
}

impl Objective {
    /// The gradient model's output holding ∂loss/∂image.
    pub fn image_gradient(&self) -> Result<&str, GraphError> {
        self.gradient
            .gradient_of(IMAGE)
            .ok_or_else(|| GraphError::UnknownTensor(format!("{IMAGE}_grad")))
    }
}
