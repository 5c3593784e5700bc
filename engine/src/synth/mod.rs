//! DFQ-SAM calibration-image synthesis (DESIGN.md §3, stage 1): grey images optimized from
//! Gaussian noise by Adam on the gradient of `objective` (patch-similarity entropy, evolving
//! pseudo-positive labels, total variation), with roll/flip augmentation and clamping to the
//! valid pixel range. Reads no image at all: the model is the only input.
//!
//! Finished images are written to a cache folder keyed by the model's weights and the
//! configuration, one at a time, so a cancelled or interrupted run resumes where it stopped.

mod labels;
pub mod objective;
mod shipped;

pub use labels::{Augment, bounding_box, evolve, seed_ellipse};
pub use objective::{LossWeights, Objective, attention_outputs};
pub use shipped::{load_shipped, ship};

use crate::graph::write_atomic;
use crate::graph::{GraphError, Model, Runner, TensorData};
use crate::model::ModelBundle;
use crate::quant::{QuantError, io_error};
use crate::runtime::SessionConfig;
use ndarray::{Array2, ArrayD, Axis, IxDyn};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How a synthetic set is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    pub images: usize,
    /// Adam steps per image.
    pub steps: usize,
    pub lr: f32,
    pub betas: (f32, f32),
    /// Fraction of the steps spent warming the learning rate up.
    pub warmup: f32,
    pub weights: LossWeights,
    /// Pseudo-labels are replaced by the model's own mask every this many steps.
    pub evolve_every: usize,
    /// Largest roll in pixels (even, so the low-res labels roll by whole cells).
    pub max_roll: usize,
    pub seed: u64,
}

impl SynthConfig {
    /// A short hash of the configuration (part of the cache key).
    pub fn key(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..6])
    }
}

/// Progress of the synthesis: image `image` of `images`, step `step` of `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthProgress {
    pub image: usize,
    pub images: usize,
    pub step: usize,
    pub steps: usize,
    /// Loss parts of the last step: total, entropy (mean over blocks), label loss, TV.
    pub loss: f32,
    pub entropy: f32,
    pub label_loss: f32,
    pub tv: f32,
}

/// The synthetic calibration set.
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    /// 8-bit grey images at the model's input size.
    pub images: Vec<Array2<u8>>,
    /// Final pseudo-labels on the low-res grid (0/255).
    pub labels: Vec<Array2<u8>>,
    /// sha256 of all images' pixels, in order.
    pub hash: String,
    pub dir: PathBuf,
}

/// A small deterministic generator (LCG; quality is ample for noise and jitter).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    pub fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Makes (or loads from `cache`) the synthetic set for `bundle`.
pub fn synthesize(
    bundle: &ModelBundle,
    config: &SynthConfig,
    cache: &Path,
    session: &SessionConfig,
    progress: &mut dyn FnMut(&SynthProgress) -> bool,
) -> Result<SyntheticSet, QuantError> {
    let dir = cache.join(bundle.embedding_id()).join(config.key());
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(config)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let (mut images, mut labels) = load_cached(&dir, config.images)?;
    if images.len() < config.images {
        let encoder = Model::load(&bundle.encoder_path)?;
        let decoder = Model::load(&bundle.decoder_path)?;
        let s = bundle.manifest.input_size as usize;
        let low_res = mask_input_size(&decoder)?;
        let objective =
            objective::build(&encoder, &decoder, s, low_res, config.weights, config.seed)?;
        drop((encoder, decoder));
        let mut runner = Runner::new(&objective.gradient.model, "synthesis", session)?;
        let frame = PixelFrame::new(&bundle.manifest.normalize);
        for index in images.len()..config.images {
            let (image, label) =
                synthesize_one(&mut runner, &objective, &frame, config, index, s, progress)?;
            save_png(&dir.join(format!("image_{index:03}.png")), &image)?;
            save_png(&dir.join(format!("label_{index:03}.png")), &label)?;
            images.push(image);
            labels.push(label);
        }
    }
    Ok(SyntheticSet {
        hash: set_hash(&images),
        images,
        labels,
        dir,
    })
}

