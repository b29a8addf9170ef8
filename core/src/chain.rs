//! The device chain, stage by stage: a camera frame to int8 BlazeFace input ([`crate::frame`]),
//! detection ([`detect_faces`]), keypoint alignment ([`keypoint_affine`]), the aligned crop
//! ([`crate::align::warp_rgb`]) and the int8 classifier. The firmware and the host mirror
//! (`facegender predict --device-chain`) call exactly these functions, so their results agree
//! bit for bit.

use heapless::Vec;

use crate::align::{self, Affine, AlignError};
use crate::detect::{self, AnchorSpec, Detection, keypoint};
use crate::frame::Letterbox;
use crate::nn::model::{Model, RunError};

/// The keypoints alignment uses (ears are unreliable on turned faces).
pub const ALIGN_KEYPOINTS: [usize; 4] = [
    keypoint::RIGHT_EYE,
    keypoint::LEFT_EYE,
    keypoint::NOSE,
    keypoint::MOUTH,
];

/// Where [`ALIGN_KEYPOINTS`] sit in the classifier's training crops, in crop pixels: fitted on
/// those crops (`facegender fit-keypoint-template`), so device crops look like training crops.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Template {
    pub side: u32,
    pub points: [[f64; 2]; 4],
}

/// Why the chain stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChainError {
    Run(RunError),
    /// The detector model does not have the four BlazeFace outputs.
    DetectorOutputs,
    /// The detector's input buffer does not fit its input tensor.
    Input,
    Align(AlignError),
}

impl core::fmt::Display for ChainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Run(e) => write!(f, "{e}"),
            Self::DetectorOutputs => {
                f.write_str("the detector does not have BlazeFace's four outputs")
            }
            Self::Input => f.write_str("the detector input buffer does not fit the detector"),
            Self::Align(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChainError {}

impl From<RunError> for ChainError {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

impl From<AlignError> for ChainError {
    fn from(e: AlignError) -> Self {
        Self::Align(e)
    }
}

/// How detections are decoded: the detector's anchors, the score threshold and the NMS overlap.
#[derive(Clone, Copy, Debug)]
pub struct DetectParams<'s> {
    pub spec: &'s AnchorSpec,
    pub threshold: f32,
    pub nms_iou: f32,
}

/// Side the frame shrinks to inside the detector input for the second try when the first finds
/// nothing: a 30% margin on every side (128 / 1.6), as the host detector retries. BlazeFace
/// misses faces that fill the frame or touch its edges; a margin brings them back.
pub const RETRY_INNER: u32 = 80;

/// The detection stage on a camera frame: letterbox it into `input` (the detector's
/// `size x size x 3` int8 tensor), detect, and if nothing is found try once more with the frame
/// shrunk to [`RETRY_INNER`] (scaled to the detector's side). Returns the letterbox used.
pub fn detect_frame<const N: usize>(
    detector: &Model<'_>,
    arena: &mut [u8],
    frame: &crate::image::RgbView<'_>,
    input: &mut [i8],
    params: DetectParams<'_>,
    faces: &mut Vec<Detection, N>,
) -> Result<Letterbox, ChainError> {
    let size = detector.input().shape.w as u32;
    let mut lb = crate::frame::letterbox(frame, size, input).map_err(|_| ChainError::Input)?;
    detect_faces(detector, arena, input, &lb, params, faces)?;
    if faces.is_empty() {
        let inner = RETRY_INNER * size / 128;
        lb = crate::frame::letterbox_fit(frame, size, inner, input)
            .map_err(|_| ChainError::Input)?;
        detect_faces(detector, arena, input, &lb, params, faces)?;
    }
    Ok(lb)
}

/// Runs the int8 detector on a letterboxed input and returns the faces, merged by weighted NMS,
/// best first, in frame pixels.
pub fn detect_faces<const N: usize>(
    detector: &Model<'_>,
    arena: &mut [u8],
    input: &[i8],
    lb: &Letterbox,
    params: DetectParams<'_>,
    faces: &mut Vec<Detection, N>,
) -> Result<(), ChainError> {
    let DetectParams {
        spec,
        threshold,
        nms_iou,
    } = params;
    let out = detector.run(arena, input)?;
    if out.len() != 4 {
        return Err(ChainError::DetectorOutputs);
    }
    let head = |k: usize| -> Result<(&[i8], crate::nn::QParams), ChainError> {
        Ok((
            out.get(k).ok_or(ChainError::DetectorOutputs)?,
            out.qparams(k).ok_or(ChainError::DetectorOutputs)?,
        ))
    };
    detect::decode_int8(
        spec,
        [head(0)?, head(1)?, head(2)?, head(3)?],
        threshold,
        faces,
    )
    .map_err(|_| ChainError::DetectorOutputs)?;
    detect::weighted_nms(faces, nms_iou);
    for d in faces.iter_mut() {
        *d = d.map(|x, y| lb.to_frame(x, y));
    }
    Ok(())
}

/// The crop-to-frame transform putting the face's keypoints on the template (least-squares
/// similarity over [`ALIGN_KEYPOINTS`]).
pub fn keypoint_affine(face: &Detection, template: &Template) -> Result<Affine, AlignError> {
    let to = ALIGN_KEYPOINTS.map(|k| [face.keypoints[k][0] as f64, face.keypoints[k][1] as f64]);
    align::fit_similarity(&template.points, &to)
}

/// The classifier's int8 input from an RGB crop: `pixel - 128`.
pub fn crop_to_input(crop: &[u8], input: &mut [i8]) {
    for (x, &p) in input.iter_mut().zip(crop) {
        *x = (p as i16 - 128) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypoints_on_the_template_give_the_identity() {
        let t = Template {
            side: 64,
            points: [[20.0, 25.0], [44.0, 25.0], [32.0, 36.0], [32.0, 48.0]],
        };
        let mut d = Detection {
            score: 1.0,
            center: [32.0, 32.0],
            size: [40.0, 40.0],
            keypoints: [[0.0; 2]; 6],
        };
        for (i, &k) in ALIGN_KEYPOINTS.iter().enumerate() {
            d.keypoints[k] = [t.points[i][0] as f32, t.points[i][1] as f32];
        }
        let a = keypoint_affine(&d, &t).unwrap();
        for (v, w) in a.m.iter().zip([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]) {
            assert!((v - w).abs() < 1e-9, "{:?}", a.m);
        }
    }
}
