//! The slice and overlay textures, remade when what they show (their key) changed.

use super::LumenApp;
use egui::{Color32, ColorImage, TextureHandle, TextureOptions};
use lumen_annotation::Document;
use lumen_engine::model::Prediction;
use lumen_study::Window;
use lumen_study::reformat::Cut;

/// What the slice texture shows: the slice, in the window.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct SliceKey {
    z: usize,
    window: Window,
}

/// What the overlay texture shows: the slice's labels at a document revision (segment colours
/// and visibility are revisions too), and the generation of the preview drawn on it, if one is.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct OverlayKey {
    z: usize,
    revision: u64,
    preview: Option<u64>,
}

impl LumenApp {
    pub(super) fn refresh_textures(&mut self, ctx: &egui::Context) {
        // a preview on a plane across the slices is drawn there, not on the slice
        let preview = self
            .preview
            .as_ref()
            .filter(|_| matches!(self.prompt_cut, Cut::Slice(_)));
        let generation = self.generation;
        let Some(study) = &mut self.study else { return };
        let [nx, ny, _] = study.volume.dims;
        let slice = SliceKey {
            z: study.z,
            window: study.window,
        };
        if study.slice_shown != Some(slice) {
            let values = study.volume.slice(study.z).unwrap_or(&[]);
            let grey = study.volume.to_grey(values, study.window);
            let image = ColorImage::from_gray([nx, ny], &grey);
            set_texture(
                ctx,
                &mut study.slice_texture,
                "slice",
                image,
                TextureOptions::LINEAR,
            );
            study.slice_shown = Some(slice);
        }
        let overlay = OverlayKey {
            z: study.z,
            revision: study.document.revision(),
            preview: preview.map(|_| generation),
        };
        if study.overlay_shown != Some(overlay) {
            let image = overlay_image(&study.document, study.z, [nx, ny], preview);
            set_texture(
                ctx,
                &mut study.overlay_texture,
                "overlay",
                image,
                TextureOptions::NEAREST,
            );
            study.overlay_shown = Some(overlay);
        }
    }
}

/// Puts `image` into the texture in `slot`, making it on first use.
pub(super) fn set_texture(
    ctx: &egui::Context,
    slot: &mut Option<TextureHandle>,
    name: &str,
    image: ColorImage,
    options: TextureOptions,
) {
    match slot {
        Some(texture) => texture.set(image, options),
        None => *slot = Some(ctx.load_texture(name, image, options)),
    }
}

/// The mask preview's colour, over the segments.
pub(super) fn preview_yellow() -> Color32 {
    Color32::from_rgba_unmultiplied(255, 220, 0, 120)
}

/// Each label's overlay colour: visible segments in their colours, the rest transparent.
pub(super) fn segment_colours(document: &Document) -> [Color32; 256] {
    let mut colours = [Color32::TRANSPARENT; 256];
    for s in document.segments().iter().filter(|s| s.visible) {
        let [r, g, b] = s.color;
        colours[s.label as usize] = Color32::from_rgba_unmultiplied(r, g, b, 110);
    }
    colours
}

/// Visible segments in their colours, the preview in yellow on top.
pub(super) fn overlay_image(
    document: &Document,
    z: usize,
    [nx, ny]: [usize; 2],
    preview: Option<&Prediction>,
) -> ColorImage {
    let colours = segment_colours(document);
    let labels = document.slice_labels(z);
    let mut pixels: Vec<Color32> = (0..nx * ny)
        .map(|i| {
            labels
                .get(i)
                .map_or(Color32::TRANSPARENT, |l| colours[*l as usize])
        })
        .collect();
    if let Some(p) = preview.filter(|p| p.mask.dim() == (ny, nx)) {
        for (pixel, inside) in pixels.iter_mut().zip(p.mask.iter()) {
            if *inside {
                *pixel = preview_yellow();
            }
        }
    }
    ColorImage::new([nx, ny], pixels)
}
