//! The classifier's export (`facegender export`): a trained run to (a) float ONNX, (b) int8 ONNX and (c) the core's int8
//! model file, with post-training quantisation done here.
//!
//! 1. Batch norm is folded into the preceding convolution.
//! 2. Weights: symmetric int8 per output channel, `scale = max |w| / 127`.
//! 3. Activations: a float forward pass over the calibration images records each layer's output
//!    range (method: minimum and maximum over the calibration set). ReLU outputs get `[0, max]`
//!    with zero point -128 (so saturation is the ReLU), logits get `[min, max]`. Scales are
//!    powers of two; by default ([`Ranges::Mse`]) each ReLU output then takes the power of two
//!    with the least squared error, which may clip its rarest largest values.
//! 4. Biases: int32 with scale `x_scale * w_scale`.
//! 5. The input is `(pixel - 128) / 128`, i.e. int8 `pixel - 128` with scale 1/128, exactly.
//!
//! The int8 ONNX is the core model written as QLinearConv / MaxPool graph
//! (`facegender_core::nn::onnx`), so core and tract run the same integers.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Tensor;
use facegender_core::nn::model::Model;
use facegender_core::nn::onnx::{InputKind, to_onnx};
use facegender_core::nn::write::ModelBuilder;
use facegender_core::nn::{Clamp, OpKind, QParams, Shape, Window};
use facegender_pipeline::error::Context;
use prost::Message;

use facegender_pipeline::align::AlignMethod;
use facegender_pipeline::classify::nhwc_input;
use facegender_pipeline::dataset::crops::Split;
use facegender_pipeline::fsutil;
use facegender_pipeline::model_dir::{
    CORE_MODEL, ExportInfo, FLOAT_ONNX, INFO, INT8_ONNX, QParamsInfo,
};
use facegender_train::inference::Trained;
use facegender_train::model::{ConvBn, Net};

use crate::quantize::{self, Scale, range_q, relu_q};

/// A layer after batch-norm folding, weights in the core's layouts.
#[derive(Clone, Debug)]
pub enum Folded {
    /// `w`: `[out][k][k][in]`.
    Conv {
        w: Vec<f32>,
        b: Vec<f32>,
        k: usize,
        stride: usize,
        cin: usize,
        cout: usize,
    },
    /// `w`: `[k][k][c]`.
    Depthwise {
        w: Vec<f32>,
        b: Vec<f32>,
        k: usize,
        c: usize,
    },
    MaxPool,
    GlobalAvgPool,
    /// `w`: `[out][in]`.
    Linear {
        w: Vec<f32>,
        b: Vec<f32>,
        cin: usize,
        cout: usize,
    },
}

/// A tensor's values as f32s, in burn's (row-major) order.
fn read<const D: usize>(t: Tensor<D>) -> facegender_pipeline::Result<Vec<f32>> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| facegender_pipeline::invalid!("{e:?}"))
}

fn fold_block(block: &ConvBn) -> facegender_pipeline::Result<Folded> {
    let dims = block.conv.weight.dims();
    let (cout, cin_g, k) = (dims[0], dims[1], dims[2]);
    let w = read(block.conv.weight.val())?;
    let bias = match &block.conv.bias {
        Some(b) => read(b.val())?,
        None => vec![0.0; cout],
    };
    let gamma = read(block.bn.gamma.val())?;
    let beta = read(block.bn.beta.val())?;
    let mean = read(block.bn.running_mean.value())?;
    let var = read(block.bn.running_var.value())?;
    let eps = block.bn.epsilon as f32;
    let scale: Vec<f32> = (0..cout)
        .map(|o| gamma[o] / (var[o] + eps).sqrt())
        .collect();
    let b: Vec<f32> = (0..cout)
        .map(|o| (bias[o] - mean[o]) * scale[o] + beta[o])
        .collect();
    // burn: [out][in/groups][kh][kw]
    let depthwise = cin_g == 1 && block.conv.groups == cout && cout > 1;
    if depthwise {
        let mut out = vec![0f32; k * k * cout];
        for c in 0..cout {
            for y in 0..k {
                for x in 0..k {
                    out[(y * k + x) * cout + c] = w[(c * k + y) * k + x] * scale[c];
                }
            }
        }
        return Ok(Folded::Depthwise {
            w: out,
            b,
            k,
            c: cout,
        });
    }
    facegender_pipeline::ensure!(
        block.conv.groups == 1,
        "grouped convolutions other than depthwise are not supported"
    );
    let cin = cin_g;
    let mut out = vec![0f32; cout * k * k * cin];
    for o in 0..cout {
        for i in 0..cin {
            for y in 0..k {
                for x in 0..k {
                    out[((o * k + y) * k + x) * cin + i] =
                        w[((o * cin + i) * k + y) * k + x] * scale[o];
                }
            }
        }
    }
    Ok(Folded::Conv {
        w: out,
        b,
        k,
        stride: block.conv.stride[0],
        cin,
        cout,
    })
}

