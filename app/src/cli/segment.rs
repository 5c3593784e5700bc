//! `lumen segment`: one image, one prompt, one mask PNG.

use super::parse::{parse_box, parse_point};
use anyhow::{Context, bail};
use lumen_engine::model::{BoxPrompt, Point, Prompt, SamModel};
use lumen_engine::runtime::SessionConfig;
use ndarray::Array2;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// Model bundle folder; default: the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// An 8-bit grey (or colour, taken as grey) image, already windowed (PNG, JPEG…).
    #[arg(long)]
    pub image: PathBuf,
    /// Box `x0,y0,x1,y1` in image pixels.
    #[arg(long = "box", value_parser = parse_box)]
    pub bbox: Option<BoxPrompt>,
    /// Point `x,y,1` (organ) or `x,y,0` (not organ); repeat for more.
    #[arg(long = "point", value_parser = parse_point)]
    pub points: Vec<Point>,
    /// Where to write the mask PNG (255 = organ).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let model_dir = args
        .model
        .clone()
        .unwrap_or_else(crate::paths::default_model_dir);
    // refused before the model runs, not after
    lumen_engine::fsio::check_target(&args.out)?;
    let image = read_grey(&args.image)?;
    let model = SamModel::load(&model_dir, &SessionConfig::default())
        .with_context(|| format!("cannot open model bundle {}", model_dir.display()))?;
    let prompt = Prompt {
        points: args.points.clone(),
        bbox: args.bbox,
        previous_logits: None,
    };
    let embedding = model
        .embed(image.view())
        .with_context(|| format!("encoding {}", args.image.display()))?;
    let prediction = model
        .predict(&embedding, &prompt)
        .with_context(|| format!("segmenting {}", args.image.display()))?;
    write_mask(&prediction.mask, &args.out)?;
    outln!(
        "mask {} pixels, predicted IoU {:.3} (output {}), written to {}",
        prediction.area(),
        prediction.iou,
        prediction.chosen,
        args.out.display()
    )?;
    Ok(())
}

/// Reads an image file as 8-bit grey [rows, cols].
pub fn read_grey(path: &Path) -> anyhow::Result<Array2<u8>> {
    let image = image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .into_luma8();
    let (w, h) = image.dimensions();
    let grey = Array2::from_shape_vec((h as usize, w as usize), image.into_raw())
        .with_context(|| format!("image {} has an inconsistent size", path.display()))?;
    if grey.is_empty() {
        bail!("image {} is empty", path.display());
    }
    Ok(grey)
}

/// Writes a mask as a 0/255 PNG, all or nothing (`fsio`): on any failure `out` keeps its old bytes.
pub fn write_mask(mask: &Array2<bool>, out: &Path) -> anyhow::Result<()> {
    use image::ImageEncoder;
    let (h, w) = mask.dim();
    let pixels: Vec<u8> = mask.iter().map(|m| if *m { 255 } else { 0 }).collect();
    lumen_engine::fsio::write_file(out, |file| {
        image::codecs::png::PngEncoder::new(file)
            .write_image(&pixels, w as u32, h as u32, image::ExtendedColorType::L8)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}
