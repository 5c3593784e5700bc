//! Series discovery: walking a folder (DICOMDIR-aware, each file once, bounded), reading headers in parallel, grouping frames into series.

use super::attrs::MEDIA_STORAGE_DIRECTORY;
use super::guards::open_full;
use super::headers::{HeaderSummary, read_header_summary, reason_of};
use super::plan::plan_geometry;
use super::{Discovery, FileProblem, FrameHeader, ORIENTATION_TOLERANCE, SeriesInfo};
use crate::{LoadControl, Modality, Result, StudyError, StudyMeta};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Whether `file` is a DICOMDIR (a Media Storage Directory), whatever its name.
pub(super) fn is_directory(file: &DefaultDicomObject) -> bool {
    file.meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        == MEDIA_STORAGE_DIRECTORY
}

/// Files referenced by a DICOMDIR (paths resolved against its folder); None when the file is
/// named DICOMDIR but is something else (an image, say), to be read as such.
pub(super) fn dicomdir_files(path: &Path) -> Result<Option<Vec<PathBuf>>> {
    let obj = open_full(path)?;
    if !is_directory(&obj) {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    if let Some(records) = obj
        .get(tags::DIRECTORY_RECORD_SEQUENCE)
        .and_then(|e| e.items())
    {
        for rec in records {
            let Some(parts) = rec
                .get(tags::REFERENCED_FILE_ID)
                .and_then(|e| e.to_multi_str().ok())
            else {
                continue;
            };
            let mut p = dir.to_path_buf();
            for part in parts.iter() {
                let part = part.trim();
                if part.is_empty() || part == ".." || part == "." {
                    continue;
                }
                p.push(part);
            }
            out.push(resolve_case_insensitive(&p).unwrap_or(p));
        }
    }
    Ok(Some(out))
}

/// DICOMDIR file ids are upper case; on case-sensitive file systems find the real name.
pub(super) fn resolve_case_insensitive(p: &Path) -> Option<PathBuf> {
    if p.exists() {
        return Some(p.to_path_buf());
    }
    let parent = p.parent()?;
    let parent = resolve_case_insensitive(parent)?;
    let name = p.file_name()?.to_string_lossy().to_lowercase();
    std::fs::read_dir(&parent)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().to_lowercase() == name)
        .map(|e| e.path())
}

/// What the folder walk has seen: folders and files by (device, inode), so a link back up the
/// tree (`a -> .`) or a second way to the same file is followed once, and the files found.
pub(super) struct Walk<'a> {
    /// Its `cancel`, set by the user, ends the walk at the next entry; `found` counts the files.
    control: &'a LoadControl,
    seen: std::collections::HashSet<(u64, u64)>,
    files: Vec<PathBuf>,
    problems: Vec<FileProblem>,
    /// Whether `MAX_FILES` was reached (and said).
    full: bool,
}

/// The most files one study folder may hold (a link to `/` would otherwise list the disk).
pub(super) const MAX_FILES: usize = 200_000;

impl<'a> Walk<'a> {
    fn new(control: &'a LoadControl) -> Self {
        Self {
            control,
            seen: Default::default(),
            files: Vec::new(),
            problems: Vec::new(),
            full: false,
        }
    }

    fn cancelled(&self) -> bool {
        self.control.cancel.load(Ordering::Relaxed)
    }

    /// Whether `meta`'s folder or file is new to the walk.
    fn first_visit(&mut self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.seen.insert((meta.dev(), meta.ino()))
    }

    fn folder(&mut self, dir: &Path, depth: usize) {
        if depth > 64 {
            self.problems.push(FileProblem {
                path: dir.to_path_buf(),
                reason: "folder nesting too deep".into(),
            });
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.problems.push(FileProblem {
                    path: dir.to_path_buf(),
                    reason: format!("cannot list folder: {e}"),
                });
                return;
            }
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if self.cancelled() {
                return;
            }
            if self.files.len() >= MAX_FILES {
                if !self.full {
                    self.full = true;
                    self.problems.push(FileProblem {
                        path: dir.to_path_buf(),
                        reason: format!("more than {MAX_FILES} files: the rest were not read"),
                    });
                }
                return;
            }
            match std::fs::metadata(&p) {
                Ok(m) if !self.first_visit(&m) => {}
                Ok(m) if m.is_dir() => self.folder(&p, depth + 1),
                Ok(m) if m.is_file() => {
                    self.files.push(p);
                    self.control.found.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => self.problems.push(FileProblem {
                    path: p,
                    reason: format!("cannot stat: {e}"),
                }),
            }
        }
    }
}

