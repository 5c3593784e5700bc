//! The segmenter: one named thread that owns the SAM model, keeps slice embeddings in an LRU
//! cache, prefetches neighbours, and answers prompts. Only the newest prompt is worth answering,
//! so stale ones are dropped.

use super::Waker;
use super::embedding_cache::{self, DiskCache};
use crate::study::Volume;
use lumen_engine::model::{Embedding, ModelError, Prediction, Prompt, SamModel};
use lumen_engine::runtime::SessionConfig;
use ndarray::Array2;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

/// Requests from the UI.
pub enum Request {
    /// The study to work on (replaces the previous one and empties the cache).
    SetVolume(Arc<Volume>),
    /// Segment slice `z` with `prompt`; `generation` lets the UI ignore out-of-date answers.
    Predict {
        z: usize,
        prompt: Prompt,
        generation: u64,
    },
    /// Compute embeddings ahead of need (neighbours of the slice on screen).
    Prefetch(Vec<usize>),
    /// Carry a mask from slice `from` through its neighbours (see `propagate`).
    Propagate(PropagationRequest),
}

/// Propagation of one slice's mask up and/or down the volume.
pub struct PropagationRequest {
    pub from: usize,
    pub mask: ndarray::Array2<bool>,
    pub up: bool,
    pub down: bool,
    /// Set by the UI to stop early; what was found so far is still returned.
    pub cancel: Arc<AtomicBool>,
}

/// Replies to the UI.
pub enum Reply {
    ModelReady {
        name: String,
        precision: String,
        input_size: u32,
    },
    ModelFailed(String),
    Predicted {
        z: usize,
        generation: u64,
        prediction: Prediction,
    },
    Failed {
        z: usize,
        generation: u64,
        message: String,
    },
    Embedded {
        z: usize,
    },
    /// How long the last encoder run (`encoder` true) or decoder run took, in ms.
    Latency {
        encoder: bool,
        ms: f64,
    },
    /// Propagation progress: slices done and the most it may take.
    Propagating {
        done: usize,
        of: usize,
    },
    /// Propagation finished (or was cancelled): a mask per slice reached.
    Propagated {
        masks: Vec<(usize, ndarray::Array2<bool>)>,
        cancelled: bool,
    },
}

/// The UI's handle on the segmenter thread.
pub struct Segmenter {
    requests: Sender<Request>,
    pub replies: Receiver<Reply>,
}

impl Segmenter {
    /// Starts the thread, which loads the model bundle in `model_dir` first.
    pub fn start(model_dir: PathBuf, wake: Waker) -> std::io::Result<Self> {
        let (requests, inbox) = channel();
        let (outbox, replies) = channel();
        std::thread::Builder::new()
            .name("segmenter".into())
            .spawn(move || Worker::run(model_dir, inbox, outbox, wake))?;
        Ok(Self { requests, replies })
    }

    /// Sends a request; false if the worker has stopped.
    pub fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }
}

/// How many slice embeddings stay in memory (each is about 1 MB for the starter model).
const CACHE_SLICES: usize = 48;

struct Worker {
    model: SamModel,
    volume: Option<Arc<Volume>>,
    cache: HashMap<usize, Embedding>,
    recency: VecDeque<usize>,
    outbox: Sender<Reply>,
    wake: Waker,
    /// Embeddings on disk for the open series (None when there is no user cache dir).
    disk: Option<DiskCache>,
}

impl Worker {
    fn run(model_dir: PathBuf, inbox: Receiver<Request>, outbox: Sender<Reply>, wake: Waker) {
        let model = match SamModel::load(&model_dir, &SessionConfig::default()) {
            Ok(model) => model,
            Err(e) => {
                let _ = outbox.send(Reply::ModelFailed(e.to_string()));
                wake();
                return;
            }
        };
        let manifest = &model.bundle().manifest;
        let _ = outbox.send(Reply::ModelReady {
            name: manifest.name.clone(),
            precision: manifest.precision.kind.clone(),
            input_size: manifest.input_size,
        });
        wake();
        let mut worker = Worker {
            model,
            volume: None,
            cache: HashMap::new(),
            recency: VecDeque::new(),
            outbox,
            wake,
            disk: None,
        };
        let mut prefetch: VecDeque<usize> = VecDeque::new();
        loop {
            // Block only when there is nothing to prefetch.
            let first = if prefetch.is_empty() {
                match inbox.recv() {
                    Ok(r) => Some(r),
                    Err(_) => return,
                }
            } else {
                match inbox.try_recv() {
                    Ok(r) => Some(r),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return,
                }
            };
            let mut pending: Vec<Request> = first.into_iter().collect();
            pending.extend(inbox.try_iter());
            // Of several queued prompts only the newest matters.
            let newest_predict = pending
                .iter()
                .rposition(|r| matches!(r, Request::Predict { .. }));
            for (i, request) in pending.into_iter().enumerate() {
                match request {
                    Request::SetVolume(volume) => {
                        worker.disk = worker.disk_cache_for(&volume);
                        worker.volume = Some(volume);
                        worker.cache.clear();
                        worker.recency.clear();
                        prefetch.clear();
                    }
                    Request::Prefetch(slices) => prefetch = slices.into(),
                    Request::Predict {
                        z,
                        prompt,
                        generation,
                    } if Some(i) == newest_predict => {
                        worker.predict(z, &prompt, generation);
                    }
                    Request::Predict { .. } => {}
                    Request::Propagate(request) => worker.propagate(&request),
                }
            }
            if let Some(z) = prefetch.pop_front()
                && !worker.cache.contains_key(&z)
                && worker.cache_embedding(z).is_ok()
            {
                let _ = worker.outbox.send(Reply::Embedded { z });
            }
        }
    }

