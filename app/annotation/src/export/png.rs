//! PNG export: binary masks per segment and slice, and windowed overlays per slice.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use image::codecs::png::PngEncoder;

use super::{ExportError, Result, Segment, write_atomic};
use lumen_study::{LabelVolume, Volume, Window};

fn write_png(
    path: &Path,
    pixels: &[u8],
    width: usize,
    height: usize,
    color: image::ExtendedColorType,
) -> Result<()> {
    write_atomic(path, |w| {
        PngEncoder::new(w)
            .write_image(pixels, width as u32, height as u32, color)
            .map_err(std::io::Error::other)
    })
}

/// Writes the new folder `dir` whole or not at all (`fsio::write_folder`): `fill` writes into a
/// temporary folder and gets the final folder's path to name the files it returns.
fn write_set(dir: &Path, fill: impl FnOnce(&Path) -> Result<Vec<PathBuf>>) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    lumen_engine::fsio::write_folder(dir, |tmp| {
        written = fill(tmp)?
            .into_iter()
            .filter_map(|p| p.strip_prefix(tmp).ok().map(|rel| dir.join(rel)))
            .collect();
        Ok::<(), ExportError>(())
    })?;
    Ok(written)
}

/// Write one binary mask PNG (0 / 255, 8-bit grey) per segment and slice that holds it:
/// `<dir>/<label>_<name>/slice_<z>.png` (z = slice index in the volume, 4 digits). `dir` is a
/// new (or empty) folder, written all or nothing. Returns the files written.
pub fn write_png_masks(
    dir: &Path,
    labels: &LabelVolume,
    segments: &[Segment],
) -> Result<Vec<PathBuf>> {
    write_set(dir, |dir| mask_files(dir, labels, segments))
}

fn mask_files(dir: &Path, labels: &LabelVolume, segments: &[Segment]) -> Result<Vec<PathBuf>> {
    let [nx, ny, nz] = labels.dims;
    let plane = nx * ny;
    let mut written = Vec::new();
    for seg in segments {
        let safe = lumen_engine::fsio::file_safe(&seg.name);
        let sub = dir.join(format!("{:03}_{safe}", seg.label));
        let mut created = false;
        for z in 0..nz {
            let src = &labels.labels[z * plane..(z + 1) * plane];
            if !src.contains(&seg.label) {
                continue;
            }
            if !created {
                std::fs::create_dir_all(&sub).map_err(|e| ExportError::write(&sub, e))?;
                created = true;
            }
            let px: Vec<u8> = src
                .iter()
                .map(|&l| if l == seg.label { 255 } else { 0 })
                .collect();
            let p = sub.join(format!("slice_{z:04}.png"));
            write_png(&p, &px, nx, ny, image::ExtendedColorType::L8)?;
            written.push(p);
        }
    }
    Ok(written)
}

/// Write one RGB overlay PNG per slice holding any segment: the slice in `window`, segments blended
/// in their colours (`alpha` 0..1): `<dir>/overlay_<z>.png`. `dir` is a new (or empty) folder,
/// written all or nothing. Returns the files written.
pub fn write_png_overlays(
    dir: &Path,
    volume: &Volume,
    labels: &LabelVolume,
    segments: &[Segment],
    window: Window,
    alpha: f32,
) -> Result<Vec<PathBuf>> {
    write_set(dir, |dir| {
        overlay_files(dir, volume, labels, segments, window, alpha)
    })
}

fn overlay_files(
    dir: &Path,
    volume: &Volume,
    labels: &LabelVolume,
    segments: &[Segment],
    window: Window,
    alpha: f32,
) -> Result<Vec<PathBuf>> {
    if labels.dims != volume.dims {
        return Err(ExportError::mismatch(
            dir,
            "label map and volume have different sizes",
        ));
    }
    let [nx, ny, nz] = volume.dims;
    let plane = nx * ny;
    let alpha = alpha.clamp(0.0, 1.0);
    let mut colours = vec![None; usize::from(u16::MAX) + 1];
    for s in segments {
        colours[usize::from(s.label)] = Some(s.color);
    }
    let mut written = Vec::new();
    for z in 0..nz {
        let lab = &labels.labels[z * plane..(z + 1) * plane];
        if lab.iter().all(|&l| l == 0) {
            continue;
        }
        let grey = volume.to_grey(&volume.voxels[z * plane..(z + 1) * plane], window);
        let mut rgb = Vec::with_capacity(plane * 3);
        for (g, &l) in grey.iter().zip(lab) {
            let g = f32::from(*g);
            match colours[usize::from(l)] {
                Some(c) if l != 0 => {
                    for ch in c {
                        rgb.push((g * (1.0 - alpha) + f32::from(ch) * alpha).round() as u8);
                    }
                }
                _ => rgb.extend_from_slice(&[g as u8; 3]),
            }
        }
        let p = dir.join(format!("overlay_{z:04}.png"));
        write_png(&p, &rgb, nx, ny, image::ExtendedColorType::Rgb8)?;
        written.push(p);
    }
    Ok(written)
}