/// Cheap check: DICM magic at offset 128, or a plausible group 0002/0008 tag at offset 0.
pub(super) fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = [0u8; 132];
    let n = f.read(&mut buf).unwrap_or(0);
    if n >= 132 && &buf[128..132] == b"DICM" {
        return true;
    }
    n >= 4 && matches!(u16::from_le_bytes([buf[0], buf[1]]), 0x0002 | 0x0008)
}

/// Scan a folder tree for DICOM series. Unreadable files are listed as problems, not errors.
pub fn discover(folder: impl AsRef<Path>) -> Result<Discovery> {
    discover_cancellable(folder, &LoadControl::default())
}

/// [`discover`] that counts the files it finds and the headers it reads into `control`, and
/// stops, with [`StudyError::Cancelled`], once its `cancel` is set.
pub fn discover_cancellable(folder: impl AsRef<Path>, control: &LoadControl) -> Result<Discovery> {
    let folder = folder.as_ref();
    if !folder.is_dir() {
        return Err(StudyError::read(folder, "not a folder"));
    }
    let mut walk = Walk::new(control);
    if let Ok(meta) = std::fs::metadata(folder) {
        walk.first_visit(&meta);
    }
    walk.folder(folder, 0);
    let cancelled = || control.cancel.load(Ordering::Relaxed);
    let stopped = || StudyError::Cancelled {
        path: folder.to_path_buf(),
    };
    if cancelled() {
        return Err(stopped());
    }
    let Walk {
        files,
        mut problems,
        ..
    } = walk;
    let candidates = with_dicomdir_entries(files, &mut problems);
    let headers: Vec<(PathBuf, Result<HeaderSummary>)> = candidates
        .into_par_iter()
        .map(|p| {
            // after a cancel the rest of the headers are not read
            let r = if cancelled() {
                Err(StudyError::Cancelled { path: p.clone() })
            } else {
                read_header_summary(&p)
            };
            control.read.fetch_add(1, Ordering::Relaxed);
            (p, r)
        })
        .collect();
    if cancelled() {
        return Err(stopped());
    }
    let groups = group_frames(headers, &mut problems);
    let mut series = split_into_series(groups);
    series.sort_by(|a, b| {
        (
            &a.study.study_instance_uid,
            a.series_number,
            &a.description,
            &a.series_instance_uid,
        )
            .cmp(&(
                &b.study.study_instance_uid,
                b.series_number,
                &b.description,
                &b.series_instance_uid,
            ))
    });
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Discovery { series, problems })
}

/// The files to read: those found, with each DICOMDIR replaced by the files it references
/// (their on-disk names may differ in case). A file named DICOMDIR that is not one stays.
fn with_dicomdir_entries(
    files: Vec<PathBuf>,
    problems: &mut Vec<FileProblem>,
) -> BTreeSet<PathBuf> {
    let (dicomdirs, others): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| {
        f.file_name()
            .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case("DICOMDIR"))
    });
    let mut set: BTreeSet<PathBuf> = others.into_iter().collect();
    for d in dicomdirs {
        match dicomdir_files(&d) {
            Ok(Some(list)) => set.extend(list.into_iter().filter(|p| p.is_file())),
            Ok(None) => {
                set.insert(d);
            }
            Err(e) => problems.push(FileProblem {
                path: d,
                reason: e.to_string(),
            }),
        }
    }
    set
}

/// What makes frames one series: study and series UID, image size, echo, temporal position
/// and stack.
type GroupKey = (String, String, u16, u16, String, String, String);

