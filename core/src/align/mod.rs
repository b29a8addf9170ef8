//! Face alignment: an affine map from crop pixels to image pixels, and a bilinear warp.
//!
//! - [`three_point`]: openface's `AlignDlib.align`: three landmarks (inner eyes and bottom lip,
//!   or outer eyes and nose) onto the min-max normalised mean face scaled to the crop.
//! - [`similarity`]: a least-squares similarity (rotation, uniform scale, shift) over all 68
//!   landmarks onto the same template; steadier on profile or occluded faces.
//! - [`warp_rgb`]: dlib's `transform_image` with `interpolate_bilinear`: f64 sampling, values
//!   truncated to u8, black where any neighbour lies outside the image.
//!
//! Computed in f64 exactly as dlib does, so a crop from dlib's landmarks equals dlib's crop.

mod template;

pub use template::OPENFACE_TEMPLATE;

use crate::image::RgbView;

/// Landmark indices (iBUG 68) of openface's "inner eyes and bottom lip".
pub const INNER_EYES_AND_BOTTOM_LIP: [usize; 3] = [39, 42, 57];
/// Landmark indices of openface's "outer eyes and nose".
pub const OUTER_EYES_AND_NOSE: [usize; 3] = [36, 45, 33];

/// Why an alignment could not be computed or applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AlignError {
    /// Not one landmark per template point, or an index outside the landmarks.
    Landmarks,
    /// The points are collinear or coincide: no unique transform.
    Degenerate,
    /// The output buffer is not `size * size * 3` bytes, or the size is zero.
    OutputLength,
    /// A landmark or parameter is NaN or infinite.
    NotFinite,
}

impl core::fmt::Display for AlignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Landmarks => "landmarks do not match the template",
            Self::Degenerate => "landmarks are degenerate (collinear or coincident)",
            Self::OutputLength => "output buffer is not size x size x 3 bytes",
            Self::NotFinite => "landmark or parameter is not finite",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AlignError {}

/// Maps crop pixel `(c, r)` to image point `(m[0]*c + m[1]*r + m[2], m[3]*c + m[4]*r + m[5])`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Affine {
    pub m: [f64; 6],
}

impl Affine {
    #[inline]
    pub fn apply(&self, c: f64, r: f64) -> (f64, f64) {
        let m = &self.m;
        ((m[0] * c + m[1] * r) + m[2], (m[3] * c + m[4] * r) + m[5])
    }
}

/// The template point `i` in crop pixels: openface's `crop * MINMAX_TEMPLATE[i]`, shrunk about the
/// centre by `scale` (openface forks' option; 1.0 is the original).
pub fn template_point(i: usize, crop: usize, scale: f64) -> [f64; 2] {
    let t = &OPENFACE_TEMPLATE;
    let mut out = [0.0; 2];
    for (axis, o) in out.iter_mut().enumerate() {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in t.iter() {
            lo = lo.min(p[axis]);
            hi = hi.max(p[axis]);
        }
        let unit = crop as f64 * (t[i][axis] - lo) / (hi - lo);
        *o = unit * scale + crop as f64 * (1.0 - scale) / 2.0;
    }
    out
}

fn finite(points: &[[f64; 2]]) -> bool {
    points.iter().all(|p| p[0].is_finite() && p[1].is_finite())
}

/// openface's three-point alignment: the affine taking the template points `set` (in a
/// `crop`-pixel square) to `landmarks[set]`, i.e. crop pixels to image pixels.
pub fn three_point(
    landmarks: &[[f64; 2]],
    set: [usize; 3],
    crop: usize,
    scale: f64,
) -> Result<Affine, AlignError> {
    if landmarks.len() != OPENFACE_TEMPLATE.len() || set.iter().any(|&i| i >= landmarks.len()) {
        return Err(AlignError::Landmarks);
    }
    if !finite(landmarks) || !scale.is_finite() {
        return Err(AlignError::NotFinite);
    }
    let dst = set.map(|i| template_point(i, crop, scale));
    let src = set.map(|i| landmarks[i]);
    // Solve [c r 1] * [a b t]^T = x for both rows by Cramer's rule.
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let a = [
        [dst[0][0], dst[0][1], 1.0],
        [dst[1][0], dst[1][1], 1.0],
        [dst[2][0], dst[2][1], 1.0],
    ];
    let d = det3(a);
    if d == 0.0 || !d.is_finite() {
        return Err(AlignError::Degenerate);
    }
    let mut m = [0.0; 6];
    for axis in 0..2 {
        for k in 0..3 {
            let mut ak = a;
            for (row, s) in ak.iter_mut().zip(&src) {
                row[k] = s[axis];
            }
            m[3 * axis + k] = det3(ak) / d;
        }
    }
    Ok(Affine { m })
}

