//! The SAM model: encoder and decoder sessions behind `embed` and `predict`.

use super::bundle::ModelBundle;
use super::error::ModelError;
use super::manifest::LoneOutput;
use super::postprocess::upscale_mask_logits;
use super::preprocess::{InputFrame, InputRecipe, encoder_input};
use super::prompt::Prompt;
use crate::graph;
use crate::runtime::{SessionConfig, load_session, load_session_from_memory};
use ndarray::{Array1, Array2, Array3, Array4, ArrayView2, Axis, s};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef, ValueType};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const ENCODER_INPUT: &str = "image";
const ENCODER_OUTPUT: &str = "image_embeddings";
const DECODER_INPUTS: [&str; 6] = [
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
];
const MASKS: &str = "masks";
const IOU_PREDICTIONS: &str = "iou_predictions";
const LOW_RES_MASKS: &str = "low_res_masks";
/// The outputs `predict` uses; the contract's third, `masks`, is only read by `graph_mask_logits`.
const DECODER_OUTPUTS: [&str; 2] = [IOU_PREDICTIONS, LOW_RES_MASKS];

/// The encoder's output for one slice; reusable for any number of prompts.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// [1, C, h, w] image embeddings.
    pub tensor: Array4<f32>,
    pub frame: InputFrame,
}

impl Embedding {
    /// Size in bytes, for cache budgets.
    pub fn size_bytes(&self) -> usize {
        self.tensor.len() * std::mem::size_of::<f32>()
    }
}

/// The decoder's answer to one prompt.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The chosen mask at the original image size (true = organ).
    pub mask: Array2<bool>,
    /// The chosen mask's low-res logits (4h×4w), to feed back as `Prompt::previous_logits`.
    pub low_res_logits: Array2<f32>,
    /// The decoder's predicted IoU of the chosen mask.
    pub iou: f32,
    /// Predicted IoU of every decoder output (0: single-mask output, 1..: multimask candidates).
    pub candidate_ious: Vec<f32>,
    /// Which output was chosen.
    pub chosen: usize,
}

impl Prediction {
    /// Number of mask pixels.
    pub fn area(&self) -> usize {
        self.mask.iter().filter(|v| **v).count()
    }
}

/// A loaded SAM bundle. Sessions are behind mutexes because ONNX Runtime runs take `&mut`.
pub struct SamModel {
    bundle: ModelBundle,
    config: SessionConfig,
    encoder: Mutex<Session>,
    /// The decoder without its `masks` output (see `load_decoder_without_masks`).
    decoder: Mutex<Session>,
    /// The click decoder (`files.click_decoder`), likewise, for prompts with a click in them.
    click_decoder: Option<Mutex<Session>>,
    /// The decoder file as it is, opened on first use by `graph_mask_logits` only.
    full_decoder: Mutex<Option<Session>>,
    /// (height, width) of the decoders' `mask_input`.
    mask_input_size: (usize, usize),
}

impl SamModel {
    /// Opens and verifies the bundle in `dir` and starts its sessions.
    pub fn load(dir: &Path, config: &SessionConfig) -> Result<Self, ModelError> {
        let bundle = ModelBundle::open(dir)?;
        let encoder = load_encoder(&bundle, config)?;
        let decoder = load_decoder_without_masks(&bundle.decoder_path, config)?;
        check_names(
            &encoder,
            &bundle.encoder_path,
            &[ENCODER_INPUT],
            &[ENCODER_OUTPUT],
        )?;
        check_names(
            &decoder,
            &bundle.decoder_path,
            &DECODER_INPUTS,
            &DECODER_OUTPUTS,
        )?;
        check_encoder_input(
            &encoder,
            &bundle.encoder_path,
            bundle.manifest.input_size as usize,
        )?;
        let size = bundle.manifest.input_size as usize;
        let mask_size = mask_input_size(&decoder, &bundle.decoder_path, size)?;
        let click_decoder = match &bundle.click_decoder_path {
            Some(path) => {
                let session = load_decoder_without_masks(path, config)?;
                check_names(&session, path, &DECODER_INPUTS, &DECODER_OUTPUTS)?;
                if mask_input_size(&session, path, size)? != mask_size {
                    return Err(contract(
                        path,
                        "its mask input differs from the box decoder's",
                    ));
                }
                Some(Mutex::new(session))
            }
            None => None,
        };
        Ok(Self {
            bundle,
            config: config.clone(),
            encoder: Mutex::new(encoder),
            decoder: Mutex::new(decoder),
            click_decoder,
            full_decoder: Mutex::new(None),
            mask_input_size: mask_size,
        })
    }