/// The network as a list of folded layers, in execution order.
pub fn fold(net: &Net) -> facegender_pipeline::Result<Vec<Folded>> {
    let net = net.valid();
    let mut layers = Vec::new();
    facegender_pipeline::ensure!(
        net.avg.is_none(),
        "average-pooled models are not exported yet"
    );
    for (s, &pool) in net.stages.iter().zip(&net.pool_after) {
        if let Some(dw) = &s.depthwise {
            layers.push(fold_block(dw)?);
        }
        layers.push(fold_block(&s.conv)?);
        if pool {
            layers.push(Folded::MaxPool);
        }
    }
    layers.push(Folded::GlobalAvgPool);
    let dims = net.fc.weight.dims(); // [in, out]
    let (cin, cout) = (dims[0], dims[1]);
    let w_io = read(net.fc.weight.val())?;
    let mut w = vec![0f32; cin * cout];
    for i in 0..cin {
        for o in 0..cout {
            w[o * cin + i] = w_io[i * cout + o];
        }
    }
    let b = match &net.fc.bias {
        Some(b) => read(b.val())?,
        None => vec![0.0; cout],
    };
    layers.push(Folded::Linear { w, b, cin, cout });
    Ok(layers)
}

/// A same-padded convolution with bias and ReLU over an HWC tensor `x` of `(h, w, cin)`:
/// each output channel reads every input channel (weights `[o][ky][kx][cin]`), or only its own
/// when `depthwise` (weights `[ky][kx][c]`). Returns the output and its height and width.
fn conv_relu(
    x: &[f32],
    (h, w, cin): (usize, usize, usize),
    (wt, b): (&[f32], &[f32]),
    (k, stride): (usize, usize),
    depthwise: bool,
) -> (Vec<f32>, usize, usize) {
    let (p, cout) = (k / 2, b.len());
    let (oh, ow) = if depthwise {
        (h, w)
    } else {
        ((h + 2 * p - k) / stride + 1, (w + 2 * p - k) / stride + 1)
    };
    let mut y = vec![0f32; oh * ow * cout];
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..cout {
                let mut acc = b[o];
                for ky in 0..k {
                    let iy = (oy * stride) as isize + ky as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * stride) as isize + kx as isize - p as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let at = (iy as usize * w + ix as usize) * cin;
                        acc += if depthwise {
                            x[at + o] * wt[(ky * k + kx) * cout + o]
                        } else {
                            let xs = &x[at..][..cin];
                            let ws = &wt[((o * k + ky) * k + kx) * cin..][..cin];
                            xs.iter().zip(ws).map(|(a, b)| a * b).sum::<f32>()
                        };
                    }
                }
                y[(oy * ow + ox) * cout + o] = acc.max(0.0);
            }
        }
    }
    (y, oh, ow)
}