/// sha256 of the images' pixels, in order: what names a set, shipped or cached.
fn set_hash(images: &[Array2<u8>]) -> String {
    let mut digest = Sha256::new();
    for image in images {
        // The pixels in row-major order; copied only if the array is not laid out that way.
        match image.as_slice() {
            Some(pixels) => digest.update(pixels),
            None => digest.update(image.iter().copied().collect::<Vec<u8>>()),
        }
    }
    hex::encode(digest.finalize())
}

/// The model's input normalization seen from one grey value v in "normalized grey" units:
/// pixel = mean0 + std0·v, channel c = a_c·v + b_c.
struct PixelFrame {
    mean0: f32,
    std0: f32,
    a: [f32; 3],
    b: [f32; 3],
}

impl PixelFrame {
    fn new(n: &crate::model::Normalize) -> Self {
        let mean0 = n.mean.iter().sum::<f32>() / 3.0;
        let std0 = n.std.iter().sum::<f32>() / 3.0;
        let a = [0, 1, 2].map(|c| std0 / n.std[c]);
        let b = [0, 1, 2].map(|c| (mean0 - n.mean[c]) / n.std[c]);
        Self { mean0, std0, a, b }
    }
    fn v_range(&self) -> (f32, f32) {
        (-self.mean0 / self.std0, (255.0 - self.mean0) / self.std0)
    }
    fn encoder_input(&self, v: &Array2<f32>) -> TensorData {
        let (h, w) = v.dim();
        let mut x = ArrayD::<f32>::zeros(IxDyn(&[1, 3, h, w]));
        for c in 0..3 {
            let mut plane = x.index_axis_mut(Axis(0), 0);
            let mut plane = plane.index_axis_mut(Axis(0), c);
            plane.zip_mut_with(&v.view().into_dyn(), |o, &vi| {
                *o = self.a[c] * vi + self.b[c];
            });
        }
        TensorData::F32(x)
    }
    fn to_pixels(&self, v: &Array2<f32>) -> Array2<u8> {
        v.mapv(|vi| (self.mean0 + self.std0 * vi).round().clamp(0.0, 255.0) as u8)
    }
}

