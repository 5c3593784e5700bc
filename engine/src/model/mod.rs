//! Model bundles and the SAM I/O contract: manifest, pre-processing, prompts, masks.

mod bundle;
mod error;
mod intensity;
mod manifest;
mod postprocess;
mod preprocess;
mod prompt;
mod resize;
mod sam;
mod unsigned_weights;

pub use bundle::{MANIFEST_FILE, ModelBundle, read_manifest, sha256_file};
pub use error::ModelError;
pub use manifest::{
    FileEntry, Files, IntensityRule, IntensityRules, LoneOutput, Manifest, Normalize,
    NormalizeRule, Precision, PromptRules, ResizeFilter, ShippedSynthetic,
};
pub use postprocess::{prepadded_size, resize_bilinear, upscale_mask_logits};
pub use preprocess::{InputFrame, InputRecipe, encoder_input};
pub use prompt::{BoxPrompt, Point, Prompt};
pub use resize::resize_area;
pub use sam::{Embedding, Prediction, SamModel};
pub use unsigned_weights::{int8_kernels_saturate, to_unsigned_weights};