/// Float forward pass of the folded network on one NHWC image; returns every layer's output.
pub fn float_forward(layers: &[Folded], x: Vec<f32>, side: usize) -> Vec<Vec<f32>> {
    let (mut h, mut w, mut c) = (side, side, 3usize);
    let mut cur = x;
    let mut outs = Vec::with_capacity(layers.len());
    for l in layers {
        let next = match l {
            Folded::Conv {
                w: wt,
                b,
                k,
                stride,
                cin,
                cout,
            } => {
                let (y, oh, ow) = conv_relu(&cur, (h, w, *cin), (wt, b), (*k, *stride), false);
                (h, w, c) = (oh, ow, *cout);
                y
            }
            Folded::Depthwise { w: wt, b, k, .. } => {
                conv_relu(&cur, (h, w, c), (wt, b), (*k, 1), true).0
            }
            Folded::MaxPool => {
                let (oh, ow) = (h / 2, w / 2);
                let mut y = vec![f32::NEG_INFINITY; oh * ow * c];
                for oy in 0..oh {
                    for ox in 0..ow {
                        for cc in 0..c {
                            let mut m = f32::NEG_INFINITY;
                            for dy in 0..2 {
                                for dx in 0..2 {
                                    m = m.max(cur[((2 * oy + dy) * w + 2 * ox + dx) * c + cc]);
                                }
                            }
                            y[(oy * ow + ox) * c + cc] = m;
                        }
                    }
                }
                (h, w) = (oh, ow);
                y
            }
            Folded::GlobalAvgPool => {
                let mut y = vec![0f32; c];
                for px in cur.chunks(c) {
                    for (a, v) in y.iter_mut().zip(px) {
                        *a += v;
                    }
                }
                let n = (h * w) as f32;
                (h, w) = (1, 1);
                y.into_iter().map(|v| v / n).collect()
            }
            Folded::Linear {
                w: wt,
                b,
                cin,
                cout,
            } => {
                let y = (0..*cout)
                    .map(|o| {
                        b[o] + wt[o * cin..(o + 1) * cin]
                            .iter()
                            .zip(&cur)
                            .map(|(a, x)| a * x)
                            .sum::<f32>()
                    })
                    .collect();
                c = *cout;
                y
            }
        };
        outs.push(next.clone());
        cur = next;
    }
    outs
}

/// Per-layer output ranges over the calibration images (min, max).
pub fn calibrate(layers: &[Folded], images: &[image::RgbImage], side: usize) -> Vec<(f32, f32)> {
    use rayon::prelude::*;
    images
        .par_iter()
        .map(|img| {
            float_forward(layers, nhwc_input(img), side)
                .iter()
                .map(|o| {
                    o.iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                            (a.min(v), b.max(v))
                        })
                })
                .collect::<Vec<_>>()
        })
        .reduce(
            || vec![(f32::INFINITY, f32::NEG_INFINITY); layers.len()],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x.0.min(y.0), x.1.max(y.1)))
                    .collect()
            },
        )
}

/// Power-of-two scales tried below the min/max one for each ReLU output: clipping the rare
/// largest activations can buy a finer step for all the others.
const CLIP_STEPS: usize = 3;

/// [`calibrate`]'s ranges with each ReLU output's top lowered to the power-of-two scale (the
/// min/max one, or up to `CLIP_STEPS` halvings) whose int8 rounding and clipping give the least
/// squared error over the calibration images. Logits keep their min/max range.
pub fn refine_ranges(
    layers: &[Folded],
    images: &[image::RgbImage],
    side: usize,
    ranges: &[(f32, f32)],
) -> Vec<(f32, f32)> {
    use rayon::prelude::*;
    let relu = |l: &Folded| {
        matches!(
            l,
            Folded::Conv { .. } | Folded::Depthwise { .. } | Folded::GlobalAvgPool
        )
    };
    let errors: Vec<[f64; CLIP_STEPS + 1]> = images
        .par_iter()
        .map(|img| {
            let outs = float_forward(layers, nhwc_input(img), side);
            layers
                .iter()
                .zip(&outs)
                .zip(ranges)
                .map(|((l, o), &(_, hi))| {
                    if relu(l) {
                        clip_errors(o, hi)
                    } else {
                        [0.0; CLIP_STEPS + 1]
                    }
                })
                .collect()
        })
        .reduce(
            || vec![[0f64; CLIP_STEPS + 1]; layers.len()],
            |a, b| {
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| std::array::from_fn(|k| x[k] + y[k]))
                    .collect()
            },
        );
    layers
        .iter()
        .zip(ranges)
        .zip(&errors)
        .map(|((l, &(lo, hi)), e)| {
            if !relu(l) {
                return (lo, hi);
            }
            let best = (0..=CLIP_STEPS)
                .min_by(|&a, &b| e[a].total_cmp(&e[b]))
                .unwrap_or(0);
            (lo, clip_scale(hi, best) * 255.0)
        })
        .collect()
}

/// The power-of-two scale `k` halvings below the one that holds `0..=hi`.
fn clip_scale(hi: f32, k: usize) -> f32 {
    quantize::pow2_scale(hi.max(1e-6) / 255.0) / (1u32 << k) as f32
}

