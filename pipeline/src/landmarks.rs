//! dlib's 68-point landmark model on the host: read dlib's own file, convert it to the core's
//! format (kept in memory), and the map from BlazeFace's box to the box dlib's model expects.

use std::path::Path;

use facegender_core::ert::{Point, Rect, ShapePredictor, dlib};
use facegender_core::image::{GrayView, RgbView, rgb_to_intensity};
use image::RgbImage;

use crate::detect::Face;
use crate::error::Context;
use crate::model_dir;

/// The converted model bytes; parse them with [`ShapePredictor::parse`] once and share the view.
pub struct LandmarkModel {
    pub bytes: Vec<u8>,
}

impl LandmarkModel {
    /// Reads dlib's `shape_predictor_68_face_landmarks.dat` (or a file already in the core's
    /// format) and converts it.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let raw = model_dir::read(path)?;
        if raw.starts_with(&facegender_core::ert::format::MAGIC) {
            ShapePredictor::parse(&raw).map_err(|e| crate::invalid!("{}: {e}", path.display()))?;
            return Ok(Self { bytes: raw });
        }
        let spec = dlib::parse(&raw).map_err(|e| model_dir::ModelFileError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let bytes = spec
            .to_bytes()
            .map_err(|e| crate::invalid!("{e}"))
            .context("converting the dlib model")?;
        Ok(Self { bytes })
    }

    pub fn predictor(&self) -> crate::Result<ShapePredictor<'_>> {
        ShapePredictor::parse(&self.bytes).map_err(|e| crate::invalid!("landmark model: {e}"))
    }
}

/// dlib's intensity image `(r + g + b) / 3` of a photo.
pub fn intensity(img: &RgbImage) -> Vec<u8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0u8; w * h];
    let view = RgbView::packed(img.as_raw(), w, h).expect("an RgbImage is packed");
    rgb_to_intensity(&view, &mut out);
    out
}

/// 68 landmarks of the face in `rect`, rounded as dlib rounds.
pub fn predict(
    sp: &ShapePredictor<'_>,
    grey: &[u8],
    width: u32,
    height: u32,
    rect: Rect,
) -> crate::Result<Vec<Point>> {
    let view = GrayView::new(grey, width as usize, height as usize, width as usize)?;
    let mut out = vec![Point::default(); sp.landmark_count()];
    sp.predict(&view, rect, &mut out)?;
    Ok(out)
}

/// Maps a BlazeFace box to the box dlib's HOG detector would draw around the same face, which is
/// what dlib's landmark model was trained on: each side is the box centre plus a fixed multiple
/// of the box size. The multiples come from [`fit_box_map`] over dlib's own boxes
/// (`facegender fit-dlib-box`, recorded in the README).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BoxMap {
    /// left, top, right, bottom offsets from the box centre, in units of the box size
    pub sides: [f64; 4],
}

impl BoxMap {
    /// Fitted on the 748 faces of `reference/dlib-68/fairface-train-2000.json` (see the README).
    pub const FITTED: Self = Self {
        sides: [-0.4894, -0.5142, 0.436, 0.4157],
    };

    pub fn rect(&self, f: &Face) -> Rect {
        let (cx, cy) = (
            ((f.bbox[0] + f.bbox[2]) / 2.0) as f64,
            ((f.bbox[1] + f.bbox[3]) / 2.0) as f64,
        );
        let s = ((f.width() + f.height()) / 2.0) as f64;
        let r = |c: f64, k: usize| (c + self.sides[k] * s).round() as i32;
        Rect {
            left: r(cx, 0),
            top: r(cy, 1),
            right: r(cx, 2),
            bottom: r(cy, 3),
        }
    }
}

/// Least-squares fit of [`BoxMap`] from (BlazeFace face, dlib rectangle) pairs: each side's
/// offset is the mean of `(side - centre) / size`.
pub fn fit_box_map(pairs: &[(Face, Rect)]) -> BoxMap {
    let mut sum = [0f64; 4];
    for (f, r) in pairs {
        let (cx, cy) = (
            ((f.bbox[0] + f.bbox[2]) / 2.0) as f64,
            ((f.bbox[1] + f.bbox[3]) / 2.0) as f64,
        );
        let s = ((f.width() + f.height()) / 2.0) as f64;
        sum[0] += (r.left as f64 - cx) / s;
        sum[1] += (r.top as f64 - cy) / s;
        sum[2] += (r.right as f64 - cx) / s;
        sum[3] += (r.bottom as f64 - cy) / s;
    }
    let n = pairs.len().max(1) as f64;
    BoxMap {
        sides: sum.map(|v| (v / n * 1e4).round() / 1e4),
    }
}

/// Inter-ocular distance: between the centres of the two eyes (points 36-41 and 42-47).
pub fn inter_ocular(points: &[[f64; 2]]) -> f64 {
    let centre = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let (x, y) = r.fold((0.0, 0.0), |(x, y), i| (x + points[i][0], y + points[i][1]));
        [x / n, y / n]
    };
    let (a, b) = (centre(36..42), centre(42..48));
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}
