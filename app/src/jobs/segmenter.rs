//! The segmenter: one named thread that owns the SAM model, keeps slice embeddings in an LRU
//! cache, prefetches neighbours, and answers prompts. Only the newest prompt is worth answering,
//! so stale ones are dropped.

use super::Waker;
use super::embedding_cache::{self, DiskCache};
use lumen_annotation::cut::{CutGrid, CutImage, cut_image};
use lumen_annotation::propagate;
use lumen_engine::model::{Embedding, ModelError, Prediction, Prompt, SamModel};
use lumen_engine::runtime::SessionConfig;
use lumen_study::reformat::Cut;
use lumen_study::{Modality, Volume};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};

/// Requests from the UI.
pub enum Request {
    /// The study to work on (replaces the previous one and empties the cache).
    SetVolume(Arc<Volume>),
    /// Segment `cut` (a slice or a plane across them) with `prompt`, given on the cut's own
    /// grid; `generation` lets the UI ignore out-of-date answers.
    Predict {
        cut: Cut,
        prompt: Prompt,
        generation: u64,
    },
    /// Compute embeddings ahead of need (neighbours of the slice on screen).
    Prefetch(Vec<usize>),
    /// Carry a mask from slice `from` through its neighbours (see `propagate`).
    Propagate(PropagationRequest),
}

/// Propagation of one cut's mask up and/or down its stack (slices, rows or columns).
pub struct PropagationRequest {
    pub from: Cut,
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
    /// The mask on the cut's own grid.
    Predicted {
        cut: Cut,
        generation: u64,
        prediction: Prediction,
    },
    Failed {
        cut: Cut,
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
    /// Propagation finished (or was cancelled): a mask per cut reached, on its grid.
    Propagated {
        masks: Vec<(Cut, ndarray::Array2<bool>)>,
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
    /// Embeddings by cut, with how each cut's model image maps to its grid.
    cache: HashMap<Cut, (Embedding, CutGrid)>,
    recency: VecDeque<Cut>,
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
            precision: manifest.precision.label(),
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
                        cut,
                        prompt,
                        generation,
                    } if Some(i) == newest_predict => {
                        worker.predict(cut, &prompt, generation);
                    }
                    Request::Predict { .. } => {}
                    Request::Propagate(request) => worker.propagate(&request),
                }
            }
            if let Some(z) = prefetch.pop_front()
                && !worker.cache.contains_key(&Cut::Slice(z))
                && worker.cache_embedding(Cut::Slice(z)).is_ok()
            {
                let _ = worker.outbox.send(Reply::Embedded { z });
            }
        }
    }

    fn predict(&mut self, cut: Cut, prompt: &Prompt, generation: u64) {
        let reply = match self.segment(cut, prompt, true) {
            Ok(prediction) => Reply::Predicted {
                cut,
                generation,
                prediction,
            },
            Err(e) => Reply::Failed {
                cut,
                generation,
                message: e.to_string(),
            },
        };
        let _ = self.outbox.send(reply);
        (self.wake)();
    }

    /// `prompt` (on `cut`'s grid) answered on `cut`, the mask on its grid; with `timed`, the
    /// decoder's time goes to the UI.
    fn segment(
        &mut self,
        cut: Cut,
        prompt: &Prompt,
        timed: bool,
    ) -> Result<Prediction, ModelError> {
        self.cache_embedding(cut)?;
        let Some((embedding, grid)) = self.cache.get(&cut) else {
            return Err(ModelError::Image(format!("{cut:?} has no embedding")));
        };
        let started = std::time::Instant::now();
        let prediction = self.model.predict(embedding, &grid.to_model(prompt))?;
        if timed {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let _ = self.outbox.send(Reply::Latency { encoder: false, ms });
        }
        Ok(Prediction {
            mask: grid.to_cut(&prediction.mask),
            ..prediction
        })
    }

    /// Carries the request's mask through the neighbouring cuts of its stack
    /// (`lumen_annotation::propagate`), reporting each one found.
    fn propagate(&mut self, request: &PropagationRequest) {
        let depth = self
            .volume
            .as_ref()
            .map_or(0, |v| request.from.depth(v.dims));
        let start = propagate::Start {
            from: request.from.index(),
            mask: &request.mask,
            up: request.up,
            down: request.down,
        };
        let outbox = self.outbox.clone();
        let wake = self.wake.clone();
        let found = propagate::propagate(
            &start,
            depth,
            |index, prompt| {
                self.segment(request.from.with_index(index), prompt, false)
                    .ok()
            },
            || request.cancel.load(Ordering::Relaxed),
            |done, of| {
                let _ = outbox.send(Reply::Propagating { done, of });
                wake();
            },
        );
        let masks = found
            .masks
            .into_iter()
            .map(|(index, mask)| (request.from.with_index(index), mask))
            .collect();
        let _ = self.outbox.send(Reply::Propagated {
            masks,
            cancelled: found.cancelled,
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

    /// Makes sure `cut`'s embedding is in the cache: from memory, else (a slice) from disk, else
    /// computed (and a slice's then written to disk).
    fn cache_embedding(&mut self, cut: Cut) -> Result<(), ModelError> {
        if !self.cache.contains_key(&cut) {
            let on_disk = match cut {
                Cut::Slice(z) => self.disk.as_ref().and_then(|d| d.load(z)),
                Cut::Across(..) => None,
            };
            let entry = match on_disk {
                Some(embedding) => (embedding, CutGrid { rows_per_row: 1.0 }),
                None => {
                    let model_image = self.model_image(cut)?;
                    let started = std::time::Instant::now();
                    let embedding = self.model.embed(model_image.image.view())?;
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    let _ = self.outbox.send(Reply::Latency { encoder: true, ms });
                    if let (Cut::Slice(z), Some(disk)) = (cut, &mut self.disk) {
                        disk.store(z, &embedding);
                    }
                    (embedding, model_image.grid)
                }
            };
            if self.cache.len() >= CACHE_SLICES
                && let Some(oldest) = self.recency.pop_front()
            {
                self.cache.remove(&oldest);
            }
            self.cache.insert(cut, entry);
        }
        self.recency.retain(|k| *k != cut);
        self.recency.push_back(cut);
        Ok(())
    }

    /// The cut as the model's 8-bit input, by the model's own intensity rule for the modality.
    fn model_image(&self, cut: Cut) -> Result<CutImage, ModelError> {
        let volume = self
            .volume
            .as_ref()
            .ok_or_else(|| ModelError::Image("no study is open".into()))?;
        cut_image(volume, cut, self.rule_for(volume))
            .ok_or_else(|| ModelError::Image(format!("{cut:?} is not in the study")))
    }

    /// The model's intensity rule for the volume's modality.
    fn rule_for(&self, volume: &Volume) -> &lumen_engine::model::IntensityRule {
        let rules = &self.model.bundle().manifest.intensity;
        // MR's percentile rule suits any signal without a physical unit; the HU window suits CT only
        if volume.modality == Modality::Ct {
            &rules.ct
        } else {
            &rules.mr
        }
    }
}
