//! Making the models the product runs, from what training and the detector's authors publish:
//!
//! - [`classifier`]: a trained run to float ONNX, int8 ONNX and the core's int8 file
//!   (`facegender export`), with batch-norm folding and calibration;
//! - [`detector`]: BlazeFace quantised to int8 for the device, its threshold calibrated, and the
//!   device chain's keypoint template (`quantize-detector`, `fit-keypoint-template`);
//! - [`onnx_import`]: a float ONNX CNN to the core's int8 format;
//! - [`quantize`]: the shared rules (power-of-two scales, per-channel weights, int32 biases).

pub mod classifier;
pub mod detector;
pub mod onnx_import;
pub mod quantize;
