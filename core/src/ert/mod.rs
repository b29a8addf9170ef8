//! dlib's shape predictor (Kazemi and Sullivan's ensemble of regression trees), exactly.
//!
//! - [`format`]: the compact model file (converted from dlib's own `.dat` on the host), checked
//!   once and read in place.
//! - [`predict`]: the cascade: similarity transform to the mean shape, feature pixels, tree walks,
//!   leaf deltas; the same f32/f64 arithmetic as dlib 19.24, so landmarks round to dlib's.
//! - `write` (feature `std`): writes the model file.
//! - `dlib` (feature `std`): reads dlib's own serialized `shape_predictor`.

#[cfg(feature = "std")]
pub mod dlib;
pub mod format;
pub mod predict;
#[cfg(feature = "std")]
pub mod write;

pub use format::{ErtError, ShapePredictor};
pub use predict::{Point, Rect};