    fn predict(&mut self, z: usize, prompt: &Prompt, generation: u64) {
        let answer = self
            .cache_embedding(z)
            .and_then(|()| match self.cache.get(&z) {
                Some(embedding) => {
                    let started = std::time::Instant::now();
                    let prediction = self.model.predict(embedding, prompt);
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    let _ = self.outbox.send(Reply::Latency { encoder: false, ms });
                    prediction
                }
                None => Err(ModelError::Image(format!("slice {z} has no embedding"))),
            });
        let reply = match answer {
            Ok(prediction) => Reply::Predicted {
                z,
                generation,
                prediction,
            },
            Err(e) => Reply::Failed {
                z,
                generation,
                message: e.to_string(),
            },
        };
        let _ = self.outbox.send(reply);
        (self.wake)();
    }

    /// Prompts each next slice with the previous slice's mask (its box and, within one direction,
    /// its low-res logits) until the organ ends, the volume ends, or the user cancels.
    fn propagate(&mut self, request: &PropagationRequest) {
        let depth = self.volume.as_ref().map_or(0, |v| v.dims[2]);
        let directions: Vec<isize> = [(request.up, 1), (request.down, -1)]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, d)| *d)
            .collect();
        let of = directions
            .iter()
            .map(|d| {
                if *d > 0 {
                    depth.saturating_sub(request.from + 1)
                } else {
                    request.from
                }
            })
            .sum();
        let mut masks = Vec::new();
        let mut done = 0;
        for step in directions {
            let mut previous = request.mask.clone();
            let mut previous_logits = None;
            let mut z = request.from;
            while let Some(next) = z.checked_add_signed(step).filter(|n| *n < depth) {
                if request.cancel.load(Ordering::Relaxed) {
                    let _ = self.outbox.send(Reply::Propagated {
                        masks,
                        cancelled: true,
                    });
                    (self.wake)();
                    return;
                }
                let Some(prompt) = propagation_prompt(&previous, previous_logits.take()) else {
                    break;
                };
                let answer =
                    self.cache_embedding(next)
                        .and_then(|()| match self.cache.get(&next) {
                            Some(embedding) => self.model.predict(embedding, &prompt),
                            None => {
                                Err(ModelError::Image(format!("slice {next} has no embedding")))
                            }
                        });
                let Ok(prediction) = answer else { break };
                if !organ_continues(&previous, &prediction) {
                    break;
                }
                previous = prediction.mask.clone();
                previous_logits = Some(prediction.low_res_logits);
                masks.push((next, prediction.mask));
                z = next;
                done += 1;
                let _ = self.outbox.send(Reply::Propagating { done, of });
                (self.wake)();
            }
        }
        let _ = self.outbox.send(Reply::Propagated {
            masks,
            cancelled: false,
        });
        (self.wake)();
    }

    /// The disk cache of `volume`'s embeddings under this model and its intensity rule.
    fn disk_cache_for(&self, volume: &Volume) -> Option<DiskCache> {
        let root = embedding_cache::default_root()?;
        let mut rule = format!("{:?}", self.rule_for(volume));
        if volume.inverted {
            // embeddings made before MONOCHROME1 was honoured were of the unflipped image
            rule.push_str(" inverted");
        }
        Some(DiskCache::new(
            &root,
            &self.model.bundle().embedding_id(),
            &embedding_cache::series_key(volume),
            &rule,
            embedding_cache::DEFAULT_BUDGET_BYTES,
        ))
    }

    /// Makes sure slice `z`'s embedding is in the cache: from memory, else from disk, else
    /// computed (and then written to disk).
    fn cache_embedding(&mut self, z: usize) -> Result<(), ModelError> {
        if !self.cache.contains_key(&z) {
            let embedding = match self.disk.as_ref().and_then(|d| d.load(z)) {
                Some(embedding) => embedding,
                None => {
                    let image = self.model_image(z)?;
                    let started = std::time::Instant::now();
                    let embedding = self.model.embed(image.view())?;
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    let _ = self.outbox.send(Reply::Latency { encoder: true, ms });
                    if let Some(disk) = &mut self.disk {
                        disk.store(z, &embedding);
                    }
                    embedding
                }
            };
            if self.cache.len() >= CACHE_SLICES
                && let Some(oldest) = self.recency.pop_front()
            {
                self.cache.remove(&oldest);
            }
            self.cache.insert(z, embedding);
        }
        self.recency.retain(|k| *k != z);
        self.recency.push_back(z);
        Ok(())
    }

    /// Slice `z` as the model's 8-bit input, by the model's own intensity rule for the modality.
    fn model_image(&self, z: usize) -> Result<Array2<u8>, ModelError> {
        let volume = self
            .volume
            .as_ref()
            .ok_or_else(|| ModelError::Image("no study is open".into()))?;
        model_image(volume, z, self.rule_for(volume))
            .ok_or_else(|| ModelError::Image(format!("slice {z} is not in the study")))
    }

    /// The model's intensity rule for the volume's modality.
    fn rule_for(&self, volume: &Volume) -> &lumen_engine::model::IntensityRule {
        let rules = &self.model.bundle().manifest.intensity;
        if volume.modality.eq_ignore_ascii_case("MR") {
            &rules.mr
        } else {
            &rules.ct
        }
    }
}

