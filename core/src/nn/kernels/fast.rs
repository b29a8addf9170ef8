//! The kernels inference uses. Same results as [`super::reference::Reference`], arranged so the compiler can
//! vectorise the inner loops: contiguous NHWC rows, zero-point subtraction hoisted out of the
//! multiply-accumulate, and accumulators in small stack arrays (no heap, bounded stack).

use super::args::{
    AddArgs, AvgPoolArgs, CHANNEL_CACHE, Channel, ConvArgs, Kernels, PadArgs, PoolArgs,
};
use super::finish::{OutRange, finish, tap};
use super::reference::Reference;

/// The operators a kernel set takes from [`Fast`] unchanged, inside its `impl Kernels`: max and
/// average pooling, add and channel padding (only convolutions have faster kernels elsewhere).
macro_rules! pools_add_and_pad {
    () => {
        fn max_pool(a: &super::args::PoolArgs, x: &[i8], y: &mut [i8]) {
            super::fast::Fast::max_pool(a, x, y)
        }

        fn avg_pool(a: &super::args::AvgPoolArgs, x: &[i8], y: &mut [i8]) {
            super::fast::Fast::avg_pool(a, x, y)
        }

        fn add(a: &super::args::AddArgs, xa: &[i8], xb: &[i8], y: &mut [i8]) {
            super::fast::Fast::add(a, xa, xb, y)
        }

        fn pad_channels(a: &super::args::PadArgs, x: &[i8], y: &mut [i8]) {
            super::fast::Fast::pad_channels(a, x, y)
        }
    };
}
pub(super) use pools_add_and_pad;

/// Optimised kernels for inference.
pub struct Fast;

/// Largest conv patch (`kh * kw * in_c`) built on the stack (i16, so 4.5 KiB). Larger patches
/// fall back to the reference kernel.
pub const PATCH_CAPACITY: usize = 2304;

/// Channels processed per pass in depthwise and pooling kernels.
const CHANNEL_BLOCK: usize = 64;

#[inline(always)]
fn dot_i16_i8(p: &[i16], w: &[i8]) -> i32 {
    // One plain sum: LLVM turns it into widening multiply-adds (pmaddwd; vpdpwssd where AVX-512
    // VNNI is enabled) in the host's SIMD builds. (Measured: an x + 128 u8 patch with a weight-sum
    // correction ran 1.4x slower; LLVM does not form vpdpbusd from it.)
    p.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum()
}

#[inline(always)]
fn dot_i8(x: &[i8], w: &[i8]) -> i32 {
    x.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum()
}

impl Kernels for Fast {
    fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        conv2d(a, x, y)
    }

    fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        depthwise_conv2d(a, x, y)
    }

    fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        fully_connected(a, x, y)
    }

    fn max_pool(a: &PoolArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let ch = i.c as usize;
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                let out = &mut y[(oy * o.w as usize + ox) * ch..][..ch];
                out.fill(i8::MIN);
                for ky in 0..win.kh as usize {
                    let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                        continue;
                    };
                    for kx in 0..win.kw as usize {
                        let Some(ix) = tap(ox, kx, win.sw, win.pad_left, i.w) else {
                            continue;
                        };
                        let src = &x[(iy * i.w as usize + ix) * ch..][..ch];
                        for (d, &s) in out.iter_mut().zip(src) {
                            *d = (*d).max(s);
                        }
                    }
                }
            }
        }
    }

    fn avg_pool(a: &AvgPoolArgs, x: &[i8], y: &mut [i8]) {
        let (i, o, win) = (a.input, a.output, a.window);
        let ch = i.c as usize;
        let taps = win.kh as i32 * win.kw as i32;
        let zp_total = a.x_zero_point as i32 * taps;
        for oy in 0..o.h as usize {
            for ox in 0..o.w as usize {
                let pixel = (oy * o.w as usize + ox) * ch;
                for c0 in (0..ch).step_by(CHANNEL_BLOCK) {
                    let n = CHANNEL_BLOCK.min(ch - c0);
                    let mut acc = [0i32; CHANNEL_BLOCK];
                    let acc = &mut acc[..n];
                    for ky in 0..win.kh as usize {
                        let iy = oy * win.sh as usize + ky;
                        for kx in 0..win.kw as usize {
                            let ix = ox * win.sw as usize + kx;
                            let xs = &x[(iy * i.w as usize + ix) * ch + c0..][..n];
                            for (s, &v) in acc.iter_mut().zip(xs) {
                                *s += v as i32;
                            }
                        }
                    }
                    for (j, &s) in acc.iter().enumerate() {
                        y[pixel + c0 + j] =
                            finish(s - zp_total, a.requant, a.rounding, a.y_zero_point, a.clamp);
                    }
                }
            }
        }
    }

    fn add(a: &AddArgs, xa: &[i8], xb: &[i8], y: &mut [i8]) {
        // The reference's f32 arithmetic, with each input's 256 dequantised values looked up
        // instead of computed, the reciprocal taken once, and round-half-even by the 1.5 * 2^23
        // trick instead of libm. It is exact below 2^22; a larger value keeps its sign and
        // magnitude, so clamping it to the output range (less the zero point, so nothing
        // overflows) gives the reference's byte; NaN gives 0 in both.
        let (mut ta, mut tb) = ([0f32; 256], [0f32; 256]);
        for q in i8::MIN..=i8::MAX {
            ta[(q as u8) as usize] = a.a.dequantize(q);
            tb[(q as u8) as usize] = a.b.dequantize(q);
        }
        let inv = 1.0 / a.y.scale;
        let range = OutRange::new(a.y.zero_point, a.clamp);
        for ((&p, &q), out) in xa.iter().zip(xb).zip(y.iter_mut()) {
            *out = range.round((ta[p as u8 as usize] + tb[q as u8 as usize]) * inv);
        }
    }

    fn pad_channels(a: &PadArgs, x: &[i8], y: &mut [i8]) {
        let (ci, co) = (a.input.c as usize, a.output.c as usize);
        for (src, dst) in x.chunks_exact(ci).zip(y.chunks_exact_mut(co)) {
            dst[..ci].copy_from_slice(src);
            dst[ci..].fill(a.zero_point);
        }
    }
}

