//! Comparisons against dlib 19.24's recorded outputs (`reference/dlib-68/*.json`): fitting the
//! BlazeFace-to-dlib box map and measuring landmarks through the whole chain.

use std::path::{Path, PathBuf};

use facegender_core::ert::{Point, Rect, ShapePredictor};
use rayon::prelude::*;
use serde::Deserialize;

use crate::decode::{Limits, decode_file};
use crate::detect::{Detector, Face};
use crate::error::Context;
use crate::landmarks::{self, BoxMap};

#[derive(Deserialize)]
struct RefFile {
    images: Vec<RefImage>,
}

#[derive(Deserialize)]
struct RefImage {
    image: String,
    faces: Vec<RefRect>,
    #[serde(default)]
    largest_face_landmarks: Option<Vec<[i32; 2]>>,
}

#[derive(Deserialize, Clone, Copy)]
struct RefRect {
    left: i32,
    top: i32,
    right: i32,
    bottom: i32,
}

/// One reference face: the photo, dlib's box of the largest face, dlib's landmarks.
#[derive(Clone, Debug)]
pub struct RefFace {
    pub image: PathBuf,
    pub rect: Rect,
    pub landmarks: Vec<Point>,
}

/// Faces of a reference file; paths in it are relative to `shared` (the folder holding `data/`).
pub fn load(json: &Path, shared: &Path) -> crate::Result<Vec<RefFace>> {
    let f: RefFile =
        serde_json::from_slice(&std::fs::read(json).with_context(|| json.display().to_string())?)
            .with_context(|| format!("{} is not a dlib reference file", json.display()))?;
    Ok(f.images
        .into_iter()
        .filter_map(|im| {
            let lm = im.largest_face_landmarks?;
            let area = |r: &RefRect| (r.right - r.left + 1) as i64 * (r.bottom - r.top + 1) as i64;
            let best = im.faces.iter().fold(None::<RefRect>, |b, f| match b {
                Some(b) if area(&b) >= area(f) => Some(b),
                _ => Some(*f),
            })?;
            Some(RefFace {
                image: shared.join(&im.image),
                rect: Rect {
                    left: best.left,
                    top: best.top,
                    right: best.right,
                    bottom: best.bottom,
                },
                landmarks: lm.iter().map(|p| Point { x: p[0], y: p[1] }).collect(),
            })
        })
        .collect())
}

/// The detector's face matching dlib's (largest overlap with dlib's box), if any.
pub fn matching_face(faces: &[Face], r: &Rect) -> Option<Face> {
    let iou = |f: &Face| {
        let (x0, y0) = (f.bbox[0].max(r.left as f32), f.bbox[1].max(r.top as f32));
        let (x1, y1) = (
            f.bbox[2].min(r.right as f32),
            f.bbox[3].min(r.bottom as f32),
        );
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let ra = ((r.right - r.left) * (r.bottom - r.top)) as f32;
        inter / (f.width() * f.height() + ra - inter)
    };
    faces
        .iter()
        .copied()
        .filter(|f| iou(f) > 0.3)
        .max_by(|a, b| iou(a).total_cmp(&iou(b)))
}

/// Per reference face: the detector's matching face (or `None` if it missed the face).
pub fn detect_all(
    detector: &dyn Detector,
    faces: &[RefFace],
    threshold: f32,
) -> crate::Result<Vec<Option<Face>>> {
    faces
        .par_iter()
        .map(|rf| {
            let img = decode_file(&rf.image, &Limits::default())?;
            Ok(matching_face(&detector.detect(&img, threshold)?, &rf.rect))
        })
        .collect()
}

/// Landmark error through the chain, normalised by dlib's inter-ocular distance.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ChainError {
    pub faces: usize,
    pub detected: usize,
    /// Mean over detected faces of (mean point distance / inter-ocular distance).
    pub mean_nme: f64,
    pub median_nme: f64,
    pub worst_nme: f64,
}

/// Runs landmarks from the mapped detector box on every detected reference face.
pub fn chain_error(
    sp: &ShapePredictor<'_>,
    faces: &[RefFace],
    detections: &[Option<Face>],
    map: &BoxMap,
) -> crate::Result<ChainError> {
    let mut nme: Vec<f64> = faces
        .par_iter()
        .zip(detections)
        .filter_map(|(rf, d)| d.map(|d| (rf, d)))
        .map(|(rf, d)| {
            let img = decode_file(&rf.image, &Limits::default())?;
            let grey = landmarks::intensity(&img);
            let got = landmarks::predict(sp, &grey, img.width(), img.height(), map.rect(&d))?;
            let want: Vec<[f64; 2]> = rf
                .landmarks
                .iter()
                .map(|p| [p.x as f64, p.y as f64])
                .collect();
            let iod = landmarks::inter_ocular(&want);
            let mean = got
                .iter()
                .zip(&want)
                .map(|(g, w)| ((g.x as f64 - w[0]).powi(2) + (g.y as f64 - w[1]).powi(2)).sqrt())
                .sum::<f64>()
                / got.len() as f64;
            Ok(mean / iod)
        })
        .collect::<crate::Result<_>>()?;
    nme.sort_by(f64::total_cmp);
    let n = nme.len().max(1) as f64;
    Ok(ChainError {
        faces: faces.len(),
        detected: nme.len(),
        mean_nme: nme.iter().sum::<f64>() / n,
        median_nme: nme.get(nme.len() / 2).copied().unwrap_or(f64::NAN),
        worst_nme: nme.last().copied().unwrap_or(f64::NAN),
    })
}
