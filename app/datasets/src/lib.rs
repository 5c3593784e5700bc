//! `lumen eval`'s library side: the data sets of ../shared/data as labelled 8-bit slices, run
//! through the protocol of `lumen_engine::eval` (DESIGN.md §4).
//!
//! Also the entry point for comparing models: [`evaluate_model`] scores any loaded model on the
//! same slices and the same (label-derived, seeded) prompts.

pub mod btcv;
pub mod chaos;
pub mod chaos_mr;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod npy;
pub mod npz;
pub mod totalsegmentator;
pub mod volume;

use anyhow::{Context, bail};
use lumen_engine::eval::{Accumulator, ProtocolOptions, Report, evaluate_slice};
use lumen_engine::model::{Manifest, SamModel};
use lumen_engine::runtime::SessionConfig;
use std::path::{Path, PathBuf};
use std::time::Instant;
pub use volume::LabelledVolume;

/// What to evaluate on.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A folder of BTCV `sabs_caseNN.npz`; `cases: None` = the model's held-out patients.
    Btcv {
        dir: PathBuf,
        cases: Option<Vec<String>>,
    },
    /// One `.npz` case (BTCV layout).
    Npz(PathBuf),
    /// The CHAOS CT `Data_3D` folder.
    Chaos(PathBuf),
    /// A folder of CHAOS T2 MR patients (`image_N.nii.gz` + `label_N.nii.gz`); `patients: None` =
    /// all of them.
    ChaosMr {
        dir: PathBuf,
        patients: Option<Vec<u32>>,
    },
    /// The TotalSegmentator example folder (its DICOM series and label map).
    TotalSegmentator(PathBuf),
}

impl Source {
    /// Recognises `path`: an `.npz` file, a folder of `sabs_case*.npz`, CHAOS `Data_3D`, a CHAOS MR
    /// folder or the TotalSegmentator example. `cases` apply to a BTCV folder (numbers like `06` or
    /// names like `sabs_case06`) and to a CHAOS MR folder (patient numbers like `2`).
    pub fn detect(path: &Path, cases: Option<&[String]>) -> anyhow::Result<Self> {
        if !path.exists() {
            bail!("{}: no such file or folder", path.display());
        }
        let source = if path.is_file() {
            if path.extension().is_none_or(|e| e != "npz") {
                bail!(
                    "{}: not an evaluation set (expected a .npz case, a folder of sabs_caseNN.npz, or the CHAOS Data_3D folder)",
                    path.display()
                );
            }
            Self::Npz(path.to_path_buf())
        } else if let Some(root) = chaos::data_root(path) {
            Self::Chaos(root)
        } else if let Some(root) = totalsegmentator::data_root(path) {
            Self::TotalSegmentator(root)
        } else if chaos_mr::is_chaos_mr(path) {
            Self::ChaosMr {
                dir: path.to_path_buf(),
                patients: cases.map(|c| mr_patient_numbers(path, c)).transpose()?,
            }
        } else if has_btcv_cases(path)? {
            Self::Btcv {
                dir: path.to_path_buf(),
                cases: cases.map(|c| c.iter().map(|c| btcv::case_name(c)).collect()),
            }
        } else {
            bail!(
                "{}: not an evaluation set (no sabs_caseNN.npz, no DICOM_anon + Ground folders of CHAOS CT, no image_N.nii.gz + label_N.nii.gz of CHAOS MR, no TotalSegmentator example_ct_dicom + example_seg_dicom.nii.gz)",
                path.display()
            );
        };
        if cases.is_some() && !matches!(source, Self::Btcv { .. } | Self::ChaosMr { .. }) {
            bail!(
                "{}: --cases selects BTCV cases or CHAOS MR patients; this folder holds neither",
                path.display()
            );
        }
        Ok(source)
    }
}

/// CHAOS MR patient numbers, each one that `dir` holds.
fn mr_patient_numbers(dir: &Path, cases: &[String]) -> anyhow::Result<Vec<u32>> {
    let present: Vec<u32> = chaos_mr::patients(dir)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    cases
        .iter()
        .map(|case| {
            let n: u32 = case.trim().parse().with_context(|| {
                format!("--cases {case}: a CHAOS MR patient is named by its number, like 2")
            })?;
            if !present.contains(&n) {
                bail!(
                    "{}: no patient {n} (no image_{n}.nii.gz with its label_{n}.nii.gz)",
                    dir.display()
                );
            }
            Ok(n)
        })
        .collect()
}

fn has_btcv_cases(dir: &Path) -> anyhow::Result<bool> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list folder", dir.display()))?;
    Ok(entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with("sabs_case") && name.ends_with(".npz")
    }))
}

