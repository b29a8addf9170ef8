//! Random but well-conditioned int8 models, for parity tests, fuzz corpora and benchmarks (std).
//!
//! Shapes are deliberately awkward (odd sizes, 1x1, stride 2 on odd inputs, channel counts that
//! are not multiples of 4); scales are chosen so outputs spread over the int8 range instead of
//! saturating, which makes rounding differences visible.

use std::vec::Vec;

use super::OpKind::{Conv2d, DepthwiseConv2d};
use super::write::{ModelBuilder, Params, WriteError};
use super::{Clamp, QParams, Shape, Window};

/// SplitMix64: tiny, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        super::splitmix::next(&mut self.0)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next_u64() as i8).collect()
    }

    /// Symmetric int8 weights in `[-127, 127]`.
    pub fn weights(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| (self.range(0, 255) as i16 - 127) as i8)
            .collect()
    }
}

fn qparams(rng: &mut Rng) -> QParams {
    QParams {
        scale: 0.005 + 0.1 * rng.unit(),
        zero_point: rng.range(0, 256) as u8 as i8,
    }
}

fn window(rng: &mut Rng, h: u16, w: u16, max_k: u8) -> Window {
    for _ in 0..8 {
        let k = rng.range(1, max_k as u64 + 1) as u8;
        let s = rng.range(1, 3) as u8;
        let win = if rng.chance(0.5) {
            Window::same(k, k, s, s, h, w)
        } else {
            Some(Window::valid(k, k, s, s))
        };
        if let Some(win) = win.filter(|x| x.output_hw(h, w).is_some()) {
            // SAME padding can reach the kernel size for k = 1 with stride 2: keep it valid.
            if win.pad_top < k && win.pad_bottom < k && win.pad_left < k && win.pad_right < k {
                return win;
            }
        }
    }
    Window::valid(1, 1, 1, 1)
}

/// Output scale that keeps `|acc| ~ sqrt(fan_in) * 70 * 73` around 40 quantisation steps.
fn out_scale(x: QParams, w_scale: f32, fan_in: usize, rng: &mut Rng) -> f32 {
    let acc = (fan_in as f32).sqrt() * 70.0 * 73.0;
    x.scale * w_scale * acc / (20.0 + 40.0 * rng.unit())
}

fn clamp(rng: &mut Rng, q: QParams) -> Clamp {
    match rng.range(0, 3) {
        0 => Clamp::NONE,
        1 => Clamp::relu(q),
        _ => Clamp::relu6(q),
    }
}

/// Per-channel weight scales: random, or all equal (the exact-rounding path in tract).
fn w_scales(rng: &mut Rng, n: usize) -> Vec<f32> {
    let base = 0.002 + 0.02 * rng.unit();
    if rng.chance(0.25) {
        std::vec![base; n]
    } else {
        (0..n).map(|_| base * (0.5 + rng.unit())).collect()
    }
}

fn bias(rng: &mut Rng, n: usize, spread: f32) -> Vec<i32> {
    (0..n)
        .map(|_| ((rng.unit() - 0.5) * 2.0 * spread) as i32)
        .collect()
}

/// A random model: 1 to 7 layers mixing conv, depthwise, pools, residual add and a final fully
/// connected layer, with 1 or 2 outputs.
pub fn random_model(seed: u64) -> Result<ModelBuilder, WriteError> {
    let mut rng = Rng(seed);
    let input = Shape::new(
        rng.range(1, 14) as u16,
        rng.range(1, 14) as u16,
        rng.range(1, 6) as u16,
    );
    let mut b = ModelBuilder::new(input, qparams(&mut rng));
    let mut x = 0u16;
    let layers = rng.range(1, 8);
    for _ in 0..layers {
        let s = b.shape(x);
        let xq = b.qparams(x);
        x = match rng.range(0, 6) {
            0 | 1 => {
                let win = window(&mut rng, s.h, s.w, 3);
                let out_c = rng.range(1, 19) as u16;
                let fan_in = win.kh as usize * win.kw as usize * s.c as usize;
                let ws = w_scales(&mut rng, out_c as usize);
                let q = QParams {
                    scale: out_scale(xq, ws[0], fan_in, &mut rng),
                    zero_point: rng.range(0, 256) as u8 as i8,
                };
                let w = rng.weights(out_c as usize * fan_in);
                let bias = bias(&mut rng, out_c as usize, 3000.0);
                let (c, p) = (clamp(&mut rng, q), Params::new(w, bias, ws));
                b.conv(Conv2d, x, win, q, c, p)?
            }
            2 => {
                let win = window(&mut rng, s.h, s.w, 3);
                let fan_in = win.kh as usize * win.kw as usize;
                let ws = w_scales(&mut rng, s.c as usize);
                let q = QParams {
                    scale: out_scale(xq, ws[0], fan_in, &mut rng),
                    zero_point: rng.range(0, 256) as u8 as i8,
                };
                let w = rng.weights(fan_in * s.c as usize);
                let bias = bias(&mut rng, s.c as usize, 1000.0);
                let (c, p) = (clamp(&mut rng, q), Params::new(w, bias, ws));
                b.conv(DepthwiseConv2d, x, win, q, c, p)?
            }
            3 if rng.chance(0.3) => b.pad_channels(x, s.c + rng.range(1, 5) as u16)?,
            3 => b.max_pool(x, window(&mut rng, s.h, s.w, 3))?,
            4 => {
                let k = rng.range(1, 3.min(s.h.min(s.w) as u64) + 1) as u8;
                let st = rng.range(1, 3) as u8;
                let q = QParams {
                    scale: xq.scale * (0.5 + rng.unit()),
                    zero_point: rng.range(0, 256) as u8 as i8,
                };
                let c = if rng.chance(0.3) {
                    Clamp::relu(q)
                } else {
                    Clamp::NONE
                };
                b.avg_pool(x, Window::valid(k, k, st, st), q, c)?
            }
            _ => {
                // residual: x + conv_same(x), channels kept
                let win = Window::same(3, 3, 1, 1, s.h, s.w).unwrap_or(Window::valid(1, 1, 1, 1));
                let fan_in = win.kh as usize * win.kw as usize * s.c as usize;
                let ws = w_scales(&mut rng, s.c as usize);
                let q = QParams {
                    scale: out_scale(xq, ws[0], fan_in, &mut rng),
                    zero_point: rng.range(0, 256) as u8 as i8,
                };
                let w = rng.weights(s.c as usize * fan_in);
                let bs = bias(&mut rng, s.c as usize, 3000.0);
                let p = Params::new(w, bs, ws);
                let branch = b.conv(Conv2d, x, win, q, Clamp::NONE, p)?;
                let yq = QParams {
                    scale: (xq.scale + q.scale) * (0.4 + rng.unit()),
                    zero_point: rng.range(0, 256) as u8 as i8,
                };
                let c = clamp(&mut rng, yq);
                b.add(x, branch, yq, c)?
            }
        };
    }
    if rng.chance(0.5) {
        b.output(x);
    }
    if rng.chance(0.7) || b.outputs.is_empty() {
        let s = b.shape(x);
        let xq = b.qparams(x);
        let out_c = rng.range(2, 11) as usize;
        let ws = w_scales(&mut rng, out_c);
        let q = QParams {
            scale: out_scale(xq, ws[0], s.len(), &mut rng),
            zero_point: rng.range(0, 256) as u8 as i8,
        };
        let w = rng.weights(out_c * s.len());
        let bias = bias(&mut rng, out_c, 3000.0);
        let y = b.fully_connected(x, q, Clamp::NONE, Params::new(w, bias, ws))?;
        b.output(y);
    }
    Ok(b)
}