/// Frames of one series (before it is split by orientation) and what their files say of it.
struct Group {
    frames: Vec<FrameHeader>,
    meta: StudyMeta,
    description: String,
    modality: Modality,
    number: Option<i64>,
}

/// Groups the frames of every readable file; the others become problems.
fn group_frames(
    headers: Vec<(PathBuf, Result<HeaderSummary>)>,
    problems: &mut Vec<FileProblem>,
) -> BTreeMap<GroupKey, Group> {
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for (path, r) in headers {
        match r {
            Ok((frames, meta, description, modality, number)) => {
                for fh in frames {
                    let key = (
                        meta.study_instance_uid.clone(),
                        fh.series_instance_uid.clone(),
                        fh.rows,
                        fh.columns,
                        fh.echo.clone(),
                        fh.temporal.clone(),
                        fh.stack.clone(),
                    );
                    groups
                        .entry(key)
                        .or_insert_with(|| Group {
                            frames: Vec::new(),
                            meta: meta.clone(),
                            description: description.clone(),
                            modality: modality.clone(),
                            number,
                        })
                        .frames
                        .push(fh);
                }
            }
            Err(e) => {
                let reason = if looks_like_dicom(&path) {
                    reason_of(&e)
                } else {
                    "not a DICOM file".into()
                };
                problems.push(FileProblem { path, reason });
            }
        }
    }
    groups
}

/// The frames of `frames` in clusters of one orientation, in order of first appearance.
fn orientation_clusters(frames: &[FrameHeader]) -> Vec<Vec<FrameHeader>> {
    let mut clusters: Vec<([f64; 6], Vec<FrameHeader>)> = Vec::new();
    for fh in frames {
        let o = fh.orientation.unwrap_or([0.0; 6]);
        match clusters.iter_mut().find(|(c, _)| {
            c.iter()
                .zip(o.iter())
                .all(|(a, b)| (a - b).abs() < ORIENTATION_TOLERANCE)
        }) {
            Some((_, v)) => v.push(fh.clone()),
            None => clusters.push((o, vec![fh.clone()])),
        }
    }
    clusters.into_iter().map(|(_, frames)| frames).collect()
}

/// Splits each group by orientation into series; a UID split into parts says so in its
/// description and warnings.
fn split_into_series(groups: BTreeMap<GroupKey, Group>) -> Vec<SeriesInfo> {
    let mut parts_per_uid: BTreeMap<String, usize> = BTreeMap::new();
    let mut pieces: Vec<(&Group, Vec<FrameHeader>, bool)> = Vec::new();
    for g in groups.values() {
        let clusters = orientation_clusters(&g.frames);
        let mixed_orientations = clusters.len() > 1;
        for frames in clusters {
            *parts_per_uid
                .entry(frames[0].series_instance_uid.clone())
                .or_default() += 1;
            pieces.push((g, frames, mixed_orientations));
        }
    }
    let mut part_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut series = Vec::with_capacity(pieces.len());
    for (g, frames, mixed_orientations) in pieces {
        let uid = frames[0].series_instance_uid.clone();
        let total = parts_per_uid.get(&uid).copied().unwrap_or(1);
        let idx = part_index.entry(uid.clone()).or_default();
        *idx += 1;
        let mut warnings = Vec::new();
        let mut description = g.description.clone();
        if total > 1 {
            description = format!("{description} (part {idx} of {total})");
            let reason = if mixed_orientations {
                "mixed orientations"
            } else {
                "image size, echo or temporal position"
            };
            warnings.push(format!(
                "series {uid} was split into {total} parts because of {reason}; this is part {idx}"
            ));
        }
        let folder = frames[0]
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match plan_geometry(&frames, &folder) {
            Ok(plan) => warnings.extend(plan.warnings),
            Err(e) => warnings.push(format!("cannot be loaded as a volume: {}", reason_of(&e))),
        }
        series.push(SeriesInfo {
            series_instance_uid: uid,
            description,
            modality: g.modality.clone(),
            series_number: g.number,
            rows: frames[0].rows,
            columns: frames[0].columns,
            slice_count: frames.len(),
            warnings,
            study: g.meta.clone(),
            frames,
            folder,
        });
    }
    series
}
