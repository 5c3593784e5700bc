//! Lumen engine: the SAM runtime on ONNX Runtime and data-free quantization. No GUI, no DICOM.

pub mod eval;
pub mod fsio;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod grad;
pub mod graph;
pub mod model;
pub mod quant;
pub mod runtime;
pub mod synth;

pub use quant::requantize;
