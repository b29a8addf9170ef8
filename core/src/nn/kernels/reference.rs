//! The definition of every operator, written for clarity: one output element at a time.

use super::args::{AddArgs, AvgPoolArgs, ConvArgs, Kernels, PadArgs, PoolArgs};
use super::finish::{finish_reference as finish, tap};
use crate::quant;

/// Plain scalar kernels, the reference the fast ones are tested against.
pub struct Reference;

impl Kernels for Reference {
    fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let (kh, kw, ic) = (win.kh as usize, win.kw as usize, i.c as usize);
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                for oc in 0..o.c as usize {
                    let mut acc: i32 = 0;
                    for ky in 0..kh {
                        let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) = tap(ox, kx, win.sw, win.pad_left, i.w) else {
                                continue;
                            };
                            for c in 0..ic {
                                let xv = x[(iy * i.w as usize + ix) * ic + c] as i32
                                    - a.x_zero_point as i32;
                                let wv = a.weights[((oc * kh + ky) * kw + kx) * ic + c] as i32;
                                acc += xv * wv;
                            }
                        }
                    }
                    let acc = acc.wrapping_add(a.channels.bias(oc));
                    y[(oy * o.w as usize + ox) * o.c as usize + oc] = finish(
                        acc,
                        a.channels.requant(oc),
                        a.rounding,
                        a.y_zero_point,
                        a.clamp,
                    );
                }
            }
        }
    }

    fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let (kh, kw, ch) = (win.kh as usize, win.kw as usize, i.c as usize);
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                for c in 0..ch {
                    let mut acc: i32 = 0;
                    for ky in 0..kh {
                        let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) = tap(ox, kx, win.sw, win.pad_left, i.w) else {
                                continue;
                            };
                            let xv =
                                x[(iy * i.w as usize + ix) * ch + c] as i32 - a.x_zero_point as i32;
                            acc += xv * a.weights[(ky * kw + kx) * ch + c] as i32;
                        }
                    }
                    let acc = acc.wrapping_add(a.channels.bias(c));
                    y[(oy * o.w as usize + ox) * ch + c] = finish(
                        acc,
                        a.channels.requant(c),
                        a.rounding,
                        a.y_zero_point,
                        a.clamp,
                    );
                }
            }
        }
    }

    fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let n = a.input.len();
        for oc in 0..a.output.c as usize {
            let mut acc: i32 = 0;
            for k in 0..n {
                acc += (x[k] as i32 - a.x_zero_point as i32) * a.weights[oc * n + k] as i32;
            }
            let acc = acc.wrapping_add(a.channels.bias(oc));
            y[oc] = finish(
                acc,
                a.channels.requant(oc),
                a.rounding,
                a.y_zero_point,
                a.clamp,
            );
        }
    }

    fn max_pool(a: &PoolArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let ch = i.c as usize;
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                for c in 0..ch {
                    let mut m = i8::MIN;
                    for ky in 0..win.kh as usize {
                        let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                            continue;
                        };
                        for kx in 0..win.kw as usize {
                            let Some(ix) = tap(ox, kx, win.sw, win.pad_left, i.w) else {
                                continue;
                            };
                            m = m.max(x[(iy * i.w as usize + ix) * ch + c]);
                        }
                    }
                    y[(oy * o.w as usize + ox) * ch + c] = m;
                }
            }
        }
    }

    fn avg_pool(a: &AvgPoolArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let ch = i.c as usize;
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                for c in 0..ch {
                    let mut acc: i32 = 0;
                    for ky in 0..win.kh as usize {
                        let iy = oy * win.sh as usize + ky;
                        for kx in 0..win.kw as usize {
                            let ix = ox * win.sw as usize + kx;
                            acc +=
                                x[(iy * i.w as usize + ix) * ch + c] as i32 - a.x_zero_point as i32;
                        }
                    }
                    y[(oy * o.w as usize + ox) * ch + c] =
                        finish(acc, a.requant, a.rounding, a.y_zero_point, a.clamp);
                }
            }
        }
    }

    /// ONNX `DequantizeLinear -> Add -> QuantizeLinear` as tract evaluates it, in f32. This is
    /// the one operator that uses floats: the ONNX graph defines it that way and bit parity
    /// with tract needs the same three roundings (IEEE f32 is exact on the FPU of a Cortex-M4F).
    fn add(a: &AddArgs, xa: &[i8], xb: &[i8], y: &mut [i8]) {
        for ((&p, &q), out) in xa.iter().zip(xb).zip(y.iter_mut()) {
            let sum = a.a.dequantize(p) + a.b.dequantize(q);
            let v = quant::quantize(sum, a.y.scale, a.y.zero_point);
            *out = v.clamp(a.clamp.min, a.clamp.max);
        }
    }

    fn pad_channels(a: &PadArgs, x: &[i8], y: &mut [i8]) {
        let (ci, co) = (a.input.c as usize, a.output.c as usize);
        for p in 0..a.input.h as usize * a.input.w as usize {
            for c in 0..co {
                y[p * co + c] = if c < ci { x[p * ci + c] } else { a.zero_point };
            }
        }
    }
}