    pub fn bundle(&self) -> &ModelBundle {
        &self.bundle
    }

    /// Size of the low-res logits that `predict` returns and accepts back.
    pub fn low_res_size(&self) -> (usize, usize) {
        self.mask_input_size
    }

    /// Runs the encoder on an 8-bit grey slice (already mapped by the manifest's intensity rule).
    pub fn embed(&self, image: ArrayView2<u8>) -> Result<Embedding, ModelError> {
        let recipe = InputRecipe::of(&self.bundle.manifest);
        let (input, frame) = encoder_input(image, &recipe)?;
        let path = &self.bundle.encoder_path;
        let mut session = lock(&self.encoder, path)?;
        let tensor = Tensor::from_array(input).map_err(|e| inference(path, e))?;
        let outputs = session
            .run(ort::inputs![ENCODER_INPUT => tensor])
            .map_err(|e| inference(path, e))?;
        let embeddings = outputs[ENCODER_OUTPUT]
            .try_extract_array::<f32>()
            .map_err(|e| inference(path, e))?
            .to_owned()
            .into_dimensionality::<ndarray::Ix4>()
            .map_err(|_| contract(path, "image_embeddings must have 4 dimensions [1,C,h,w]"))?;
        let (_, _, h, w) = embeddings.dim();
        if (4 * h, 4 * w) != self.mask_input_size {
            return Err(contract(
                path,
                &format!(
                    "embedding grid {h}×{w} does not match the decoder's mask input {:?} (expected 4× the grid)",
                    self.mask_input_size
                ),
            ));
        }
        Ok(Embedding {
            tensor: embeddings,
            frame,
        })
    }

    /// Runs the decoder for one prompt on a slice's embedding.
    pub fn predict(
        &self,
        embedding: &Embedding,
        prompt: &Prompt,
    ) -> Result<Prediction, ModelError> {
        let inputs = self.decoder_inputs(embedding, prompt)?;
        let (session, path) = match (&self.click_decoder, &self.bundle.click_decoder_path) {
            (Some(session), Some(path)) if !prompt.points.is_empty() => (session, path),
            _ => (&self.decoder, &self.bundle.decoder_path),
        };
        let (candidate_ious, chosen, low_res_logits) = {
            let mut decoder = lock(session, path)?;
            let outputs = decoder.run(inputs).map_err(|e| inference(path, e))?;
            let extract = |name: &str| {
                outputs[name]
                    .try_extract_array::<f32>()
                    .map_err(|e| inference(path, e))
            };
            let ious = extract(IOU_PREDICTIONS)?;
            let low_res = extract(LOW_RES_MASKS)?;
            let candidate_ious: Vec<f32> = ious.iter().copied().collect();
            let n = candidate_ious.len();
            if n == 0 || low_res.ndim() != 4 || low_res.shape()[1] != n || low_res.is_empty() {
                return Err(contract(
                    path,
                    &format!(
                        "decoder outputs disagree: iou_predictions {:?}, low_res_masks {:?}",
                        ious.shape(),
                        low_res.shape()
                    ),
                ));
            }
            let rules = self.bundle.manifest.prompts;
            let lone_rule = if prompt.points.is_empty() {
                rules.box_output
            } else {
                rules.click_output
            };
            let best_of_candidates = prompt.is_ambiguous() && lone_rule == LoneOutput::Best;
            let chosen = choose_output(&candidate_ious, best_of_candidates);
            let low_res_logits = low_res.slice(s![0, chosen, .., ..]).to_owned();
            (candidate_ious, chosen, low_res_logits)
        };
        // Upsampled after the session is released, so another prompt can use the decoder meanwhile.
        let mask = upscale_mask_logits(
            low_res_logits.view(),
            self.bundle.manifest.input_size as usize,
            embedding.frame.original,
        )
        .mapv(|v| v > 0.0);
        Ok(Prediction {
            mask,
            low_res_logits,
            iou: candidate_ious[chosen],
            candidate_ious,
            chosen,
        })
    }

