//! Alignment choices and crops on the host (the arithmetic is in `facegender_core::align`).

use facegender_core::align::{self, Affine, INNER_EYES_AND_BOTTOM_LIP, OUTER_EYES_AND_NOSE};
use facegender_core::ert::Point;
use facegender_core::image::RgbView;
use image::RgbImage;

/// How a face is aligned before cropping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignMethod {
    /// openface: landmarks 39, 42, 57 (inner eye corners, bottom lip) onto the template.
    #[default]
    InnerEyesBottomLip,
    /// openface: landmarks 36, 45, 33 (outer eye corners, nose tip) onto the template.
    OuterEyesNose,
    /// Least-squares similarity over all 68 landmarks (no shear; steadier on turned faces).
    Similarity,
}

impl AlignMethod {
    /// The names the CLI and the Python package accept (serde's kebab-case names).
    pub const NAMES: [&'static str; 3] = ["inner-eyes-bottom-lip", "outer-eyes-nose", "similarity"];

    /// The method called `name` (one of [`Self::NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }
}

/// The crop-to-photo transform for `landmarks`.
pub fn transform(
    landmarks: &[Point],
    method: AlignMethod,
    crop: u32,
    scale: f64,
) -> crate::Result<Affine> {
    let pts: Vec<[f64; 2]> = landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
    let a = match method {
        AlignMethod::InnerEyesBottomLip => {
            align::three_point(&pts, INNER_EYES_AND_BOTTOM_LIP, crop as usize, scale)
        }
        AlignMethod::OuterEyesNose => {
            align::three_point(&pts, OUTER_EYES_AND_NOSE, crop as usize, scale)
        }
        AlignMethod::Similarity => align::similarity(&pts, crop as usize, scale),
    };
    a.map_err(|e| crate::invalid!("alignment: {e}"))
}

/// The aligned `crop` x `crop` RGB image.
pub fn crop(img: &RgbImage, a: &Affine, crop: u32) -> crate::Result<RgbImage> {
    let view = RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize)?;
    let mut out = vec![0u8; (crop * crop * 3) as usize];
    align::warp_rgb(&view, a, crop as usize, &mut out)?;
    Ok(RgbImage::from_raw(crop, crop, out).expect("size checked"))
}

/// The aligned crop of a detected face (device alignment: keypoints onto the template).
pub fn keypoint_crop(
    img: &RgbImage,
    face: &facegender_core::detect::Detection,
    template: &facegender_core::chain::Template,
) -> crate::Result<RgbImage> {
    let a = facegender_core::chain::keypoint_affine(face, template)?;
    crop(img, &a, template.side)
}