/// Least-squares similarity taking `from[i]` to `to[i]` (Umeyama, no reflection).
pub fn fit_similarity(from: &[[f64; 2]], to: &[[f64; 2]]) -> Result<Affine, AlignError> {
    if from.len() != to.len() || from.len() < 2 {
        return Err(AlignError::Landmarks);
    }
    if !finite(from) || !finite(to) {
        return Err(AlignError::NotFinite);
    }
    let n = from.len() as f64;
    let (mut mf, mut mt) = ([0.0f64; 2], [0.0f64; 2]);
    for (f, t) in from.iter().zip(to) {
        mf[0] += f[0];
        mf[1] += f[1];
        mt[0] += t[0];
        mt[1] += t[1];
    }
    mf = mf.map(|v| v / n);
    mt = mt.map(|v| v / n);
    let (mut sigma, mut p, mut q) = (0.0, 0.0, 0.0);
    for (f, t) in from.iter().zip(to) {
        let (fx, fy, tx, ty) = (f[0] - mf[0], f[1] - mf[1], t[0] - mt[0], t[1] - mt[1]);
        sigma += fx * fx + fy * fy;
        p += tx * fx + ty * fy;
        q += ty * fx - tx * fy;
    }
    if sigma == 0.0 {
        return Err(AlignError::Degenerate);
    }
    let (a, b) = (p / sigma, q / sigma);
    Ok(Affine {
        m: [
            a,
            -b,
            mt[0] - (a * mf[0] - b * mf[1]),
            b,
            a,
            mt[1] - (b * mf[0] + a * mf[1]),
        ],
    })
}

/// Similarity alignment over all landmarks: template (in a `crop`-pixel square, shrunk by
/// `scale`) to `landmarks`.
pub fn similarity(landmarks: &[[f64; 2]], crop: usize, scale: f64) -> Result<Affine, AlignError> {
    if landmarks.len() != OPENFACE_TEMPLATE.len() {
        return Err(AlignError::Landmarks);
    }
    let mut from = [[0.0; 2]; 68];
    for (i, f) in from.iter_mut().enumerate() {
        *f = template_point(i, crop, scale);
    }
    fit_similarity(&from, landmarks)
}

/// Warps `src` into the `size` x `size` RGB crop `out` through `a` (crop -> image), with dlib's
/// bilinear interpolation: f64 weights grouped as dlib groups them, truncated to u8; black where
/// any of the four neighbours is outside the image.
pub fn warp_rgb(
    src: &RgbView<'_>,
    a: &Affine,
    size: usize,
    out: &mut [u8],
) -> Result<(), AlignError> {
    if size == 0 || size.checked_mul(size).and_then(|n| n.checked_mul(3)) != Some(out.len()) {
        return Err(AlignError::OutputLength);
    }
    if a.m.iter().any(|v| !v.is_finite()) {
        return Err(AlignError::NotFinite);
    }
    let (w, h) = (src.width() as f64, src.height() as f64);
    for r in 0..size {
        for c in 0..size {
            let (x, y) = a.apply(c as f64, r as f64);
            let (fl, ft) = (libm::floor(x), libm::floor(y));
            let px = &mut out[(r * size + c) * 3..][..3];
            // right = left + 1 < width, bottom = top + 1 < height
            if !(fl >= 0.0 && ft >= 0.0 && fl + 1.0 < w && ft + 1.0 < h) {
                px.fill(0);
                continue;
            }
            let (l, t) = (fl as usize, ft as usize);
            let (fx, fy) = (x - fl, y - ft);
            let (tl, tr, bl, br) = (
                src.get(l, t),
                src.get(l + 1, t),
                src.get(l, t + 1),
                src.get(l + 1, t + 1),
            );
            for k in 0..3 {
                let top = (1.0 - fx) * tl[k] as f64 + fx * tr[k] as f64;
                let bottom = (1.0 - fx) * bl[k] as f64 + fx * br[k] as f64;
                px[k] = ((1.0 - fy) * top + fy * bottom) as u8;
            }
        }
    }
    Ok(())
}