    /// The decoder graph's own full-size logits of output `chosen` for `prompt` (its `masks`
    /// output, which `predict` does without): the reference that `predict`'s upsampling is
    /// checked against. The first call opens a second decoder session, the file as it is. Always
    /// the box decoder (`files.decoder`), also for a prompt that `predict` gives the click decoder.
    pub fn graph_mask_logits(
        &self,
        embedding: &Embedding,
        prompt: &Prompt,
        chosen: usize,
    ) -> Result<Array2<f32>, ModelError> {
        let inputs = self.decoder_inputs(embedding, prompt)?;
        let path = &self.bundle.decoder_path;
        let mut full = lock(&self.full_decoder, path)?;
        let session = match &mut *full {
            Some(session) => session,
            empty => {
                let session = load_session(path, &self.config)?;
                check_names(&session, path, &DECODER_INPUTS, &[MASKS])?;
                empty.insert(session)
            }
        };
        let outputs = session.run(inputs).map_err(|e| inference(path, e))?;
        let masks = outputs[MASKS]
            .try_extract_array::<f32>()
            .map_err(|e| inference(path, e))?;
        if masks.ndim() != 4 || chosen >= masks.shape()[1] {
            return Err(contract(
                path,
                &format!("masks are {:?}, no output {chosen}", masks.shape()),
            ));
        }
        Ok(masks.slice(s![0, chosen, .., ..]).to_owned())
    }

    /// The decoder's inputs for `prompt`; the embedding is borrowed, not copied, because it is
    /// reused for every prompt on the slice.
    fn decoder_inputs<'a>(
        &self,
        embedding: &'a Embedding,
        prompt: &Prompt,
    ) -> Result<Vec<(Cow<'static, str>, SessionInputValue<'a>)>, ModelError> {
        let (height, width) = embedding.frame.original;
        prompt.validate(height, width)?;
        let (coords, labels) = decoder_points(prompt, &embedding.frame);
        let (mask_input, has_mask) = match &prompt.previous_logits {
            Some(logits) if logits.dim() == self.mask_input_size => (
                logits.clone().insert_axis(Axis(0)).insert_axis(Axis(0)),
                1.0f32,
            ),
            Some(logits) => {
                return Err(ModelError::Prompt(format!(
                    "previous mask is {:?}, this model takes {:?}",
                    logits.dim(),
                    self.mask_input_size
                )));
            }
            None => {
                let (mh, mw) = self.mask_input_size;
                (Array4::zeros((1, 1, mh, mw)), 0.0f32)
            }
        };
        let path = &self.bundle.decoder_path;
        let tensor = |e| inference(path, e);
        Ok(ort::inputs![
            "image_embeddings" => TensorRef::from_array_view(embedding.tensor.view()).map_err(tensor)?,
            "point_coords" => Tensor::from_array(coords).map_err(tensor)?,
            "point_labels" => Tensor::from_array(labels).map_err(tensor)?,
            "mask_input" => Tensor::from_array(mask_input).map_err(tensor)?,
            "has_mask_input" => Tensor::from_array(Array1::from_elem(1, has_mask)).map_err(tensor)?,
            // Only the full graph reads it (to size `masks`); it stays a contract input.
            "orig_im_size" => Tensor::from_array(Array1::from(vec![height as f32, width as f32])).map_err(tensor)?,
        ])
    }
}

