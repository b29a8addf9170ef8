//! Image augmentation for training, every transform seeded and reproducible.
//!
//! [`Augment::apply`] draws one set of parameters from a seeded ChaCha8 generator and applies, in
//! order: a random crop (an affine warp with translation, scale jitter and a small rotation;
//! edges replicated), a horizontal flip, then brightness, contrast and saturation. The same
//! (image, seed) always gives the same pixels. [`standardize`] is the per-image standardisation.

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Augmentation strengths. Defaults suit aligned face crops.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Largest shift, as a fraction of the side (random crop with edge padding).
    pub translate: f32,
    /// Scale jitter: the crop is zoomed by a factor in `[1 - s, 1 + s]`.
    pub scale: f32,
    /// Largest rotation in degrees.
    pub rotate_deg: f32,
    /// Probability of a horizontal flip.
    pub flip: f32,
    /// Brightness: add up to this fraction of full scale, either way.
    pub brightness: f32,
    /// Contrast: multiply deviations from the mean by a factor in `[1 - c, 1 + c]`.
    pub contrast: f32,
    /// Saturation: scale colour away from grey by a factor in `[1 - s, 1 + s]`.
    pub saturation: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            translate: 0.08,
            scale: 0.08,
            rotate_deg: 8.0,
            flip: 0.5,
            brightness: 0.15,
            contrast: 0.25,
            saturation: 0.3,
        }
    }
}

/// The parameters drawn for one augmented image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    pub dx: f32,
    pub dy: f32,
    pub zoom: f32,
    pub angle: f32,
    pub flip: bool,
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl Augment {
    /// No change at all.
    pub const NONE: Self = Self {
        translate: 0.0,
        scale: 0.0,
        rotate_deg: 0.0,
        flip: 0.0,
        brightness: 0.0,
        contrast: 0.0,
        saturation: 0.0,
    };

    /// Draws parameters from a generator seeded with `seed`.
    pub fn draw(&self, seed: u64) -> Draw {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sym = |a: f32| {
            if a > 0.0 {
                rng.random_range(-a..=a)
            } else {
                0.0
            }
        };
        let (dx, dy) = (sym(self.translate), sym(self.translate));
        let zoom = 1.0 + sym(self.scale);
        let angle = sym(self.rotate_deg).to_radians();
        let brightness = sym(self.brightness);
        let contrast = 1.0 + sym(self.contrast);
        let saturation = 1.0 + sym(self.saturation);
        let flip = rng.random::<f32>() < self.flip;
        Draw {
            dx,
            dy,
            zoom,
            angle,
            flip,
            brightness,
            contrast,
            saturation,
        }
    }

    /// The augmented image for `seed`.
    pub fn apply(&self, img: &RgbImage, seed: u64) -> RgbImage {
        apply_draw(img, &self.draw(seed))
    }
}

/// Applies drawn parameters.
pub fn apply_draw(img: &RgbImage, d: &Draw) -> RgbImage {
    let mut out = if d.dx == 0.0 && d.dy == 0.0 && d.zoom == 1.0 && d.angle == 0.0 {
        img.clone()
    } else {
        warp(img, d)
    };
    if d.flip {
        out = hflip(&out);
    }
    brightness(&mut out, d.brightness);
    contrast(&mut out, d.contrast);
    saturation(&mut out, d.saturation);
    out
}

/// Rotation by `angle` and zoom about the centre, then a shift of (`dx`, `dy`) sides; bilinear,
/// edges replicated.
fn warp(img: &RgbImage, d: &Draw) -> RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (cx, cy) = ((w - 1.0) / 2.0, (h - 1.0) / 2.0);
    let (s, c) = d.angle.sin_cos();
    let mut out = RgbImage::new(img.width(), img.height());
    for (x, y, p) in out.enumerate_pixels_mut() {
        // output pixel -> source pixel (inverse map)
        let (u, v) = (x as f32 - cx - d.dx * w, y as f32 - cy - d.dy * h);
        let sx = (c * u + s * v) / d.zoom + cx;
        let sy = (-s * u + c * v) / d.zoom + cy;
        *p = bilinear_clamped(img, sx, sy);
    }
    out
}

fn bilinear_clamped(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x, y) = (x.clamp(0.0, (w - 1) as f32), y.clamp(0.0, (h - 1) as f32));
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let g = |xx: i64, yy: i64| img.get_pixel(xx as u32, yy as u32);
    let (a, b, cc, dd) = (g(x0, y0), g(x1, y0), g(x0, y1), g(x1, y1));
    Rgb(std::array::from_fn(|k| {
        let top = a[k] as f32 + fx * (b[k] as f32 - a[k] as f32);
        let bottom = cc[k] as f32 + fx * (dd[k] as f32 - cc[k] as f32);
        (top + fy * (bottom - top)).round().clamp(0.0, 255.0) as u8
    }))
}

