//! A real CT slice with its liver label (SAM-Med2D demo set, AMOS case 4), for tests that run
//! `lumen segment`; included by `#[path]` where needed.

use std::path::{Path, PathBuf};

/// The slice's PNG and its liver label.
pub fn demo_slice() -> (PathBuf, image::GrayImage) {
    let demo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sam_med2d_demo/data_demo");
    let label = image::open(demo.join("masks/amos_0004_75_liver_000.png"))
        .unwrap()
        .into_luma8();
    (demo.join("images/amos_0004_75.png"), label)
}

/// The label's tight box `(x0, y0, x1, y1)`, inclusive.
pub fn label_box(label: &image::GrayImage) -> (u32, u32, u32, u32) {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in label.enumerate_pixels() {
        if p.0[0] > 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    (x0, y0, x1, y1)
}