#[allow(clippy::too_many_arguments)]
fn synthesize_one(
    runner: &mut Runner,
    objective: &Objective,
    frame: &PixelFrame,
    config: &SynthConfig,
    index: usize,
    s: usize,
    progress: &mut dyn FnMut(&SynthProgress) -> bool,
) -> Result<(Array2<u8>, Array2<u8>), QuantError> {
    let mut rng = Rng::new(config.seed.wrapping_add(index as u64 * 7919));
    let (lh, lw) = objective.low_res;
    let factor = (s / lw.max(1)).max(1) as isize;
    let (vmin, vmax) = frame.v_range();
    let mut v = Array2::from_shape_fn((s, s), |_| rng.normal() as f32);
    let mut label = seed_ellipse(lh, lw, &mut rng);
    let mut adam = Adam::new((s, s), config.betas);
    let grad_name = objective.image_gradient()?.to_string();
    let warm = ((config.steps as f32 * config.warmup).ceil() as usize).max(1);
    let zeros_mask = TensorData::F32(ArrayD::zeros(IxDyn(&[1, 1, lh, lw])));
    let no_mask = TensorData::F32(ndarray::arr1(&[0.0f32]).into_dyn());
    let orig = TensorData::F32(ndarray::arr1(&[s as f32, s as f32]).into_dyn());
    let labels = TensorData::F32(ndarray::arr2(&[[2.0f32, 3.0]]).into_dyn());
    for step in 0..config.steps {
        let roll = |rng: &mut Rng| {
            let r = (config.max_roll as isize / factor).max(0);
            (rng.range(-(r as f64), r as f64 + 1.0).floor() as isize) * factor
        };
        let aug = Augment {
            dy: roll(&mut rng),
            dx: roll(&mut rng),
            flip: rng.uniform() < 0.5,
        };
        let coarse = aug.scaled_down(factor);
        let target = coarse.apply(&label);
        let Some((x0, y0, x1, y1)) = bounding_box(&target) else {
            break;
        };
        let f = factor as f32;
        let (bw, bh) = ((x1 - x0) as f32 * f, (y1 - y0) as f32 * f);
        let mut jitter = |len: f32| (rng.range(-0.05, 0.05) as f32) * len;
        let coords = ndarray::arr3(&[[
            [x0 as f32 * f + jitter(bw), y0 as f32 * f + jitter(bh)],
            [x1 as f32 * f + jitter(bw), y1 as f32 * f + jitter(bh)],
        ]]);
        let coords = TensorData::F32(coords.mapv(|c| c.clamp(0.0, s as f32)).into_dyn());
        let image = frame.encoder_input(&aug.apply(&v));
        let target_t = TensorData::F32(
            target
                .clone()
                .insert_axis(Axis(0))
                .insert_axis(Axis(0))
                .into_dyn(),
        );
        let feeds: Vec<(&str, &TensorData)> = vec![
            (objective::IMAGE, &image),
            (objective::POINT_COORDS, &coords),
            (objective::POINT_LABELS, &labels),
            (objective::MASK_INPUT, &zeros_mask),
            (objective::HAS_MASK_INPUT, &no_mask),
            (objective::ORIG_IM_SIZE, &orig),
            (objective::TARGET, &target_t),
        ];
        let out = runner.run(&feeds)?;
        let get = |name: &str| -> Result<ArrayD<f32>, QuantError> {
            match out.get(name) {
                Some(TensorData::F32(a)) => Ok(a.clone()),
                _ => Err(GraphError::UnknownTensor(name.to_string()).into()),
            }
        };
        let scalar = |name: &str| get(name).map(|a| a.iter().copied().next().unwrap_or(0.0));
        let g = get(&grad_name)?;
        let mut gv = Array2::<f32>::zeros((s, s));
        for c in 0..3 {
            let plane = g.index_axis(Axis(0), 0);
            let plane = plane.index_axis(Axis(0), c);
            gv.zip_mut_with(&plane, |o, &gi| *o += frame.a[c] * gi);
        }
        let gv = aug.invert(&gv);
        let lr = schedule(config.lr, step, warm, config.steps);
        adam.step(&mut v, &gv, lr);
        v.mapv_inplace(|x| x.clamp(vmin, vmax));

        if step >= warm && (step + 1) % config.evolve_every.max(1) == 0 {
            let masks = get(objective::LOW_RES_MASKS)?;
            let ious = get(objective::IOU_PREDICTIONS)?;
            let best = (1..masks.shape()[1])
                .max_by(|&a, &b| ious[[0, a]].total_cmp(&ious[[0, b]]))
                .unwrap_or(0);
            let logits = masks
                .index_axis(Axis(0), 0)
                .index_axis(Axis(0), best)
                .to_owned()
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|e| QuantError::Calibration(e.to_string()))?;
            if let Some(next) = evolve(&label, &coarse.invert(&logits), 4, 16) {
                label = next;
            }
        }
        let report = SynthProgress {
            image: index,
            images: config.images,
            step: step + 1,
            steps: config.steps,
            loss: scalar(&objective.loss)?,
            entropy: scalar(&objective.entropy)?,
            label_loss: scalar(&objective.label_loss)?,
            tv: scalar(&objective.tv)?,
        };
        if !progress(&report) {
            return Err(QuantError::Cancelled);
        }
    }
    Ok((
        frame.to_pixels(&v),
        label.mapv(|l| if l > 0.5 { 255 } else { 0 }),
    ))
}

