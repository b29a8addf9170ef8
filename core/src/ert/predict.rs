//! The cascade of regression trees, following dlib 19.24's arithmetic step by step
//! (`shape_predictor::operator()`, `extract_feature_pixel_values`, `regression_tree`):
//! the similarity transform in f64 cast to f32, feature offsets in f32 without fused
//! multiply-add, the unit-box-to-image map in f64, pixel coordinates rounded as
//! `floor(x + 0.5)`, and leaf deltas added in f32, tree by tree.

use super::format::{Dims, ErtError, MAX_FEATURES, MAX_LANDMARKS, ShapePredictor};
use crate::container::u16_at;
use crate::image::GrayView;

/// A dlib rectangle: inclusive corners, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rect {
    pub left: i32,
    pub top: i32,
    pub right: i32,
    pub bottom: i32,
}

/// A landmark rounded to whole pixels as dlib rounds (`floor(x + 0.5)`); may lie outside the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

#[inline]
fn f32_at(b: &[u8], at: usize) -> f32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => f32::from_le_bytes([a, c, d, e]),
        _ => 0.0,
    }
}

/// dlib's `point(dpoint)`: `floor(v + 0.5)`.
#[inline]
fn round_dlib(v: f64) -> i64 {
    libm::floor(v + 0.5) as i64
}