/// Squared error of ReLU outputs `values` quantised to `0..=255` steps of `clip_scale(hi, k)`,
/// for `k = 0..=CLIP_STEPS`.
pub fn clip_errors(values: &[f32], hi: f32) -> [f64; CLIP_STEPS + 1] {
    std::array::from_fn(|k| {
        let s = clip_scale(hi, k);
        values
            .iter()
            .map(|&v| f64::from(v - (v / s).round().clamp(0.0, 255.0) * s).powi(2))
            .sum()
    })
}

/// The int8 core model of a folded network, with activation ranges from [`calibrate`].
pub fn quantize(
    layers: &[Folded],
    ranges: &[(f32, f32)],
    side: usize,
) -> facegender_pipeline::Result<ModelBuilder> {
    let s = u16::try_from(side)?;
    let mut b = ModelBuilder::new(
        Shape::new(s, s, 3),
        QParams {
            scale: 1.0 / 128.0,
            zero_point: 0,
        },
    );
    let mut x = 0u16;
    for (l, &(lo, hi)) in layers.iter().zip(ranges) {
        let xq = b.qparams(x);
        let e = |e: facegender_core::nn::write::WriteError| facegender_pipeline::invalid!("{e}");
        x = match l {
            Folded::Conv {
                w,
                b: bias,
                k,
                stride,
                cout,
                ..
            } => {
                let p = quantize::params(w, bias, *cout, false, xq.scale);
                let (yq, win) = (relu_q(hi, Scale::PowerOfTwo), same_padding(*k, *stride));
                b.conv(OpKind::Conv2d, x, win, yq, Clamp::relu(yq), p)
                    .map_err(e)?
            }
            Folded::Depthwise { w, b: bias, k, c } => {
                let p = quantize::params(w, bias, *c, true, xq.scale);
                let (yq, win) = (relu_q(hi, Scale::PowerOfTwo), same_padding(*k, 1));
                b.conv(OpKind::DepthwiseConv2d, x, win, yq, Clamp::relu(yq), p)
                    .map_err(e)?
            }
            Folded::MaxPool => b.max_pool(x, Window::valid(2, 2, 2, 2)).map_err(e)?,
            Folded::GlobalAvgPool => b
                .global_avg_pool(x, relu_q(hi, Scale::PowerOfTwo))
                .map_err(e)?,
            Folded::Linear {
                w, b: bias, cout, ..
            } => {
                let p = quantize::params(w, bias, *cout, false, xq.scale);
                let yq = range_q(lo, hi, Scale::PowerOfTwo);
                b.fully_connected(x, yq, Clamp::NONE, p).map_err(e)?
            }
        };
    }
    b.output(x);
    Ok(b)
}

/// How activation ranges are chosen from the calibration images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ranges {
    /// Minimum and maximum of each layer's output, scale rounded up to a power of two.
    MinMax,
    /// As min-max, then each ReLU output's power-of-two scale that gives the least squared
    /// error (rounding plus clipping) over the calibration images ([`refine_ranges`]).
    Mse,
}

impl Ranges {
    fn describe(self) -> &'static str {
        match self {
            Self::MinMax => {
                "per-tensor min/max of each layer's float output over the calibration images, scale rounded up to a power of two"
            }
            Self::Mse => {
                "per-tensor min/max of each layer's float output over the calibration images, scale rounded up to a power of two; then for each ReLU output the power-of-two scale (that one or up to 3 halvings, clipping the largest values) with the least squared int8 error over the calibration images"
            }
        }
    }
}

/// A `k` x `k` window at `stride` padded by `k / 2` on every side, as burn's convolutions are.
fn same_padding(k: usize, stride: usize) -> Window {
    let (k, stride) = (k as u8, stride as u8);
    Window {
        kh: k,
        kw: k,
        sh: stride,
        sw: stride,
        pad_top: k / 2,
        pad_left: k / 2,
        pad_bottom: k / 2,
        pad_right: k / 2,
    }
}