/// How much to evaluate, and the protocol's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub protocol: ProtocolOptions,
    /// Evaluate every `every`-th labelled slice of each case (1 = all).
    pub every: usize,
    /// ONNX Runtime threads per operator (0 = one per core).
    pub threads: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            protocol: ProtocolOptions::default(),
            every: 1,
            threads: 0,
        }
    }
}

/// Loads the model bundle in `model_dir` and evaluates it on `source`.
pub fn evaluate(
    model_dir: &Path,
    source: &Source,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Report> {
    let config = SessionConfig {
        intra_threads: options.threads,
        ..SessionConfig::default()
    };
    let model = SamModel::load(model_dir, &config)
        .with_context(|| format!("cannot open model bundle {}", model_dir.display()))?;
    evaluate_model(&model, source, options, progress)
}

/// Evaluates a loaded model on `source`; `progress` hears one line per case.
pub fn evaluate_model(
    model: &SamModel,
    source: &Source,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let manifest = &model.bundle().manifest;
    let every = options.every.max(1);
    let mut accumulator = Accumulator::new();
    let mut parts = Vec::new();
    for case in case_files(source, manifest)? {
        let volume = match &case {
            Case::Npz(path) => btcv::load_npz(path)?,
            Case::Chaos(root) => chaos::load(root, &manifest.intensity.ct)?,
            Case::ChaosMr(image) => chaos_mr::load(image, &manifest.intensity.mr)?,
            Case::TotalSegmentator(root) => totalsegmentator::load(root, &manifest.intensity.ct)?,
        };
        let slices = volume.labelled_slices(every);
        for &z in &slices {
            let samples = evaluate_slice(
                model,
                volume.image(z),
                volume.label(z),
                &volume.organs,
                &options.protocol,
                volume.slice_key(z),
            )
            .with_context(|| format!("{}: slice {z}", case.path().display()))?;
            accumulator.add_slice(&volume.organs, &samples);
        }
        progress(&format!(
            "{}: {} labelled slices evaluated, {:.1} s",
            volume.name,
            slices.len(),
            start.elapsed().as_secs_f64()
        ));
        parts.push(format!("{} ({} slices)", volume.name, slices.len()));
    }
    let stride = if every == 1 {
        "every labelled slice".to_string()
    } else {
        format!("1 in {every} labelled slices")
    };
    let data = format!("{}; {stride}", parts.join(", "));
    Ok(accumulator.finish(
        &manifest.name,
        &data,
        &options.protocol,
        start.elapsed().as_secs_f64(),
    ))
}

enum Case {
    Npz(PathBuf),
    Chaos(PathBuf),
    /// One patient's image file.
    ChaosMr(PathBuf),
    TotalSegmentator(PathBuf),
}

impl Case {
    fn path(&self) -> &Path {
        match self {
            Case::Npz(p) | Case::Chaos(p) | Case::ChaosMr(p) | Case::TotalSegmentator(p) => p,
        }
    }
}

/// The files a source stands for, checked to exist.
fn case_files(source: &Source, manifest: &Manifest) -> anyhow::Result<Vec<Case>> {
    Ok(match source {
        Source::Npz(path) => vec![Case::Npz(path.clone())],
        Source::Chaos(root) => vec![Case::Chaos(root.clone())],
        Source::ChaosMr { dir, patients } => chaos_mr::patients(dir)?
            .into_iter()
            .filter(|(n, _)| patients.as_ref().is_none_or(|chosen| chosen.contains(n)))
            .map(|(_, image)| Case::ChaosMr(image))
            .collect(),
        Source::TotalSegmentator(root) => vec![Case::TotalSegmentator(root.clone())],
        Source::Btcv { dir, cases } => {
            let names = match cases {
                Some(names) => names.clone(),
                None => held_out_cases(manifest),
            };
            if names.is_empty() {
                bail!("{}: no BTCV cases selected", dir.display());
            }
            names
                .iter()
                .map(|name| {
                    let path = dir.join(format!("{name}.npz"));
                    if path.is_file() {
                        Ok(Case::Npz(path))
                    } else {
                        bail!("{}: no such case file", path.display())
                    }
                })
                .collect::<anyhow::Result<_>>()?
        }
    })
}

/// The BTCV patients the model's manifest names as held out (`provenance.validation_patients`),
/// or the starter model's four when it names none.
pub fn held_out_cases(manifest: &Manifest) -> Vec<String> {
    let named: Vec<String> = manifest
        .provenance
        .get("validation_patients")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|s| s.starts_with("sabs_case"))
        .map(str::to_string)
        .collect();
    if named.is_empty() {
        btcv::BTCV_HELD_OUT.iter().map(|s| s.to_string()).collect()
    } else {
        named
    }
}
