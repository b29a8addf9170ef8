//! BlazeFace post-processing: anchor decoding and weighted non-maximum suppression over
//! fixed-capacity buffers (no heap), shared by the host detector and the firmware.
//!
//! BlazeFace (MediaPipe) predicts, for each anchor, a score logit and 16 regressors: box centre
//! offset and size, then six keypoints (right eye, left eye, nose tip, mouth centre, right ear,
//! left ear; "right" is the subject's right, on the image's left), all in input pixels relative to
//! the anchor centre. The front 128x128 model has 16x16 cells with 2 anchors and 8x8 cells with
//! 6 anchors (896 in all), in row-major cell order with a cell's anchors contiguous.

use heapless::Vec;

/// Number of regressors per anchor.
pub const REGRESSORS: usize = 16;
/// Keypoints per detection.
pub const KEYPOINTS: usize = 6;

/// Keypoint indices.
pub mod keypoint {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE: usize = 2;
    pub const MOUTH: usize = 3;
    pub const RIGHT_EAR: usize = 4;
    pub const LEFT_EAR: usize = 5;
}

/// The anchor grids of one BlazeFace variant: `(cells per side, anchors per cell)` per output head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnchorSpec {
    pub input_size: f32,
    pub heads: [(u16, u16); 2],
}

impl AnchorSpec {
    /// The front-camera model (128 x 128 input).
    pub const FRONT_128: Self = Self {
        input_size: 128.0,
        heads: [(16, 2), (8, 6)],
    };
    /// The back-camera model (256 x 256 input, same grids).
    pub const BACK_256: Self = Self {
        input_size: 256.0,
        heads: [(16, 2), (8, 6)],
    };

    /// Anchors in head `h`.
    pub const fn head_len(&self, h: usize) -> usize {
        let (cells, per) = self.heads[h];
        cells as usize * cells as usize * per as usize
    }

    pub const fn len(&self) -> usize {
        self.head_len(0) + self.head_len(1)
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Centre of anchor `i` (over both heads), in units of the input size.
    pub fn center(&self, i: usize) -> Option<[f32; 2]> {
        let mut i = i;
        for h in 0..2 {
            let (cells, per) = (self.heads[h].0 as usize, self.heads[h].1 as usize);
            if i < self.head_len(h) {
                let cell = i / per;
                let (cx, cy) = (cell % cells, cell / cells);
                return Some([
                    (cx as f32 + 0.5) / cells as f32,
                    (cy as f32 + 0.5) / cells as f32,
                ]);
            }
            i -= self.head_len(h);
        }
        None
    }
}

/// A face in normalised input coordinates (0..1 across the detector input).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Detection {
    pub score: f32,
    /// Box centre x, y and width, height.
    pub center: [f32; 2],
    pub size: [f32; 2],
    pub keypoints: [[f32; 2]; KEYPOINTS],
}

impl Detection {
    /// (x0, y0, x1, y1).
    pub fn corners(&self) -> [f32; 4] {
        let (hw, hh) = (self.size[0] / 2.0, self.size[1] / 2.0);
        [
            self.center[0] - hw,
            self.center[1] - hh,
            self.center[0] + hw,
            self.center[1] + hh,
        ]
    }

    pub fn iou(&self, other: &Self) -> f32 {
        let (a, b) = (self.corners(), other.corners());
        let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
        let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        let inter = w * h;
        let union = self.size[0] * self.size[1] + other.size[0] * other.size[1] - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// Maps every coordinate through `f(x, y)` (e.g. back to image pixels).
    pub fn map(&self, f: impl Fn(f32, f32) -> (f32, f32)) -> Self {
        let c = self.corners();
        let (x0, y0) = f(c[0], c[1]);
        let (x1, y1) = f(c[2], c[3]);
        let mut d = *self;
        d.center = [(x0 + x1) / 2.0, (y0 + y1) / 2.0];
        d.size = [x1 - x0, y1 - y0];
        for k in d.keypoints.iter_mut() {
            let (x, y) = f(k[0], k[1]);
            *k = [x, y];
        }
        d
    }
}

/// Why decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DetectError {
    /// Score or regressor slices do not match the anchor spec.
    OutputLength,
}