/// Output 0 is SAM's single-mask token; 1.. are the multimask candidates, compared by predicted IoU
/// when the prompt is ambiguous.
fn choose_output(ious: &[f32], ambiguous: bool) -> usize {
    if !ambiguous || ious.len() < 2 {
        return 0;
    }
    (1..ious.len())
        .max_by(|a, b| ious[*a].total_cmp(&ious[*b]))
        .unwrap_or(0)
}

/// Points and box corners in the model's input frame, with SAM's labels
/// (1 fg, 0 bg, 2/3 box corners, -1 padding when there is no box).
fn decoder_points(prompt: &Prompt, frame: &InputFrame) -> (Array3<f32>, Array2<f32>) {
    let mut coords = Vec::new();
    let mut labels = Vec::new();
    for p in &prompt.points {
        let (x, y) = frame.to_input(p.x, p.y);
        coords.extend([x, y]);
        labels.push(if p.positive { 1.0 } else { 0.0 });
    }
    match prompt.bbox {
        Some(b) => {
            for (x, y, label) in [(b.x0, b.y0, 2.0), (b.x1, b.y1, 3.0)] {
                let (x, y) = frame.to_input(x, y);
                coords.extend([x, y]);
                labels.push(label);
            }
        }
        None => {
            coords.extend([0.0, 0.0]);
            labels.push(-1.0);
        }
    }
    let n = labels.len();
    (
        Array3::from_shape_vec((1, n, 2), coords).unwrap_or_else(|_| Array3::zeros((1, n, 2))),
        Array2::from_shape_vec((1, n), labels).unwrap_or_else(|_| Array2::zeros((1, n))),
    )
}

/// The decoder as `predict` runs it: the graph without its `masks` output and the nodes that only
/// feed it, the upsampling of all four candidates to the slice size (2–3 ms of a 512×512 click on
/// the starter model; `predict` upsamples the one mask it keeps itself in ~0.6 ms). Merely not
/// fetching `masks` would save nothing: ONNX Runtime runs every node of a graph whatever outputs
/// a run asks for (microsoft/onnxruntime#16483). `orig_im_size` stays a graph input, unread.
/// A graph the engine cannot edit this way is run as it is: slower, same masks.
fn load_decoder_without_masks(path: &Path, config: &SessionConfig) -> Result<Session, ModelError> {
    let pruned = graph::Model::load(path).and_then(|mut model| {
        model.set_outputs(&DECODER_OUTPUTS)?;
        model.remove_dead_nodes();
        Ok(model.to_bytes())
    });
    if let Ok(bytes) = pruned
        && let Ok(session) = load_session_from_memory(&bytes, &path.display().to_string(), config)
    {
        return Ok(session);
    }
    Ok(load_session(path, config)?)
}

/// The encoder, its int8 weights made uint8 where this CPU's int8 kernels would saturate
/// (`unsigned_weights`). A float bundle is opened from its file as it is.
fn load_encoder(bundle: &ModelBundle, config: &SessionConfig) -> Result<Session, ModelError> {
    let path = &bundle.encoder_path;
    if bundle.manifest.precision.is_quantized() && super::int8_kernels_saturate() {
        let unreadable = |e: graph::GraphError| {
            contract(
                path,
                &format!("its int8 weights cannot be made uint8 for this CPU: {e}"),
            )
        };
        let mut model = graph::Model::load(path).map_err(unreadable)?;
        if super::to_unsigned_weights(&mut model).map_err(unreadable)? > 0 {
            let name = path.display().to_string();
            return Ok(load_session_from_memory(&model.to_bytes(), &name, config)?);
        }
    }
    Ok(load_session(path, config)?)
}

