//! The int8 classifier on an aligned crop, and the input conversions every engine shares: the
//! core's `pixel - 128`, and the float network's `(pixel - 128) / 128` as NCHW (burn, the float
//! ONNX) or NHWC (the exporter's float reference).

use facegender_core::ert::Point;
use facegender_core::nn::QParams;
use facegender_core::nn::model::{Model, softmax};
use image::RgbImage;

use crate::align;
use crate::model_dir::ExportInfo;

/// The network's input scaling: `(pixel - 128) / 128`. In int8 this is exactly `pixel - 128`
/// with scale 1/128 and zero point 0, so the device needs no float preprocessing.
pub fn pixel_to_input(p: u8) -> f32 {
    (p as f32 - 128.0) / 128.0
}

/// One crop as CHW floats into `dst` (`3 * width * height` values).
pub fn write_nchw(img: &RgbImage, dst: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    for (j, p) in img.pixels().enumerate() {
        for c in 0..3 {
            dst[c * plane + j] = pixel_to_input(p[c]);
        }
    }
}

/// One crop as NCHW floats (batch of one).
pub fn batch_one_nchw(img: &RgbImage) -> Vec<f32> {
    let mut v = vec![0f32; 3 * (img.width() * img.height()) as usize];
    write_nchw(img, &mut v);
    v
}

/// An NHWC float input for one crop.
pub fn nhwc_input(img: &RgbImage) -> Vec<f32> {
    img.as_raw().iter().map(|&p| pixel_to_input(p)).collect()
}

/// Softmax of float logits.
pub fn probs(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// The core's int8 input for a crop: `pixel - 128`.
pub fn core_input(img: &RgbImage) -> Vec<i8> {
    img.as_raw()
        .iter()
        .map(|&p| (p as i16 - 128) as i8)
        .collect()
}

/// The logits test-time mirroring classifies by: the mean of the crop's and its mirror image's
/// (float; int8 engines' dequantised). `predict --mirror` uses the same rule.
pub fn mirror_mean(plain: &[f32], mirrored: &[f32]) -> Vec<f32> {
    plain
        .iter()
        .zip(mirrored)
        .map(|(x, y)| (x + y) / 2.0)
        .collect()
}

/// Class probabilities from int8 logits (the float helper of the core).
pub fn int8_probs(logits: &[i8], q: QParams) -> Vec<f32> {
    let mut p = vec![0f32; logits.len()];
    softmax(logits, q, &mut p);
    p
}

/// The classifier and what it expects.
pub struct Classifier<'a> {
    pub model: Model<'a>,
    pub info: ExportInfo,
}

impl<'a> Classifier<'a> {
    /// The classifier over bytes from [`crate::model_dir::read_classifier`] (checked there).
    pub fn new(bytes: &'a [u8], info: ExportInfo) -> crate::Result<Self> {
        let model = Model::parse(bytes).map_err(|e| crate::invalid!("classifier: {e}"))?;
        Ok(Self { model, info })
    }

    /// Aligned crop of a face as the model saw them in training.
    pub fn crop(&self, img: &RgbImage, landmarks: &[Point]) -> crate::Result<RgbImage> {
        let side = self.info.input as u32;
        let a = align::transform(landmarks, self.info.align, side, self.info.crop_scale)?;
        align::crop(img, &a, side)
    }

    /// int8 logits and class probabilities of a crop.
    pub fn classify(
        &self,
        crop: &RgbImage,
        arena: &mut [u8],
    ) -> crate::Result<(Vec<i8>, Vec<f32>)> {
        let out = self.model.run(arena, &core_input(crop))?;
        let logits = out
            .get(0)
            .ok_or_else(|| crate::invalid!("model has no output"))?
            .to_vec();
        let q = self.model.output(0).q;
        let p = int8_probs(&logits, q);
        Ok((logits, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_scaling_is_exact_in_int8() {
        for p in 0..=255u8 {
            let x = pixel_to_input(p);
            assert_eq!((x * 128.0).round() as i32, p as i32 - 128);
        }
    }
}
