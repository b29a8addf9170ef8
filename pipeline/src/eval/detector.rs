//! The int8 detector against the float one on the same photos (`facegender eval-detector`):
//! how many float detections the int8 model matches, and how often each finds a face.

use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use crate::decode::decode_file;
use crate::detect::int8::float_detect_same_input;
use crate::detect::{BlazeFace, Int8Detector, iou};

/// What the comparison found (`--json` writes it as it is; fields in name order, as the report
/// always listed them).
#[derive(Clone, Debug, Serialize)]
pub struct DetectorComparison {
    pub float_detections: usize,
    pub float_face_found_rate: f64,
    pub float_threshold: f32,
    pub int8_face_found_rate: f64,
    pub int8_threshold: f32,
    pub matched_by_int8: usize,
    pub matched_share: f64,
    pub photos: usize,
}

/// Runs both detectors on `photos`: the float model on exactly the int8 model's letterboxed
/// pixels, so only quantisation differs, and the int8 model on that one input (no second try).
/// A float detection is matched when an int8 one overlaps it with IoU >= 0.5.
pub fn compare(
    float: &BlazeFace,
    int8: &Int8Detector,
    photos: &[PathBuf],
    float_threshold: f32,
    int8_threshold: f32,
) -> crate::Result<DetectorComparison> {
    let per: Vec<(usize, usize, bool, bool)> = photos
        .par_iter()
        .map_init(Vec::new, |arena, f| -> crate::Result<_> {
            let img = decode_file(f, &Default::default())?;
            let fl = float_detect_same_input(float, &img, float_threshold)?;
            let q = int8.detections(&img, int8_threshold, false, arena)?;
            let matched = fl
                .iter()
                .filter(|d| q.iter().any(|e| iou(d.corners(), e.corners()) >= 0.5))
                .count();
            Ok((fl.len(), matched, !fl.is_empty(), !q.is_empty()))
        })
        .collect::<crate::Result<_>>()?;
    let n = per.len() as f64;
    let float_detections: usize = per.iter().map(|p| p.0).sum();
    let matched_by_int8: usize = per.iter().map(|p| p.1).sum();
    Ok(DetectorComparison {
        float_detections,
        float_face_found_rate: per.iter().filter(|p| p.2).count() as f64 / n,
        float_threshold,
        int8_face_found_rate: per.iter().filter(|p| p.3).count() as f64 / n,
        int8_threshold,
        matched_by_int8,
        matched_share: matched_by_int8 as f64 / float_detections.max(1) as f64,
        photos: per.len(),
    })
}