/// Mirror left-right.
pub fn hflip(img: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(img)
}

/// Adds `delta` (a fraction of 255) to every value, saturating.
pub fn brightness(img: &mut RgbImage, delta: f32) {
    if delta == 0.0 {
        return;
    }
    let d = delta * 255.0;
    for v in img.iter_mut() {
        *v = (*v as f32 + d).round().clamp(0.0, 255.0) as u8;
    }
}

/// Scales deviations from the image mean by `factor`, saturating.
pub fn contrast(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    let n = img.as_raw().len().max(1) as f32;
    let mean = img.iter().map(|&v| v as f32).sum::<f32>() / n;
    for v in img.iter_mut() {
        *v = ((*v as f32 - mean) * factor + mean)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// Scales each pixel's colour away from its grey (BT.601 luma) by `factor`, saturating.
pub fn saturation(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    for p in img.pixels_mut() {
        let grey = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        for k in 0..3 {
            p[k] = ((p[k] as f32 - grey) * factor + grey)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
}

/// Per-image standardisation: zero mean and unit variance over all values (HWC order kept).
pub fn standardize(img: &RgbImage) -> Vec<f32> {
    let v: Vec<f32> = img.iter().map(|&x| x as f32).collect();
    let n = v.len().max(1) as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    // as in tf.image.per_image_standardization: never divide by less than 1/sqrt(n)
    let std = var.sqrt().max(1.0 / n.sqrt());
    v.into_iter().map(|x| (x - mean) / std).collect()
}

/// A contact sheet: one row per image, the original then its augmentations, `cell` pixels each,
/// with a 2-pixel white gutter.
pub fn contact_sheet(rows: &[(RgbImage, Vec<RgbImage>)], cell: u32) -> RgbImage {
    let cols = rows.iter().map(|(_, a)| a.len() + 1).max().unwrap_or(1) as u32;
    let gap = 2;
    let mut sheet = RgbImage::from_pixel(
        cols * (cell + gap) + gap,
        rows.len() as u32 * (cell + gap) + gap,
        Rgb([255, 255, 255]),
    );
    for (r, (orig, augs)) in rows.iter().enumerate() {
        for (c, img) in std::iter::once(orig).chain(augs).enumerate() {
            let tile =
                image::imageops::resize(img, cell, cell, image::imageops::FilterType::Triangle);
            image::imageops::replace(
                &mut sheet,
                &tile,
                (gap + c as u32 * (cell + gap)) as i64,
                (gap + r as u32 * (cell + gap)) as i64,
            );
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(23, 17, |x, y| {
            Rgb([(x * 11) as u8, (y * 15) as u8, ((x * y) % 256) as u8])
        })
    }

    #[test]
    fn flipping_twice_is_the_identity() {
        let img = sample();
        assert_eq!(hflip(&hflip(&img)), img);
        assert_ne!(hflip(&img), img);
    }

    #[test]
    fn the_same_seed_gives_the_same_pixels() {
        let a = Augment::default();
        let img = sample();
        assert_eq!(a.apply(&img, 7), a.apply(&img, 7));
        assert_ne!(a.apply(&img, 7), a.apply(&img, 8));
    }

    #[test]
    fn no_augmentation_changes_nothing() {
        let img = sample();
        for seed in 0..10 {
            assert_eq!(Augment::NONE.apply(&img, seed), img);
        }
    }

    #[test]
    fn colour_transforms_stay_in_range_and_move_the_mean() {
        let img = sample();
        let mean =
            |i: &RgbImage| i.iter().map(|&v| v as f64).sum::<f64>() / i.as_raw().len() as f64;
        let mut b = img.clone();
        brightness(&mut b, 0.9);
        assert!(b.iter().all(|&v| v >= img.iter().copied().min().unwrap()));
        assert!(mean(&b) > mean(&img));
        let mut c = img.clone();
        contrast(&mut c, 3.0);
        assert!(c.contains(&255) && c.contains(&0));
        let mut s = img.clone();
        saturation(&mut s, 0.0);
        assert!(
            s.pixels()
                .all(|p| p[0].abs_diff(p[1]) <= 1 && p[1].abs_diff(p[2]) <= 1)
        );
    }

    #[test]
    fn standardized_images_have_zero_mean_and_unit_variance() {
        let v = standardize(&sample());
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n;
        assert!(
            mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
        let flat = standardize(&RgbImage::from_pixel(4, 4, Rgb([9, 9, 9])));
        assert!(flat.iter().all(|x| *x == 0.0));
    }
}