/// Runs the export and writes the four files into `out`.
pub fn export(
    run: &Path,
    calibration: &Split,
    out: &Path,
    align: AlignMethod,
    crop_scale: f64,
    method: Ranges,
) -> facegender_pipeline::Result<ExportInfo> {
    let trained = Trained::load(run)?;
    let side = trained.config.model.input;
    let layers = fold(&trained.net)?;
    let min_max = calibrate(&layers, &calibration.images, side);
    let ranges = match method {
        Ranges::MinMax => min_max.clone(),
        Ranges::Mse => refine_ranges(&layers, &calibration.images, side, &min_max),
    };
    let lowered = ranges
        .iter()
        .zip(&min_max)
        .filter(|(r, m)| r.1 < m.1)
        .count();
    let core_bytes = quantize(&layers, &ranges, side)?
        .to_bytes()
        .map_err(|e| facegender_pipeline::invalid!("{e}"))?;
    let model = Model::parse(&core_bytes).map_err(|e| facegender_pipeline::invalid!("{e}"))?;
    let int8_onnx = to_onnx(&model, InputKind::Float).encode_to_vec();
    let float_onnx = float_onnx(&trained.net, side)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fsutil::write_replace(&out.join(CORE_MODEL), &core_bytes)?;
    fsutil::write_replace(&out.join(INT8_ONNX), &int8_onnx)?;
    fsutil::write_replace(&out.join(FLOAT_ONNX), &float_onnx)?;
    let q = model.output(0).q;
    let info = ExportInfo {
        classes: trained.classes.clone(),
        input: side,
        align,
        crop_scale,
        input_scaling: "(pixel - 128) / 128, RGB, NCHW for ONNX; int8 pixel - 128 for the core"
            .into(),
        calibration_images: calibration.len(),
        calibration_method: method.describe().into(),
        lowered_scales: lowered,
        macs: model.macs(),
        weight_bytes: model.weight_bytes(),
        arena_bytes: model.arena_len(),
        model_file_bytes: core_bytes.len(),
        logits: QParamsInfo {
            scale: q.scale,
            zero_point: q.zero_point,
        },
    };
    fsutil::write_replace(&out.join(INFO), &serde_json::to_vec_pretty(&info)?)?;
    Ok(info)
}

/// The float model traced by burn-onnx's exporter (opset 18, logits output).
pub fn float_onnx(net: &Net, side: usize) -> facegender_pipeline::Result<Vec<u8>> {
    let m = net.valid();
    let dev = burn::tensor::Device::flex();
    let m = m.fork(&dev);
    let sample = Tensor::<4>::zeros([1, 3, side, side], &dev);
    let onnx = burn_onnx::export::OnnxExporter::new()
        .export(&m, sample, Net::forward)
        .map_err(|e| facegender_pipeline::invalid!("burn-onnx export: {e}"))?;
    Ok(onnx.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100,000 ReLU outputs spread evenly over `0..0.1`, plus `extra`.
    fn small_values(extra: &[f32]) -> Vec<f32> {
        let mut v: Vec<f32> = (0..100_000).map(|i| i as f32 * 1e-6).collect();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn a_lone_outlier_is_clipped_when_a_finer_step_pays_for_it() {
        // min/max: 1.0 needs the scale 2^-7; at 2^-8 the outlier clips to 0.996 (error 1.6e-5)
        // while every other value rounds to half the step; at 2^-9 it would clip to 0.498.
        let e = clip_errors(&small_values(&[1.0]), 1.0);
        let best = (0..=CLIP_STEPS).min_by(|&a, &b| e[a].total_cmp(&e[b]));
        assert_eq!(best, Some(1), "{e:?}");
    }

    #[test]
    fn values_spread_over_the_whole_range_keep_the_min_max_scale() {
        // 0..=0.996: just what the scale 2^-8 holds, so halving it would clip half the values
        let top = 255.0 / 256.0;
        let v: Vec<f32> = (0..=10_000).map(|i| i as f32 * top / 1e4).collect();
        let e = clip_errors(&v, top);
        let best = (0..=CLIP_STEPS).min_by(|&a, &b| e[a].total_cmp(&e[b]));
        assert_eq!(best, Some(0), "{e:?}");
    }

    #[test]
    fn each_step_halves_the_power_of_two_scale() {
        assert_eq!(clip_scale(1.0, 0), 2f32.powi(-7));
        assert_eq!(clip_scale(1.0, 3), 2f32.powi(-10));
        // the range handed to the quantiser gives back exactly that scale
        let q = quantize::relu_q(clip_scale(5.0, 2) * 255.0, Scale::PowerOfTwo);
        assert_eq!(q.scale, clip_scale(5.0, 2));
    }
}
