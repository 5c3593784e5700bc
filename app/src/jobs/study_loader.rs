//! Opens a study on a named background thread: discover the series, load the largest volume
//! (or the one the user picks in the series browser), and make the browser's thumbnails.

use super::Waker;
use crate::jobs::autosave::{self, SeriesIdentity};
use lumen_annotation::export;
use lumen_study::{LabelVolume, LoadControl, SeriesInfo, Volume};
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

/// What opening a folder produced.
pub struct LoadedStudy {
    pub folder: PathBuf,
    pub volume: Volume,
    /// The annotation autosaved for this series in an earlier session, if any.
    pub autosaved: Option<(LabelVolume, Vec<export::Segment>)>,
    /// Where this series' annotation is autosaved (named by its identity); None: not autosaved.
    pub autosave_file: Option<PathBuf>,
    /// The patient and series in words (empty when autosave is off: only its notes use it).
    pub described: String,
    /// Files skipped or series left out, each with its reason, to show the user.
    pub notes: Vec<String>,
    /// Every series found in the folder, and which of them is open.
    pub series: Vec<SeriesInfo>,
    pub open: usize,
}

/// Thumbnail edge in pixels.
pub const THUMBNAIL: usize = 96;

/// Starts loading `folder`; the reply arrives once on the returned channel.
pub fn open_folder(
    folder: &Path,
    autosaves: Option<PathBuf>,
    control: Arc<LoadControl>,
    wake: Waker,
) -> Receiver<Result<LoadedStudy, String>> {
    let folder = folder.to_path_buf();
    super::spawn_fallible(LOADER, wake, move || {
        load(&folder, autosaves.as_deref(), &control)
    })
}

/// Starts loading series `open` of an earlier discovery (the series browser's choice).
pub fn open_series(
    folder: &Path,
    series: Vec<SeriesInfo>,
    open: usize,
    autosaves: Option<PathBuf>,
    control: Arc<LoadControl>,
    wake: Waker,
) -> Receiver<Result<LoadedStudy, String>> {
    let folder = folder.to_path_buf();
    super::spawn_fallible(LOADER, wake, move || {
        load_chosen(
            &folder,
            series,
            open,
            Vec::new(),
            autosaves.as_deref(),
            &control,
        )
    })
}

/// Loads `folder` on this thread, as [`open_folder`] does in the background, without autosave:
/// for the command line.
pub fn load_now(folder: &Path) -> Result<LoadedStudy, String> {
    load(folder, None, &LoadControl::default())
}

/// The loader thread's name, as a panic report or a debugger shows it.
const LOADER: &str = "study-loader";

fn load(
    folder: &Path,
    autosaves: Option<&Path>,
    control: &LoadControl,
) -> Result<LoadedStudy, String> {
    let discovery =
        lumen_study::discover_cancellable(folder, control).map_err(|e| e.to_string())?;
    let mut notes: Vec<String> = discovery.problems.iter().map(|p| p.to_string()).collect();
    let Some(open) = (0..discovery.series.len()).max_by_key(|&i| discovery.series[i].slice_count)
    else {
        return Err(no_series(folder, &notes));
    };
    if discovery.series.len() > 1 {
        let series = &discovery.series[open];
        notes.push(format!(
            "{} series found; opened the largest, {} ({} slices); see Series to open another",
            discovery.series.len(),
            series.description,
            series.slice_count
        ));
    }
    load_chosen(folder, discovery.series, open, notes, autosaves, control)
}

/// Why nothing opened: the folder, and the files left out with their reasons (the first few:
/// damage usually repeats file after file).
fn no_series(folder: &Path, problems: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut message = format!("no DICOM image series found in {}", folder.display());
    if !problems.is_empty() {
        message += &format!(
            "; {} file(s) left out: {}",
            problems.len(),
            problems[..problems.len().min(SHOWN)].join("; ")
        );
        if problems.len() > SHOWN {
            message += &format!("; and {} more", problems.len() - SHOWN);
        }
    }
    message
}

fn load_chosen(
    folder: &Path,
    all: Vec<SeriesInfo>,
    open: usize,
    mut notes: Vec<String>,
    autosaves: Option<&Path>,
    control: &LoadControl,
) -> Result<LoadedStudy, String> {
    let series = all
        .get(open)
        .ok_or_else(|| format!("series {open} is not in {}", folder.display()))?;
    control
        .total
        .store(series.slice_count, std::sync::atomic::Ordering::Relaxed);
    let volume = lumen_study::load_series_with(series, control).map_err(|e| e.to_string())?;
    notes.extend(volume.warnings.iter().cloned());
    // only with autosave on: a UID-less series costs a hash of all its voxels
    let identity = autosaves.map(|_| SeriesIdentity::of(&volume));
    let described = identity
        .as_ref()
        .map(|i| i.described.clone())
        .unwrap_or_default();
    let mut autosave_file = autosaves
        .zip(identity.as_ref())
        .map(|(folder, identity)| identity.autosave_path(folder));
    let autosaved = autosave_file
        .clone()
        .filter(|path| path.is_file())
        .and_then(|path| match export::reimport_nifti(&path, &volume) {
            Ok(restored) => Some(restored),
            Err(e) => {
                let kept = match autosave::set_aside(&path) {
                    Ok(aside) => format!("it is kept as {}", aside.display()),
                    Err(why) => {
                        // never write over what could not be read
                        autosave_file = None;
                        format!("it could not be moved aside ({why}), so autosave is off")
                    }
                };
                notes.push(format!(
                    "The autosaved annotation of {described} could not be restored: {e}; {kept}"
                ));
                None
            }
        });
    Ok(LoadedStudy {
        folder: folder.to_path_buf(),
        volume,
        autosaved,
        autosave_file,
        described,
        notes,
        series: all,
        open,
    })
}

/// Makes a thumbnail of each series' middle image on a named thread; each arrives as
/// (series index, pixels) when ready. Series that cannot be read get none.
pub fn thumbnails(series: Vec<SeriesInfo>, wake: Waker) -> Receiver<(usize, Array2<u8>)> {
    let (reply, replies) = channel();
    let _ = std::thread::Builder::new()
        .name("thumbnails".into())
        .spawn(move || {
            for (i, s) in series.iter().enumerate() {
                if let Some(pixels) = thumbnail(s)
                    && reply.send((i, pixels)).is_err()
                {
                    return;
                }
                wake();
            }
        });
    replies
}

/// The middle image of a series, windowed by its default window, shrunk to fit `THUMBNAIL`.
pub fn thumbnail(series: &SeriesInfo) -> Option<Array2<u8>> {
    let mut paths: Vec<&Path> = series.frames.iter().map(|f| f.path.as_path()).collect();
    paths.sort();
    paths.dedup();
    let volume = lumen_study::load_file(paths.get(paths.len() / 2)?).ok()?;
    let [nx, ny, nz] = volume.dims;
    let z = nz / 2;
    let slice = volume.slice(z)?;
    let window = volume.default_window();
    let scale = (nx.max(ny) as f64 / THUMBNAIL as f64).max(1.0);
    let (w, h) = (
        ((nx as f64 / scale) as usize).max(1),
        ((ny as f64 / scale) as usize).max(1),
    );
    let values: Vec<f32> = (0..h * w)
        .map(|i| {
            let sx = (((i % w) as f64 * scale) as usize).min(nx - 1);
            let sy = (((i / w) as f64 * scale) as usize).min(ny - 1);
            slice[sy * nx + sx]
        })
        .collect();
    Array2::from_shape_vec((h, w), volume.to_grey(&values, window)).ok()
}
