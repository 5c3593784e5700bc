//! Lumen engine: the SAM runtime on ONNX Runtime and data-free quantization. No GUI, no DICOM.

pub mod grad;
pub mod graph;
pub mod model;
pub mod runtime;
