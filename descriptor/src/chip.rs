//! dlib's face chip: `get_face_chip_details(shape68, size, padding)` then `extract_image_chip`,
//! computed in f64 in dlib's order so that the chip equals dlib's.
//!
//! The chip is the image seen through a similarity (rotation, uniform scale, shift) fitted from
//! dlib's mean face (landmarks 27-54 and 60-64: nose, eyes, outer lips) to the landmarks. dlib
//! stores it as a rectangle and an angle, and samples the rotated rectangle with bilinear
//! interpolation; when the rectangle is more than twice the chip's side it first halves the image
//! with `pyramid_down<2>` as often as needed.

use facegender_core::align::{Affine, AlignError, fit_similarity, warp_rgb};
use facegender_core::image::RgbView;

/// dlib's mean face, landmarks 17-67, x then y (`get_face_chip_details`).
const MEAN_FACE_X: [f64; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const MEAN_FACE_Y: [f64; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345,
    0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852,
    0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388,
    0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746,
    0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

/// The padding `compute_face_descriptor` and `face_recognition` use.
pub const PADDING: f64 = 0.25;

/// Why a chip could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChipError {
    #[error("face chip: {0}")]
    Align(#[from] AlignError),
    #[error(
        "face chip: the face is over twice the chip's size, and dlib would sample an image pyramid"
    )]
    NeedsPyramid,
    #[error("face chip: the face lies wholly outside the image")]
    Outside,
}

/// A drectangle: left, top, right, bottom (inclusive, so width is `right - left + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub l: f64,
    pub t: f64,
    pub r: f64,
    pub b: f64,
}

impl Rect {
    fn area(&self) -> f64 {
        if self.l > self.r || self.t > self.b {
            return 0.0;
        }
        (self.r - self.l + 1.0) * (self.b - self.t + 1.0)
    }

    fn center(&self) -> [f64; 2] {
        [(self.l + self.r) / 2.0, (self.t + self.b) / 2.0]
    }

    /// `pyramid_down<2>::rect_down`.
    fn down(&self) -> Rect {
        Rect {
            l: self.l / 2.0 - 1.25,
            t: self.t / 2.0 - 0.75,
            r: self.r / 2.0 - 1.25,
            b: self.b / 2.0 - 0.75,
        }
    }
}

/// Where a chip lies in the image: dlib's `chip_details`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipDetails {
    pub rect: Rect,
    pub angle: f64,
    pub size: usize,
}

/// `get_face_chip_details` for 68 landmarks (integer pixels, as dlib's `full_object_detection`).
pub fn details(
    landmarks: &[[f64; 2]],
    size: usize,
    padding: f64,
) -> Result<ChipDetails, ChipError> {
    if landmarks.len() != 68 || size == 0 {
        return Err(AlignError::Landmarks.into());
    }
    let mut from = Vec::with_capacity(32);
    let mut to = Vec::with_capacity(32);
    for (i, &p) in landmarks.iter().enumerate().skip(17) {
        // dlib leaves out the eyebrows and the lower lip.
        if (17..=26).contains(&i) || (55..=59).contains(&i) || (65..=67).contains(&i) {
            continue;
        }
        let x = (padding + MEAN_FACE_X[i - 17]) / (2.0 * padding + 1.0);
        let y = (padding + MEAN_FACE_Y[i - 17]) / (2.0 * padding + 1.0);
        from.push([x * size as f64, y * size as f64]);
        to.push(p);
    }
    let tform = fit_similarity(&from, &to)?;
    // chip_details(from, to, dims): the rotation and scale of (1, 0), the rectangle about the
    // image of the chip's centre.
    let (px, py) = (tform.m[0], tform.m[3]);
    let angle = py.atan2(px);
    let scale = (px * px + py * py).sqrt();
    let half = size as f64 / 2.0;
    let (cx, cy) = tform.apply(half, half);
    // centered_drect(p, w, h): w - 1 and h - 1 about p.
    let w = size as f64 * scale - 1.0;
    Ok(ChipDetails {
        rect: Rect {
            l: cx - w / 2.0,
            t: cy - w / 2.0,
            r: cx + w / 2.0,
            b: cy + w / 2.0,
        },
        angle,
        size,
    })
}