fn check_names(
    session: &Session,
    path: &Path,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<(), ModelError> {
    let have_in: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    let have_out: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    for (wanted, have, kind) in [(inputs, &have_in, "input"), (outputs, &have_out, "output")] {
        if let Some(missing) = wanted.iter().find(|name| !have.contains(name)) {
            return Err(contract(
                path,
                &format!("it has no {kind} `{missing}` (it has {have:?})"),
            ));
        }
    }
    Ok(())
}

/// Static dimensions of a named input (-1 where dynamic).
fn input_dims(session: &Session, name: &str) -> Vec<i64> {
    session
        .inputs()
        .iter()
        .find(|o| o.name() == name)
        .and_then(|o| match o.dtype() {
            ValueType::Tensor { shape, .. } => Some(shape.iter().copied().collect()),
            _ => None,
        })
        .unwrap_or_default()
}

fn check_encoder_input(session: &Session, path: &Path, s: usize) -> Result<(), ModelError> {
    let dims = input_dims(session, ENCODER_INPUT);
    let fits = |dim: Option<&i64>, want: i64| dim.is_some_and(|d| *d < 0 || *d == want);
    let s = s as i64;
    if dims.len() != 4 || !fits(dims.get(1), 3) || !fits(dims.get(2), s) || !fits(dims.get(3), s) {
        return Err(contract(
            path,
            &format!("input `image` is {dims:?}, the manifest's input_size needs [1,3,{s},{s}]"),
        ));
    }
    Ok(())
}

/// The decoder's mask input size: static in official exports (4× the embedding grid).
fn mask_input_size(session: &Session, path: &Path, s: usize) -> Result<(usize, usize), ModelError> {
    let dims = input_dims(session, "mask_input");
    match dims.as_slice() {
        [_, _, h, w] if *h > 0 && *w > 0 => Ok((*h as usize, *w as usize)),
        [_, _, _, _] => Ok((s / 4, s / 4)),
        _ => Err(contract(
            path,
            &format!("input `mask_input` is {dims:?}, expected [1,1,H,W]"),
        )),
    }
}

fn lock<'a, T>(
    session: &'a Mutex<T>,
    path: &Path,
) -> Result<std::sync::MutexGuard<'a, T>, ModelError> {
    session.lock().map_err(|_| ModelError::Inference {
        path: path.to_path_buf(),
        reason: "an earlier run on this session panicked".into(),
    })
}

fn inference(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

fn contract(path: &Path, reason: &str) -> ModelError {
    ModelError::Contract {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::prompt::{BoxPrompt, Point};

    #[test]
    fn ambiguous_prompts_take_the_best_multimask_candidate() {
        assert_eq!(choose_output(&[0.99, 0.2, 0.9, 0.5], true), 2);
        assert_eq!(choose_output(&[0.1, 0.2, 0.9, 0.5], false), 0);
    }

    #[test]
    fn box_corners_are_scaled_and_labelled_without_padding() {
        let frame = InputFrame::new(512, 512, 256);
        let mut prompt = Prompt::from_box(BoxPrompt {
            x0: 100.0,
            y0: 50.0,
            x1: 300.0,
            y1: 250.0,
        });
        prompt.points.push(Point {
            x: 200.0,
            y: 150.0,
            positive: false,
        });
        let (coords, labels) = decoder_points(&prompt, &frame);
        assert_eq!(labels.as_slice().unwrap(), &[0.0, 2.0, 3.0]);
        assert_eq!(coords.slice(s![0, 1, ..]).to_vec(), vec![50.0, 25.0]);
    }

    #[test]
    fn points_alone_get_a_padding_point() {
        let frame = InputFrame::new(256, 256, 256);
        let (coords, labels) = decoder_points(&Prompt::from_point(10.0, 20.0, true), &frame);
        assert_eq!(labels.as_slice().unwrap(), &[1.0, -1.0]);
        assert_eq!(coords.shape(), &[1, 2, 2]);
    }
}