/// Linear warm-up, then cosine decay to zero.
fn schedule(lr: f32, step: usize, warm: usize, total: usize) -> f32 {
    if step < warm {
        return lr * (step + 1) as f32 / warm as f32;
    }
    let t = (step - warm) as f32 / (total - warm).max(1) as f32;
    lr * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())
}

/// Adam on one image.
struct Adam {
    m: Array2<f32>,
    v: Array2<f32>,
    betas: (f32, f32),
    t: i32,
}

impl Adam {
    fn new(shape: (usize, usize), betas: (f32, f32)) -> Self {
        Self {
            m: Array2::zeros(shape),
            v: Array2::zeros(shape),
            betas,
            t: 0,
        }
    }
    fn step(&mut self, x: &mut Array2<f32>, g: &Array2<f32>, lr: f32) {
        let (b1, b2) = self.betas;
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        ndarray::Zip::from(x)
            .and(&mut self.m)
            .and(&mut self.v)
            .and(g)
            .for_each(|x, m, v, &g| {
                let g = if g.is_finite() { g } else { 0.0 };
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *x -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
            });
    }
}

/// The decoder's mask_input [1,1,h,w] size.
fn mask_input_size(decoder: &Model) -> Result<(usize, usize), QuantError> {
    match decoder.input_dims("mask_input").as_deref() {
        Some([_, _, Some(h), Some(w)]) => Ok((*h, *w)),
        _ => Err(QuantError::Bundle(
            "the decoder's mask_input has no static [1, 1, h, w] shape".into(),
        )),
    }
}

pub(crate) fn save_png(path: &Path, a: &Array2<u8>) -> Result<(), QuantError> {
    let (h, w) = a.dim();
    let img = image::GrayImage::from_raw(w as u32, h as u32, a.iter().copied().collect())
        .ok_or_else(|| io_error(path, "image buffer does not match its size"))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| io_error(path, e))?;
    Ok(write_atomic(path, &bytes)?)
}

fn load_png(path: &Path) -> Option<Array2<u8>> {
    let img = image::open(path).ok()?.to_luma8();
    let (w, h) = img.dimensions();
    Array2::from_shape_vec((h as usize, w as usize), img.into_raw()).ok()
}

/// Images and their pseudo-labels.
type ImagesAndLabels = (Vec<Array2<u8>>, Vec<Array2<u8>>);

/// The images (and labels) already finished in `dir`, in order, up to `limit`.
fn load_cached(dir: &Path, limit: usize) -> Result<ImagesAndLabels, QuantError> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for index in 0..limit {
        let image = load_png(&dir.join(format!("image_{index:03}.png")));
        let label = load_png(&dir.join(format!("label_{index:03}.png")));
        match (image, label) {
            (Some(i), Some(l)) => {
                images.push(i);
                labels.push(l);
            }
            _ => break,
        }
    }
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let lrs: Vec<f32> = (0..100).map(|s| schedule(0.2, s, 10, 100)).collect();
        assert!(lrs[0] < lrs[5] && lrs[5] < lrs[9]);
        assert!((lrs[9] - 0.2).abs() < 1e-6);
        assert!(lrs[10] >= lrs[50] && lrs[50] > lrs[99]);
        assert!(lrs[99] < 0.001);
    }

    #[test]
    fn adam_descends_a_quadratic() {
        let mut x = Array2::from_elem((2, 2), 3.0f32);
        let mut adam = Adam::new((2, 2), (0.5, 0.9));
        for _ in 0..200 {
            let g = x.mapv(|v| 2.0 * v);
            adam.step(&mut x, &g, 0.05);
        }
        assert!(x.iter().all(|v| v.abs() < 0.1), "{x:?}");
    }

    #[test]
    fn config_key_changes_with_the_config() {
        let a = crate::quant::Preset::Quick.synth_config();
        let mut b = a.clone();
        b.steps += 1;
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key(), a.clone().key());
    }
}