fn rotate(center: [f64; 2], p: [f64; 2], angle: f64) -> [f64; 2] {
    let (s, c) = (angle.sin(), angle.cos());
    let (x, y) = (p[0] - center[0], p[1] - center[1]);
    [c * x - s * y + center[0], s * x + c * y + center[1]]
}

/// dlib's `drectangle -> rectangle`: each side rounded half up.
fn round(v: f64) -> i64 {
    (v + 0.5).floor() as i64
}

/// dlib's `pyramid_down<2>` on RGB: a separable 5-tap [1 4 6 4 1] filter, every other row and
/// column kept, sums truncated by 256; `None` for images of 8 pixels or fewer on a side (dlib
/// returns an empty image). Packed RGB out, with its width and height.
pub fn pyramid_down(img: &RgbView<'_>) -> Option<(Vec<u8>, usize, usize)> {
    let (w, h) = (img.width(), img.height());
    if w <= 8 || h <= 8 {
        return None;
    }
    let (tw, dw, dh) = ((w - 3) / 2, (w - 3) / 2, (h - 3) / 2);
    // rows filtered, every other column kept
    let mut temp = vec![[0u32; 3]; h * tw];
    for r in 0..h {
        for c in 0..tw {
            let p = |k: usize| img.get(2 * c + k, r);
            let (p1, p2, p3, p4, p5) = (p(0), p(1), p(2), p(3), p(4));
            for ch in 0..3 {
                temp[r * tw + c][ch] = p1[ch] as u32
                    + 4 * p2[ch] as u32
                    + 6 * p3[ch] as u32
                    + 4 * p4[ch] as u32
                    + p5[ch] as u32;
            }
        }
    }
    let mut down = vec![0u8; dw * dh * 3];
    for dr in 0..dh {
        let r = 2 + 2 * dr;
        for c in 0..tw {
            for ch in 0..3 {
                let t = |k: usize| temp[k * tw + c][ch];
                let sum = t(r - 2) + 4 * t(r - 1) + 6 * t(r) + 4 * t(r + 1) + t(r + 2);
                down[(dr * dw + c) * 3 + ch] = (sum / 256) as u8;
            }
        }
    }
    Some((down, dw, dh))
}

