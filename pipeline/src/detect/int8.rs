//! The device's detector on the host: the int8 BlazeFace (made by `facegender-export`'s
//! quantiser) run by the core through the exact sequence of calls the `full-chain` firmware
//! makes, so every device detection can be reproduced on a PC (`predict --device-chain`).

use std::path::Path;

use facegender_core::chain;
use facegender_core::detect::{AnchorSpec, Detection};
use facegender_core::frame::{self, Letterbox};
use facegender_core::image::RgbView;
use facegender_core::nn::QParams;
use facegender_core::nn::model::Model;
use image::RgbImage;

use super::blazeface::{BlazeFace, NMS_IOU};
use super::face::{Detector, Face};
use crate::model_dir;

/// Detector input side (BlazeFace front).
pub const DET_SIDE: u32 = 128;
/// The detector's int8 input: `pixel - 128`, read as `(pixel - 128) / 127.5` (BlazeFace expects
/// `pixel / 127.5 - 1`; the two differ by 0.4% of a step).
pub const DET_INPUT_Q: QParams = QParams {
    scale: 1.0 / 127.5,
    zero_point: 0,
};
/// Faces kept per frame.
pub const MAX_FACES: usize = 8;
/// Candidates kept before NMS on the device.
pub const CANDIDATES: usize = 64;

/// The int8 detector input for a photo (integer letterbox from the core).
pub fn detector_input(img: &RgbImage) -> (Vec<i8>, Letterbox) {
    let view = RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize)
        .expect("packed RgbImage");
    let mut x = vec![0i8; (DET_SIDE * DET_SIDE * 3) as usize];
    let lb = frame::letterbox(&view, DET_SIDE, &mut x).expect("sized buffer");
    (x, lb)
}

/// An int8 detector loaded from its folder.
pub struct Int8Detector {
    pub bytes: Vec<u8>,
}

impl Int8Detector {
    pub fn load(dir: &Path) -> crate::Result<Self> {
        let bytes = model_dir::read(&dir.join(model_dir::CORE_MODEL))?;
        Model::parse(&bytes).map_err(|e| crate::invalid!("{}: {e}", dir.display()))?;
        Ok(Self { bytes })
    }

    pub fn model(&self) -> Model<'_> {
        Model::parse(&self.bytes).expect("checked in load")
    }

    /// Faces in a photo, in photo pixels, best first: the device's detection stage
    /// ([`chain::detect_frame`], with its second try on a margin when `retry`).
    pub fn detections(
        &self,
        img: &RgbImage,
        threshold: f32,
        retry: bool,
        arena: &mut Vec<u8>,
    ) -> crate::Result<Vec<Detection>> {
        let m = self.model();
        arena.resize(m.arena_len(), 0);
        let params = chain::DetectParams {
            spec: &AnchorSpec::FRONT_128,
            threshold,
            nms_iou: NMS_IOU,
        };
        let mut faces: heapless::Vec<Detection, CANDIDATES> = heapless::Vec::new();
        if retry {
            let view = RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize)?;
            let mut x = vec![0i8; (DET_SIDE * DET_SIDE * 3) as usize];
            chain::detect_frame(&m, arena, &view, &mut x, params, &mut faces)?;
        } else {
            let (x, lb) = detector_input(img);
            chain::detect_faces(&m, arena, &x, &lb, params, &mut faces)?;
        }
        Ok(faces.into_iter().take(MAX_FACES).collect())
    }
}

/// The float BlazeFace (tract) on exactly the device's input pixels: isolates what quantisation
/// changes from what the resampling changes.
pub fn float_detect_same_input(
    float: &BlazeFace,
    img: &RgbImage,
    threshold: f32,
) -> crate::Result<Vec<Detection>> {
    let (x, lb) = detector_input(img);
    let xf: Vec<f32> = x.iter().map(|&v| DET_INPUT_Q.dequantize(v)).collect();
    let (scores, boxes) = float.run(&xf)?;
    let mut faces: heapless::Vec<Detection, CANDIDATES> = heapless::Vec::new();
    facegender_core::detect::decode(
        &AnchorSpec::FRONT_128,
        &scores,
        &boxes,
        threshold,
        &mut faces,
    )?;
    facegender_core::detect::weighted_nms(&mut faces, NMS_IOU);
    Ok(faces
        .iter()
        .map(|d| d.map(|x, y| lb.to_frame(x, y)))
        .take(MAX_FACES)
        .collect())
}

impl Detector for Int8Detector {
    /// The device's detection stage, second try included, as [`Face`]s.
    fn detect(&self, img: &RgbImage, threshold: f32) -> crate::Result<Vec<Face>> {
        let mut arena = Vec::new();
        let faces = self.detections(img, threshold, true, &mut arena)?;
        Ok(faces.iter().map(Face::from_detection).collect())
    }
}
