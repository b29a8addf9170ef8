//! What every detector promises ([`Detector`]) and returns ([`Face`]).

use facegender_core::detect::{Detection, KEYPOINTS};
use image::RgbImage;

/// Finds faces in a photo.
pub trait Detector: Sync {
    /// Faces scoring above `threshold`, best first, in photo pixels. A detector may look twice
    /// (BlazeFace and the device both retry with a margin when the first look finds nothing).
    fn detect(&self, img: &RgbImage, threshold: f32) -> crate::Result<Vec<Face>>;
}

/// A face in photo pixels.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Face {
    pub score: f32,
    /// x0, y0, x1, y1
    pub bbox: [f32; 4],
    /// right eye, left eye, nose, mouth, right ear, left ear (subject's right/left)
    pub keypoints: [[f32; 2]; KEYPOINTS],
}

impl Face {
    /// A core detection already in photo pixels.
    pub fn from_detection(d: &Detection) -> Self {
        Self {
            score: d.score,
            bbox: d.corners(),
            keypoints: d.keypoints,
        }
    }

    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }

    pub fn height(&self) -> f32 {
        self.bbox[3] - self.bbox[1]
    }
}

/// Intersection over union of two x0, y0, x1, y1 boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}
