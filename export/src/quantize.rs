//! Post-training quantisation rules shared by the classifier exporter (`export`) and the ONNX
//! importer (`onnx_import`): symmetric per-channel weights, i32 biases, and activation
//! parameters from a calibrated range.

use facegender_core::nn::QParams;
use facegender_core::nn::write::Params;

/// How an activation's scale is chosen from its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// `range / 255`, as measured.
    Exact,
    /// Rounded up to a power of two ([`pow2_scale`]).
    PowerOfTwo,
}

impl Scale {
    fn apply(self, s: f32) -> f32 {
        match self {
            Self::Exact => s.max(1e-6),
            Self::PowerOfTwo => pow2_scale(s),
        }
    }
}

/// The smallest power of two at or above `s`. Activation scales are powers of two so that a
/// layer's multiplier `w_scale * x_scale / y_scale` is the same f32 in whatever order it is
/// folded: tract folds it differently depending on the layer's channel count, and a last-bit
/// difference flips about one output in 10^6 (see `core/tests/tract_parity.rs`).
pub fn pow2_scale(s: f32) -> f32 {
    2f32.powi(s.max(1e-6).log2().ceil() as i32)
}

/// A ReLU output in `0..=max`: zero at -128.
pub fn relu_q(max: f32, scale: Scale) -> QParams {
    QParams {
        scale: scale.apply(max.max(1e-6) / 255.0),
        zero_point: -128,
    }
}

/// An output in `min..=max` (widened to hold 0).
pub fn range_q(min: f32, max: f32, scale: Scale) -> QParams {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = scale.apply((max - min) / 255.0);
    QParams {
        scale,
        zero_point: (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8,
    }
}

/// Symmetric per-channel int8 weights: `(q, scale per channel)`; `w` is `[channels][per]` unless
/// `channel_last` (depthwise `[k][k][c]`).
pub fn weights(w: &[f32], channels: usize, channel_last: bool) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels;
    let idx = |c: usize, j: usize| {
        if channel_last {
            j * channels + c
        } else {
            c * per + j
        }
    };
    let scales: Vec<f32> = (0..channels)
        .map(|c| {
            let m = (0..per).map(|j| w[idx(c, j)].abs()).fold(0f32, f32::max);
            if m > 0.0 { m / 127.0 } else { 1.0 }
        })
        .collect();
    let mut q = vec![0i8; w.len()];
    for c in 0..channels {
        for j in 0..per {
            q[idx(c, j)] = (w[idx(c, j)] / scales[c]).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

/// i32 biases on the accumulator's grid (`x_scale * w_scale` per channel).
pub fn bias(b: &[f32], x_scale: f32, w_scales: &[f32]) -> Vec<i32> {
    b.iter()
        .zip(w_scales)
        .map(|(&v, &s)| {
            (v as f64 / (x_scale as f64 * s as f64))
                .round()
                .clamp(-(1 << 30) as f64, (1 << 30) as f64) as i32
        })
        .collect()
}

/// A weighted layer's parameters: float weights `w` over `channels` output channels
/// (`channel_last` as in [`weights`]) and biases `b`, for an input of scale `x_scale`.
pub fn params(w: &[f32], b: &[f32], channels: usize, channel_last: bool, x_scale: f32) -> Params {
    let (weights, w_scales) = weights(w, channels, channel_last);
    Params {
        bias: bias(b, x_scale, &w_scales),
        weights,
        w_scales,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_scales_cover_the_range() {
        assert_eq!(pow2_scale(0.3), 0.5);
        assert_eq!(pow2_scale(0.25), 0.25);
        let q = range_q(-1.0, 3.0, Scale::PowerOfTwo);
        assert_eq!(q.scale, 1.0 / 32.0);
        assert!(q.dequantize(-128) <= -1.0 && q.dequantize(127) >= 3.0);
        assert_eq!(range_q(-1.0, 3.0, Scale::Exact).scale, 4.0 / 255.0);
    }

    #[test]
    fn depthwise_weights_are_scaled_per_channel() {
        // [k][c] layout, two channels with ranges 2 and 0.5
        let (q, s) = weights(&[2.0, 0.5, -1.0, -0.25], 2, true);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![127, 127, -64, -64]);
    }
}