impl core::fmt::Display for DetectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("detector outputs do not match the anchor layout")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DetectError {}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Decodes anchors whose score exceeds `threshold` into `out`, keeping the `N` best when more
/// pass. `scores` and `boxes` hold the two heads one after the other (`896` and `896 * 16` for
/// the front model), as raw logits and input-pixel regressors.
pub fn decode<const N: usize>(
    spec: &AnchorSpec,
    scores: &[f32],
    boxes: &[f32],
    threshold: f32,
    out: &mut Vec<Detection, N>,
) -> Result<(), DetectError> {
    if scores.len() != spec.len() || boxes.len() != spec.len() * REGRESSORS {
        return Err(DetectError::OutputLength);
    }
    decode_with(
        spec,
        |i| scores[i],
        |i, k| boxes[i * REGRESSORS + k],
        threshold,
        out,
    );
    Ok(())
}

/// Decodes the four int8 outputs of a quantised BlazeFace (scores of head 0 and 1, then
/// regressors of head 0 and 1, NHWC) without expanding them to floats first.
pub fn decode_int8<const N: usize>(
    spec: &AnchorSpec,
    outputs: [(&[i8], crate::nn::QParams); 4],
    threshold: f32,
    out: &mut Vec<Detection, N>,
) -> Result<(), DetectError> {
    let [(s0, q0), (s1, q1), (b0, r0), (b1, r1)] = outputs;
    let (n0, n1) = (spec.head_len(0), spec.head_len(1));
    if s0.len() != n0
        || s1.len() != n1
        || b0.len() != n0 * REGRESSORS
        || b1.len() != n1 * REGRESSORS
    {
        return Err(DetectError::OutputLength);
    }
    let score = |i: usize| {
        if i < n0 {
            q0.dequantize(s0[i])
        } else {
            q1.dequantize(s1[i - n0])
        }
    };
    let reg = |i: usize, k: usize| {
        if i < n0 {
            r0.dequantize(b0[i * REGRESSORS + k])
        } else {
            r1.dequantize(b1[(i - n0) * REGRESSORS + k])
        }
    };
    decode_with(spec, score, reg, threshold, out);
    Ok(())
}

/// The anchor decoding itself, over accessors for the score logit of anchor `i` and its
/// regressor `k`.
pub fn decode_with<const N: usize>(
    spec: &AnchorSpec,
    score_of: impl Fn(usize) -> f32,
    reg: impl Fn(usize, usize) -> f32,
    threshold: f32,
    out: &mut Vec<Detection, N>,
) {
    out.clear();
    let inv = 1.0 / spec.input_size;
    for i in 0..spec.len() {
        // MediaPipe clips logits to +-100 before the sigmoid
        let score = sigmoid(score_of(i).clamp(-100.0, 100.0));
        // written so that a NaN score is skipped too
        if score.partial_cmp(&threshold) != Some(core::cmp::Ordering::Greater) {
            continue;
        }
        let Some(a) = spec.center(i) else { continue };
        let mut d = Detection {
            score,
            center: [a[0] + reg(i, 0) * inv, a[1] + reg(i, 1) * inv],
            size: [reg(i, 2) * inv, reg(i, 3) * inv],
            keypoints: [[0.0; 2]; KEYPOINTS],
        };
        for (k, kp) in d.keypoints.iter_mut().enumerate() {
            *kp = [
                a[0] + reg(i, 4 + 2 * k) * inv,
                a[1] + reg(i, 5 + 2 * k) * inv,
            ];
        }
        if out.push(d).is_err() {
            // full: replace the weakest if this one is better
            if let Some((j, weakest)) = out
                .iter()
                .enumerate()
                .min_by(|x, y| x.1.score.total_cmp(&y.1.score))
                .map(|(j, w)| (j, w.score))
                && score > weakest
            {
                out[j] = d;
            }
        }
    }
}