impl ShapePredictor<'_> {
    /// Predicts the landmarks of the face in `rect`, in image coordinates (sub-pixel, f64), into
    /// `out` (one `[x, y]` per landmark).
    pub fn predict_subpixel(
        &self,
        img: &GrayView<'_>,
        rect: Rect,
        out: &mut [[f64; 2]],
    ) -> Result<(), ErtError> {
        self.output_len(out.len())?;
        let mut shape = [0f32; 2 * MAX_LANDMARKS];
        self.run(img, rect, &mut shape)?;
        let (sx, sy) = (
            (rect.right - rect.left) as f64,
            (rect.bottom - rect.top) as f64,
        );
        for (i, p) in out.iter_mut().enumerate() {
            *p = [
                sx * shape[2 * i] as f64 + rect.left as f64,
                sy * shape[2 * i + 1] as f64 + rect.top as f64,
            ];
        }
        Ok(())
    }

    /// Predicts the landmarks of the face in `rect`, rounded to pixels exactly as dlib rounds.
    pub fn predict(
        &self,
        img: &GrayView<'_>,
        rect: Rect,
        out: &mut [Point],
    ) -> Result<(), ErtError> {
        let n = self.output_len(out.len())?;
        let mut sub = [[0f64; 2]; MAX_LANDMARKS];
        self.predict_subpixel(img, rect, &mut sub[..n])?;
        for (p, s) in out.iter_mut().zip(&sub[..n]) {
            *p = Point {
                x: clamp_i32(round_dlib(s[0])),
                y: clamp_i32(round_dlib(s[1])),
            };
        }
        Ok(())
    }

    /// The landmark count, if `given` (an output slice's length) holds one point per landmark.
    fn output_len(&self, given: usize) -> Result<usize, ErtError> {
        let expected = self.landmark_count();
        if given == expected {
            Ok(expected)
        } else {
            Err(ErtError::OutputLength { expected, given })
        }
    }

    /// The cascade on the normalised shape (unit-box coordinates), written to `shape[..2n]`.
    fn run(
        &self,
        img: &GrayView<'_>,
        rect: Rect,
        shape: &mut [f32; 2 * MAX_LANDMARKS],
    ) -> Result<(), ErtError> {
        if rect.right < rect.left || rect.bottom < rect.top {
            return Err(ErtError::BadRect);
        }
        let d: Dims = self.dims();
        let n = d.landmarks;
        let initial = self.initial_shape();
        for (i, s) in shape[..2 * n].iter_mut().enumerate() {
            *s = f32_at(initial, 4 * i);
        }
        let (sx, sy) = (
            (rect.right - rect.left) as f64,
            (rect.bottom - rect.top) as f64,
        );
        let (left, top) = (rect.left as f64, rect.top as f64);
        let (w, h) = (img.width() as i64, img.height() as i64);
        let mut pixels = [0u8; MAX_FEATURES];
        let (splits, leaf_len) = (d.splits(), 8 * n);
        for c in 0..d.cascades {
            let k = self.cascade(c);
            let t = similarity(initial, &shape[..2 * n]);
            for (i, px) in pixels[..d.features].iter_mut().enumerate() {
                let a = u16_at(k.anchors, 2 * i) as usize;
                let (dx, dy) = (f32_at(k.deltas, 8 * i), f32_at(k.deltas, 8 * i + 4));
                let u = (t[0] * dx + t[1] * dy) + shape[2 * a];
                let v = (t[2] * dx + t[3] * dy) + shape[2 * a + 1];
                let x = round_dlib(sx * u as f64 + left);
                let y = round_dlib(sy * v as f64 + top);
                *px = if (0..w).contains(&x) && (0..h).contains(&y) {
                    img.get(x as usize, y as usize)
                } else {
                    0
                };
            }
            let leaves_per_tree = (splits + 1) * leaf_len;
            for tree in 0..d.trees {
                let nodes = &k.splits[tree * splits * 8..(tree + 1) * splits * 8];
                let mut node = 0;
                while node < splits {
                    let rec = &nodes[node * 8..node * 8 + 8];
                    let (i1, i2) = (u16_at(rec, 0) as usize, u16_at(rec, 2) as usize);
                    let diff = pixels[i1] as f32 - pixels[i2] as f32;
                    node = if diff > f32_at(rec, 4) {
                        2 * node + 1
                    } else {
                        2 * node + 2
                    };
                }
                let leaf = tree * leaves_per_tree + (node - splits) * leaf_len;
                let delta = &k.leaves[leaf..leaf + leaf_len];
                for (s, b) in shape[..2 * n].iter_mut().zip(delta.chunks_exact(4)) {
                    *s += f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
        Ok(())
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The 2x2 part of dlib's `find_similarity_transform(from = initial, to = current)`, in f64,
/// cast to f32 as `extract_feature_pixel_values` does. Row-major `[m00, m01, m10, m11]`.
///
/// dlib takes an SVD of the cross-covariance; for 2x2 the optimal scaled rotation has the closed
/// form `[[p, -q], [q, p]] / sigma_from` with `p = cov00 + cov11`, `q = cov10 - cov01`, reflection
/// case included, which is the same matrix (this step is not rounding-critical: see the tests).
fn similarity(from: &[u8], to: &[f32]) -> [f32; 4] {
    let n = to.len() / 2;
    let (mut mf, mut mt) = ([0f64; 2], [0f64; 2]);
    for i in 0..n {
        mf[0] += f32_at(from, 8 * i) as f64;
        mf[1] += f32_at(from, 8 * i + 4) as f64;
        mt[0] += to[2 * i] as f64;
        mt[1] += to[2 * i + 1] as f64;
    }
    for m in [&mut mf, &mut mt] {
        m[0] /= n as f64;
        m[1] /= n as f64;
    }
    let mut sigma_from = 0f64;
    let mut cov = [0f64; 4];
    for i in 0..n {
        let df = [
            f32_at(from, 8 * i) as f64 - mf[0],
            f32_at(from, 8 * i + 4) as f64 - mf[1],
        ];
        let dt = [to[2 * i] as f64 - mt[0], to[2 * i + 1] as f64 - mt[1]];
        sigma_from += df[0] * df[0] + df[1] * df[1];
        cov[0] += dt[0] * df[0];
        cov[1] += dt[0] * df[1];
        cov[2] += dt[1] * df[0];
        cov[3] += dt[1] * df[1];
    }
    sigma_from /= n as f64;
    let inv_n = 1.0 / n as f64;
    for c in cov.iter_mut() {
        *c *= inv_n;
    }
    if sigma_from == 0.0 {
        return [1.0, 0.0, 0.0, 1.0];
    }
    let p = cov[0] + cov[3];
    let q = cov[2] - cov[1];
    [
        (p / sigma_from) as f32,
        (-q / sigma_from) as f32,
        (q / sigma_from) as f32,
        (p / sigma_from) as f32,
    ]
}