/// Slice `z` of `volume` as a model's 8-bit input by `rule`. The models are trained on images
/// where white means bright (MONOCHROME2), so they get the slice as the radiologist sees it.
pub fn model_image(
    volume: &Volume,
    z: usize,
    rule: &lumen_engine::model::IntensityRule,
) -> Option<Array2<u8>> {
    let [nx, ny, _] = volume.dims;
    let slice = ndarray::ArrayView2::from_shape((ny, nx), volume.slice(z)?).ok()?;
    let mut image = rule.to_u8(slice);
    volume.apply_polarity(image.iter_mut());
    Some(image)
}

/// The prompt for the next slice: the previous mask's box, a little larger since organs grow
/// and shift between slices, plus its logits when they come from the same direction.
fn propagation_prompt(previous: &Array2<bool>, logits: Option<Array2<f32>>) -> Option<Prompt> {
    let (h, w) = previous.dim();
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for ((y, x), on) in previous.indexed_iter() {
        if *on {
            let b = bounds.get_or_insert((x, y, x, y));
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    let (x0, y0, x1, y1) = bounds?;
    let margin = ((x1 - x0).max(y1 - y0) as f32 * 0.05).max(2.0);
    let bbox = lumen_engine::model::BoxPrompt {
        x0: (x0 as f32 - margin).max(0.0),
        y0: (y0 as f32 - margin).max(0.0),
        x1: (x1 as f32 + margin).min(w as f32 - 1.0),
        y1: (y1 as f32 + margin).min(h as f32 - 1.0),
    };
    Some(Prompt {
        points: Vec::new(),
        bbox: Some(bbox),
        previous_logits: logits,
    })
}

/// The organ goes on while the new mask is not tiny and still overlaps the previous one.
fn organ_continues(previous: &Array2<bool>, next: &Prediction) -> bool {
    let area = next.area();
    let previous_area = previous.iter().filter(|v| **v).count();
    let overlap = previous
        .iter()
        .zip(next.mask.iter())
        .filter(|(a, b)| **a && **b)
        .count();
    area >= 20
        && area * 10 >= previous_area
        && overlap * 4 >= area.min(previous_area)
        && next.iou >= 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_propagation_box_covers_the_previous_mask_with_a_margin() {
        let mask = Array2::from_shape_fn((100, 100), |(y, x)| {
            (20..40).contains(&x) && (50..60).contains(&y)
        });
        let prompt = propagation_prompt(&mask, None).unwrap();
        let b = prompt.bbox.unwrap();
        assert_eq!((b.x0, b.y0, b.x1, b.y1), (18.0, 48.0, 41.0, 61.0));
        assert!(propagation_prompt(&Array2::from_elem((4, 4), false), None).is_none());
    }
}