/// MediaPipe's weighted non-maximum suppression: repeatedly take the best remaining detection,
/// gather every detection overlapping it by more than `iou`, and replace them by their
/// score-weighted mean (keeping the best score). Works in place; the result is sorted by score.
pub fn weighted_nms<const N: usize>(dets: &mut Vec<Detection, N>, iou: f32) {
    dets.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
    let mut used: Vec<bool, N> = Vec::new();
    for _ in 0..dets.len() {
        let _ = used.push(false);
    }
    let mut kept: Vec<Detection, N> = Vec::new();
    for i in 0..dets.len() {
        if used[i] {
            continue;
        }
        let best = dets[i];
        let (mut total, mut acc) = (0.0f32, [0.0f32; 4 + 2 * KEYPOINTS]);
        for j in i..dets.len() {
            if used[j] || best.iou(&dets[j]) <= iou && j != i {
                continue;
            }
            used[j] = true;
            let d = &dets[j];
            let w = d.score;
            total += w;
            let v = flatten(d);
            for (a, x) in acc.iter_mut().zip(v) {
                *a += w * x;
            }
        }
        let mut merged = best;
        unflatten(&acc.map(|a| a / total), &mut merged);
        let _ = kept.push(merged);
    }
    *dets = kept;
}

fn flatten(d: &Detection) -> [f32; 4 + 2 * KEYPOINTS] {
    let mut v = [0.0; 4 + 2 * KEYPOINTS];
    v[..2].copy_from_slice(&d.center);
    v[2..4].copy_from_slice(&d.size);
    for (k, p) in d.keypoints.iter().enumerate() {
        v[4 + 2 * k..6 + 2 * k].copy_from_slice(p);
    }
    v
}

fn unflatten(v: &[f32; 4 + 2 * KEYPOINTS], d: &mut Detection) {
    d.center.copy_from_slice(&v[..2]);
    d.size.copy_from_slice(&v[2..4]);
    for (k, p) in d.keypoints.iter_mut().enumerate() {
        p.copy_from_slice(&v[4 + 2 * k..6 + 2 * k]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, cx: f32, cy: f32, s: f32) -> Detection {
        Detection {
            score,
            center: [cx, cy],
            size: [s, s],
            keypoints: [[cx, cy]; KEYPOINTS],
        }
    }

    #[test]
    fn anchors_follow_the_grid() {
        let s = AnchorSpec::FRONT_128;
        assert_eq!(s.len(), 896);
        assert_eq!(s.center(0), Some([0.5 / 16.0, 0.5 / 16.0]));
        assert_eq!(s.center(1), Some([0.5 / 16.0, 0.5 / 16.0]));
        assert_eq!(s.center(2), Some([1.5 / 16.0, 0.5 / 16.0]));
        assert_eq!(s.center(512), Some([0.5 / 8.0, 0.5 / 8.0]));
        assert_eq!(s.center(512 + 6 * 9), Some([1.5 / 8.0, 1.5 / 8.0]));
        assert_eq!(s.center(896), None);
    }

    #[test]
    fn decode_keeps_the_best_when_full() {
        let s = AnchorSpec::FRONT_128;
        let mut scores = std::vec![-10.0f32; 896];
        let boxes = std::vec![0.0f32; 896 * 16];
        for (i, v) in scores.iter_mut().enumerate().take(10) {
            *v = i as f32;
        }
        let mut out: Vec<Detection, 4> = Vec::new();
        decode(&s, &scores, &boxes, 0.5, &mut out).unwrap();
        let mut got: std::vec::Vec<f32> = out.iter().map(|d| d.score).collect();
        got.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(got, [9.0, 8.0, 7.0, 6.0].map(sigmoid));
        assert_eq!(
            decode(&s, &scores[1..], &boxes, 0.5, &mut out),
            Err(DetectError::OutputLength)
        );
    }

    #[test]
    fn nms_merges_overlaps_and_keeps_separate_faces() {
        let mut v: Vec<Detection, 8> = Vec::new();
        v.push(det(0.9, 0.30, 0.30, 0.2)).unwrap();
        v.push(det(0.6, 0.32, 0.30, 0.2)).unwrap();
        v.push(det(0.8, 0.70, 0.70, 0.2)).unwrap();
        weighted_nms(&mut v, 0.3);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].score, 0.9);
        let want = (0.9 * 0.30 + 0.6 * 0.32) / 1.5;
        assert!((v[0].center[0] - want).abs() < 1e-6);
        assert_eq!(v[1].center, [0.70, 0.70]);
    }
}