/// `extract_image_chip` with bilinear interpolation into `out` (`size` x `size` x 3). Faces more
/// than twice the chip's size are sampled from levels of [`pyramid_down`], as dlib does.
pub fn extract(img: &RgbView<'_>, d: &ChipDetails, out: &mut [u8]) -> Result<(), ChipError> {
    let size = (d.size * d.size) as f64;
    if out.len() != d.size * d.size * 3 {
        return Err(AlignError::OutputLength.into());
    }
    // How deep the pyramid goes, and the margin its filter needs around the face.
    let (mut depth_rect, mut grow) = (d.rect.down(), 2.0);
    while depth_rect.area() > size {
        depth_rect = depth_rect.down();
        grow = grow * 2.0 + 2.0;
    }
    // The rotated rectangle's bounds, grown and clipped to the image: dlib samples this
    // sub-image, so its corner shifts the transform by whole pixels.
    let c = d.rect.center();
    let corners = [
        [d.rect.l, d.rect.t],
        [d.rect.r, d.rect.t],
        [d.rect.l, d.rect.b],
        [d.rect.r, d.rect.b],
    ]
    .map(|p| rotate(c, p, d.angle));
    let fold = |f: fn(f64, f64) -> f64, k: usize| {
        corners[1..].iter().fold(corners[0][k], |a, p| f(a, p[k]))
    };
    let (w, h) = (img.width() as f64, img.height() as f64);
    let bl = round((fold(f64::min, 0) - grow).max(0.0));
    let bt = round((fold(f64::min, 1) - grow).max(0.0));
    let br = round((fold(f64::max, 0) + grow).min(w - 1.0));
    let bb = round((fold(f64::max, 1) + grow).min(h - 1.0));
    let sub = (br >= bl && bb >= bt)
        .then(|| {
            img.window(
                bl as usize,
                bt as usize,
                (br - bl + 1) as usize,
                (bb - bt + 1) as usize,
            )
        })
        .flatten();
    let Some(sub) = sub else {
        return Err(ChipError::Outside);
    };
    // The rectangle in sub-image coordinates, then down the pyramid while it stays over twice
    // the chip.
    let mut rect = Rect {
        l: d.rect.l - bl as f64,
        t: d.rect.t - bt as f64,
        r: d.rect.r - bl as f64,
        b: d.rect.b - bt as f64,
    };
    let mut levels: Vec<(Vec<u8>, usize, usize)> = Vec::new();
    while rect.down().area() > size {
        rect = rect.down();
        let next = match levels.last() {
            None => pyramid_down(&sub),
            Some((px, lw, lh)) => {
                pyramid_down(&RgbView::packed(px, *lw, *lh).map_err(|_| ChipError::Outside)?)
            }
        };
        let Some(next) = next else {
            // dlib's pyramid of a tiny image is empty: every chip pixel is background
            out.fill(0);
            return Ok(());
        };
        levels.push(next);
    }
    let source = match levels.last() {
        None => sub,
        Some((px, lw, lh)) => RgbView::packed(px, *lw, *lh).map_err(|_| ChipError::Outside)?,
    };
    // chip corners (0, 0), (size-1, 0), (0, size-1) onto the rectangle's rotated corners
    let c = rect.center();
    let tl = rotate(c, [rect.l, rect.t], d.angle);
    let tr = rotate(c, [rect.r, rect.t], d.angle);
    let bl = rotate(c, [rect.l, rect.b], d.angle);
    let n = (d.size - 1) as f64;
    let a = Affine {
        m: [
            (tr[0] - tl[0]) / n,
            (bl[0] - tl[0]) / n,
            tl[0],
            (tr[1] - tl[1]) / n,
            (bl[1] - tl[1]) / n,
            tl[1],
        ],
    };
    warp_rgb(&source, &a, d.size, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_down_keeps_a_flat_image_flat_and_sizes_like_dlib() {
        let px = vec![200u8; 21 * 13 * 3];
        let img = RgbView::packed(&px, 21, 13).unwrap();
        let (down, w, h) = pyramid_down(&img).unwrap();
        assert_eq!((w, h), (9, 5));
        // 200 * 16 * 16 / 256 = 200 exactly
        assert!(down.iter().all(|&v| v == 200));
        assert!(pyramid_down(&RgbView::packed(&px[..8 * 13 * 3], 8, 13).unwrap()).is_none());
    }

    #[test]
    fn pyramid_down_filters_1_4_6_4_1_and_truncates() {
        // one bright pixel at (4, 4) of a 9 x 9 image: output (1, 1) takes rows/cols 2..=6,
        // weight 6 x 6 = 36 of 256
        let mut px = vec![0u8; 9 * 9 * 3];
        px[(4 * 9 + 4) * 3] = 255;
        let (down, w, h) = pyramid_down(&RgbView::packed(&px, 9, 9).unwrap()).unwrap();
        assert_eq!((w, h), (3, 3));
        assert_eq!(down[(w + 1) * 3], (255 * 36 / 256) as u8);
        // (0, 0) takes rows/cols 0..=4: weight 1 x 1
        assert_eq!(down[0], 0);
    }

    #[test]
    fn a_face_beyond_the_image_is_an_error() {
        let px = vec![0u8; 20 * 20 * 3];
        let img = RgbView::packed(&px, 20, 20).unwrap();
        let d = ChipDetails {
            rect: Rect {
                l: 500.0,
                t: 500.0,
                r: 600.0,
                b: 600.0,
            },
            angle: 0.0,
            size: 150,
        };
        let mut out = vec![0u8; 150 * 150 * 3];
        assert_eq!(extract(&img, &d, &mut out), Err(ChipError::Outside));
    }
}
