//! The facegender pipeline on the host, as a library: everything between a photo and a label,
//! and between a folder of photos and a clean split, without burn (training) or clap (the CLI).
//!
//! The stages, in the order a photo meets them: [`decode`], [`detect`] (a [`detect::Detector`]:
//! BlazeFace in float, or the device's int8 detector), [`landmarks`] (dlib's 68 points),
//! [`align`], [`classify`] (the int8 classifier and its input conversion), [`predict`] (the
//! whole chain on a photo, host or device; [`predictor`] holds its models, loaded once), [`host`] (the host-grade classifier: dlib's
//! face-recognition descriptor with a trained head, combined with the student). Around them: [`preprocess`] (photos in, crops out),
//! [`dataset`] (listing, filter, split, labelled crops), [`eval`] (metrics and charts),
//! [`reference`](mod@reference) (dlib's recorded outputs), [`model_dir`] (where model files live and what an
//! exported model folder holds), [`augment`], [`sheet`], [`cpu`], [`progress`] and [`fsutil`].

pub mod align;
pub mod augment;
pub mod classify;
pub mod cpu;
pub mod dataset;
pub mod decode;
pub mod detect;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod host;
pub mod landmarks;
pub mod model_dir;
pub mod predict;
pub mod predictor;
pub mod preprocess;
pub mod progress;
pub mod reference;
pub mod sheet;
pub use error::{Error, Result};
