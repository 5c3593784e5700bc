//! The embeddings' disk cache: one file per slice under the user cache dir, keyed by model
//! weights, series UID and the intensity rule that made the 8-bit slice, so reopening a study
//! (or scrolling back after the memory cache evicted a slice) skips the encoder. Files are
//! written atomically; a damaged or mismatched file is ignored. The folder is kept under a size
//! budget by removing the least recently written files.

use lumen_engine::model::{Embedding, InputFrame};
use ndarray::Array4;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LMNEMB01";
/// Disk budget for all cached embeddings (about 1000 slices of the starter model).
pub const DEFAULT_BUDGET_BYTES: u64 = 1 << 30;
/// The budget is enforced every this many writes (it walks the folder).
const PRUNE_EVERY: usize = 64;

/// The cache folder of one (model, series, intensity rule).
#[derive(Debug, Clone)]
pub struct DiskCache {
    root: PathBuf,
    dir: PathBuf,
    budget: u64,
    writes: usize,
}

/// The user's cache root for embeddings.
pub fn default_root() -> Option<PathBuf> {
    crate::paths::user_dirs().map(|d| d.cache_dir().join("embeddings"))
}

/// What identifies a series: its UID, or for anonymized series without one, a fingerprint of
/// its grid and a sample of its voxels (FNV-1a, stable across runs).
pub fn series_key(volume: &lumen_study::Volume) -> String {
    let uid = &volume.study.series_instance_uid;
    if !uid.is_empty() {
        return uid.clone();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for d in volume.dims {
        mix(&(d as u64).to_le_bytes());
    }
    for s in volume.spacing {
        mix(&s.to_le_bytes());
    }
    for v in volume.voxels.iter().step_by(997) {
        mix(&v.to_le_bytes());
    }
    format!("content-{h:016x}")
}

impl DiskCache {
    pub fn new(root: &Path, model_id: &str, series_uid: &str, rule: &str, budget: u64) -> Self {
        let key = format!(
            "{}-{}",
            lumen_engine::fsio::file_safe(series_uid),
            lumen_engine::fsio::file_safe(rule)
        );
        Self {
            root: root.to_path_buf(),
            dir: root.join(lumen_engine::fsio::file_safe(model_id)).join(key),
            budget,
            writes: 0,
        }
    }

    fn path(&self, z: usize) -> PathBuf {
        self.dir.join(format!("{z:05}.emb"))
    }

    /// The stored embedding of slice `z`, if there is a valid one.
    pub fn load(&self, z: usize) -> Option<Embedding> {
        decode(&std::fs::read(self.path(z)).ok()?)
    }

    /// Stores slice `z`'s embedding; failures only cost the cache, so they are ignored.
    pub fn store(&mut self, z: usize, embedding: &Embedding) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // a torn file would fail decode()'s checks anyway; fsio keeps the old one whole
        let _ = lumen_engine::fsio::write_bytes(&self.path(z), &encode(embedding));
        self.writes += 1;
        if self.writes % PRUNE_EVERY == 1 {
            prune(&self.root, self.budget);
        }
    }
}

fn encode(e: &Embedding) -> Vec<u8> {
    let shape = e.tensor.shape();
    let mut out = Vec::with_capacity(64 + e.tensor.len() * 4);
    out.extend_from_slice(MAGIC);
    let header = [
        shape[0],
        shape[1],
        shape[2],
        shape[3],
        e.frame.original.0,
        e.frame.original.1,
        e.frame.resized.0,
        e.frame.resized.1,
    ];
    for v in header {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for v in e.tensor.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Embedding> {
    let body = bytes.strip_prefix(MAGIC)?;
    let (header, data) = body.split_at_checked(32)?;
    let h: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let n = h[0]
        .checked_mul(h[1])?
        .checked_mul(h[2])?
        .checked_mul(h[3])?;
    if data.len() != n.checked_mul(4)? {
        return None;
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(Embedding {
        tensor: Array4::from_shape_vec((h[0], h[1], h[2], h[3]), values).ok()?,
        frame: InputFrame {
            original: (h[4], h[5]),
            resized: (h[6], h[7]),
        },
    })
}

/// Removes the oldest cache files until the whole cache fits `budget` bytes.
fn prune(root: &Path, budget: u64) {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(modified) = meta.modified() {
                files.push((modified, meta.len(), entry.path()));
            }
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= budget {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn embedding(seed: f32) -> Embedding {
        Embedding {
            tensor: Array4::from_shape_fn((1, 4, 3, 2), |(_, c, y, x)| {
                seed + (c * 6 + y * 2 + x) as f32
            }),
            frame: InputFrame::new(512, 400, 256),
        }
    }

    #[test]
    fn stores_and_loads_exactly_per_model_series_and_rule() {
        let root = tempfile::tempdir().unwrap();
        let mut cache = DiskCache::new(root.path(), "model-a", "1.2.3", "ct:115/475", 1 << 20);
        assert!(cache.load(7).is_none());
        cache.store(7, &embedding(0.5));
        let back = cache.load(7).unwrap();
        assert_eq!(back.tensor, embedding(0.5).tensor);
        assert_eq!(back.frame, embedding(0.5).frame);
        // Another model, series or window rule does not see it.
        for other in [
            DiskCache::new(root.path(), "model-b", "1.2.3", "ct:115/475", 1 << 20),
            DiskCache::new(root.path(), "model-a", "1.2.4", "ct:115/475", 1 << 20),
            DiskCache::new(root.path(), "model-a", "1.2.3", "ct:40/400", 1 << 20),
        ] {
            assert!(other.load(7).is_none());
        }
    }

    #[test]
    fn damaged_files_are_ignored_and_the_budget_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let mut cache = DiskCache::new(root.path(), "m", "s", "r", 1 << 20);
        cache.store(1, &embedding(1.0));
        let path = cache.path(1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        assert!(cache.load(1).is_none(), "a cut file is a miss, not garbage");

        let one = encode(&embedding(0.0)).len() as u64;
        let mut small = DiskCache::new(root.path(), "m", "s", "r", 3 * one);
        for z in 0..(PRUNE_EVERY + 2) {
            small.store(z, &embedding(z as f32));
        }
        prune(root.path(), 3 * one);
        let kept = std::fs::read_dir(&small.dir).unwrap().count() as u64;
        assert!(kept <= 3, "{kept} files kept");
        assert!(small.load(PRUNE_EVERY + 1).is_some(), "the newest survive");
    }
}
