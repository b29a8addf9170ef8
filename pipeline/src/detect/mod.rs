//! Face detection: a [`Detector`] finds the faces of a photo, best first, in photo pixels.
//!
//! Two detectors stand behind the trait: [`BlazeFace`] (MediaPipe's float ONNX through tract,
//! the host chain's) and [`Int8Detector`] (the project's int8 quantisation of it on the core,
//! exactly what the firmware runs). A new detector is one more `impl Detector`; the stages that
//! take a `&dyn Detector` (preprocess, predict, reference comparisons, bench) need no change.

pub mod blazeface;
pub mod face;
pub mod int8;

pub use blazeface::{BlazeFace, DEFAULT_THRESHOLD, NMS_IOU, RETRY_MARGIN, Variant};
pub use face::{Detector, Face, iou};
pub use int8::Int8Detector;
