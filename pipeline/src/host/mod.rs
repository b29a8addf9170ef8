//! The host-grade classifier: dlib's face-recognition ResNet descriptor with a trained head,
//! combined with the student (the shipped int8 network) on its own crop. On the host nothing
//! forces the classifier to fit a microcontroller; the two are right on different photos (the
//! descriptor on adults, the student on children and FairFace's harder crops).
//!
//! - [`cache`]: `facegender describe`'s per-photo cache (student logits, descriptors).
//! - [`head`]: the head and the combination's weights, as stored in `host.json`.
//!
//! A host model folder (`models/gender-host/`) holds `host.json`: the classes, the student's
//! folder and dlib's ResNet file (both relative to the folder), the head and the weights.

pub mod cache;
pub mod head;

use std::path::{Path, PathBuf};

use facegender_core::ert::Point;
use facegender_core::image::RgbView;
pub use facegender_descriptor::DESCRIPTOR_LEN;
use facegender_descriptor::{Descriptor, FaceNet};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::classify::{Classifier, mirror_mean};
use crate::error::Context;
pub use head::{Head, Weights};

/// `host.json`'s name in a host model folder.
pub const HOST_FILE: &str = "host.json";

/// What `host.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostInfo {
    pub classes: Vec<String>,
    /// The student's model folder, relative to this folder.
    pub student: PathBuf,
    /// dlib's `dlib_face_recognition_resnet_model_v1.dat`, relative to this folder.
    pub resnet: PathBuf,
    pub resnet_sha256: String,
    pub head: Head,
    pub weights: Weights,
    /// How the head and weights were chosen, and their validation figures.
    #[serde(default)]
    pub chosen: serde_json::Value,
}

impl HostInfo {
    /// Reads `dir/host.json`.
    pub fn load(dir: &Path) -> crate::Result<Self> {
        let path = dir.join(HOST_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let info: HostInfo =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        info.head
            .check(DESCRIPTOR_LEN, info.classes.len())
            .with_context(|| path.display().to_string())?;
        Ok(info)
    }

    /// The student's folder of the host model in `dir`.
    pub fn student_of(dir: &Path) -> crate::Result<PathBuf> {
        Ok(dir.join(Self::load(dir)?.student))
    }
}

/// Whether `dir` holds a host model.
pub fn is_host_model(dir: &Path) -> bool {
    dir.join(HOST_FILE).is_file()
}

/// A loaded host model: `host.json` and the ResNet (the student is loaded by the caller, from
/// [`HostModel::student_dir`]).
pub struct HostModel {
    pub info: HostInfo,
    pub net: FaceNet,
    dir: PathBuf,
}

impl HostModel {
    pub fn load(dir: &Path) -> crate::Result<Self> {
        let info = HostInfo::load(dir)?;
        let resnet = dir.join(&info.resnet);
        let net = FaceNet::load(&resnet).map_err(|e| {
            crate::invalid!(
                "{e}\n(dlib's face-recognition ResNet: run scripts/setup, which fetches it)"
            )
        })?;
        Ok(Self {
            info,
            net,
            dir: dir.to_path_buf(),
        })
    }

    /// The student's model folder.
    pub fn student_dir(&self) -> PathBuf {
        self.dir.join(&self.info.student)
    }

    /// The head's logits for a face.
    pub fn head_logits(&self, img: &RgbImage, landmarks: &[Point]) -> crate::Result<Vec<f32>> {
        Ok(self
            .info
            .head
            .logits(&descriptor(&self.net, img, landmarks)?))
    }
}

/// The student's dequantised logits on its crop of a face, plain and mirrored.
pub fn student_logits(
    c: &Classifier<'_>,
    img: &RgbImage,
    landmarks: &[Point],
) -> crate::Result<(Vec<f32>, Vec<f32>)> {
    let crop = c.crop(img, landmarks)?;
    let mut arena = vec![0u8; c.model.arena_len()];
    let q = c.model.output(0).q;
    let deq = |l: Vec<i8>| -> Vec<f32> { l.into_iter().map(|v| q.dequantize(v)).collect() };
    let (plain, _) = c.classify(&crop, &mut arena)?;
    let (flipped, _) = c.classify(&crate::augment::hflip(&crop), &mut arena)?;
    let (plain, flipped) = (deq(plain), deq(flipped));
    let mirror = mirror_mean(&plain, &flipped);
    Ok((plain, mirror))
}

/// dlib's descriptor of a face (its 150 px chip from the 68 landmarks).
pub fn descriptor(net: &FaceNet, img: &RgbImage, landmarks: &[Point]) -> crate::Result<Descriptor> {
    let view = RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize)?;
    let points: Vec<[f64; 2]> = landmarks.iter().map(|p| [p.x as f64, p.y as f64]).collect();
    let (_, d) = net.describe(&view, &points)?;
    Ok(d)
}
