//! Evaluation (DESIGN.md §4): Dice and IoU, largest components and boxes, the box-prompt
//! protocol on a slice, and reports aggregated per organ and over organs.
//!
//! Data sets are the app's concern: this module takes 8-bit slices and label maps.

mod clicks;
mod components;
mod jitter;
mod metrics;
mod protocol;
mod report;

pub use clicks::{next_click, squared_distance_inside};
pub use components::{PixelBox, box_prompt, largest_component, tight_box};
pub use jitter::{JITTER_LIMIT, JITTER_SIGMA, Rng, jitter_box};
pub use metrics::{Overlap, dice, iou, overlap};
pub use protocol::{
    DEFAULT_MIN_AREA, EvalError, Organ, ProtocolOptions, Sample, Target, evaluate_slice, score,
    targets,
};
pub use report::{Accumulator, OrganScore, Overall, Report};