/// [`Fast`]'s convolution (also compiled with AVX2 / AVX-512 by `super::x86`).
#[inline(always)]
pub(super) fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
    let (i, o, win) = (a.input, a.output, a.window);
    let (kh, kw, ic) = (win.kh as usize, win.kw as usize, i.c as usize);
    let k = kh * kw * ic;
    if k > PATCH_CAPACITY {
        return Reference::conv2d(a, x, y);
    }
    let zp = a.x_zero_point as i16;
    let mut patch = [0i16; PATCH_CAPACITY];
    let patch = &mut patch[..k];
    let oc = o.c as usize;
    for oy in 0..o.h as usize {
        for ox in 0..o.w as usize {
            // im2col for one output pixel, zero point already subtracted; padded taps are 0.
            for ky in 0..kh {
                let row = &mut patch[ky * kw * ic..(ky + 1) * kw * ic];
                let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                    row.fill(0);
                    continue;
                };
                for kx in 0..kw {
                    let dst = &mut row[kx * ic..(kx + 1) * ic];
                    match tap(ox, kx, win.sw, win.pad_left, i.w) {
                        Some(ix) => {
                            let src = &x[(iy * i.w as usize + ix) * ic..][..ic];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d = s as i16 - zp;
                            }
                        }
                        None => dst.fill(0),
                    }
                }
            }
            let out = &mut y[(oy * o.w as usize + ox) * oc..][..oc];
            for (c, v) in out.iter_mut().enumerate() {
                let acc = dot_i16_i8(patch, &a.weights[c * k..(c + 1) * k]);
                let acc = acc.wrapping_add(a.channels.bias(c));
                *v = finish(
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

/// [`Fast`]'s depthwise convolution.
#[inline(always)]
pub(super) fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
    let (i, o, win) = (a.input, a.output, a.window);
    let (kw, ch) = (win.kw as usize, i.c as usize);
    if ch > CHANNEL_CACHE {
        return Reference::depthwise_conv2d(a, x, y);
    }
    let mut chans = [Channel::default(); CHANNEL_CACHE];
    let chans = &mut chans[..ch];
    a.channels.decode_into(chans);
    let zp = a.x_zero_point as i32;
    for oy in 0..o.h as usize {
        for ox in 0..o.w as usize {
            let pixel = (oy * o.w as usize + ox) * ch;
            for c0 in (0..ch).step_by(CHANNEL_BLOCK) {
                let n = CHANNEL_BLOCK.min(ch - c0);
                let mut acc = [0i32; CHANNEL_BLOCK];
                let acc = &mut acc[..n];
                for ky in 0..win.kh as usize {
                    let Some(iy) = tap(oy, ky, win.sh, win.pad_top, i.h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(ix) = tap(ox, kx, win.sw, win.pad_left, i.w) else {
                            continue;
                        };
                        let xs = &x[(iy * i.w as usize + ix) * ch + c0..][..n];
                        let ws = &a.weights[(ky * kw + kx) * ch + c0..][..n];
                        for ((s, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                            *s += (xv as i32 - zp) * wv as i32;
                        }
                    }
                }
                let outs = &mut y[pixel + c0..][..n];
                for ((v, &s), cp) in outs.iter_mut().zip(acc.iter()).zip(&chans[c0..]) {
                    *v = finish(
                        s.wrapping_add(cp.bias),
                        cp.requant,
                        a.rounding,
                        a.y_zero_point,
                        a.clamp,
                    );
                }
            }
        }
    }
}

/// [`Fast`]'s fully connected layer.
#[inline(always)]
pub(super) fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
    // sum (x - zp) * w = sum x * w - zp * sum w: both sums are exact in i32 for validated
    // fan-in, so this equals the reference bit for bit.
    let n = a.input.len();
    let zp = a.x_zero_point as i32;
    for (oc, out) in y.iter_mut().enumerate().take(a.output.c as usize) {
        let w = &a.weights[oc * n..(oc + 1) * n];
        let sum_w: i32 = w.iter().map(|&v| v as i32).sum();
        let acc = dot_i8(x, w) - zp * sum_w;
        let acc = acc.wrapping_add(a.channels.bias(oc));
        *out = finish(
            acc,
            a.channels.requant(oc),
            a.rounding,
            a.y_zero_point,
            a.clamp,
        );
    }
}
