//! Convolution as pairs of output pixels over a dual 16-bit multiply-accumulate, the shape of
//! CMSIS-NN's `arm_nn_mat_mult_kernel_s8_s16`.
//!
//! Two output pixels' patches are gathered once (im2col, zero point subtracted, i16) into one
//! buffer laid out for the Cortex-M's `SMLAD`: for every group of four patch elements
//! `x0 x1 x2 x3`, the words `[x0|x2]` and `[x1|x3]` of pixel 0, then the same of pixel 1. Four
//! int8 weights loaded as one word split with `SXTB16` into `[w0|w2]` and `[w1|w3]`, so each
//! weight word feeds four `SMLAD`s (8 MACs: 2 pixels x 4 elements), and each patch is reused by
//! every output channel. With the `dsp` feature on ARM the inner loop is [`super::dsp`]'s
//! assembly; elsewhere it is the portable [`dot2_portable`], with the same arithmetic, so the
//! layout and tails are tested on any host. Integer sums are exact, so the result equals
//! [`super::Reference`] bit for bit.

use super::{CHANNEL_CACHE, Channel, ConvArgs, Fast, Kernels, finish, tap};

/// Convolution through paired pixels (other operators as [`Fast`]).
pub struct DualMac;

/// Largest patch (`kh * kw * in_c`) handled here; larger ones go to [`Fast`]. 3x3 over 128
/// channels; the paired buffer is 2 x 1152 i16 (4.5 KiB of stack).
pub const PAIR_CAPACITY: usize = 1152;

/// The two pixels' patches in `SMLAD` order (see the module docs), 4-byte aligned so the
/// assembly may load it as words.
#[repr(C, align(4))]
pub(crate) struct Pairs {
    pub(crate) h: [i16; 2 * PAIR_CAPACITY],
}

/// Position in [`Pairs::h`] of patch element `k` (below the last whole group) of pixel `p`.
#[inline(always)]
fn slot(k: usize, p: usize) -> usize {
    (k >> 2) * 8 + p * 4 + (k & 1) * 2 + ((k >> 1) & 1)
}

/// The portable twin of the assembly: `(acc0 + sum x0 * w, acc1 + sum x1 * w)` over the first
/// `groups` groups of four, read from the [`Pairs`] layout.
pub fn dot2_portable(h: &[i16], w: &[i8], groups: usize, acc: (i32, i32)) -> (i32, i32) {
    let (mut a0, mut a1) = acc;
    for (hs, ws) in h.chunks_exact(8).zip(w.chunks_exact(4)).take(groups) {
        let [w0, w1, w2, w3] = [ws[0], ws[1], ws[2], ws[3]].map(|v| v as i32);
        // [x0|x2] [x1|x3] per pixel
        a0 += hs[0] as i32 * w0 + hs[1] as i32 * w2 + hs[2] as i32 * w1 + hs[3] as i32 * w3;
        a1 += hs[4] as i32 * w0 + hs[5] as i32 * w2 + hs[6] as i32 * w1 + hs[7] as i32 * w3;
    }
    (a0, a1)
}

#[cfg(all(feature = "dsp", target_arch = "arm"))]
#[inline(always)]
fn dot2(pairs: &Pairs, w: &[i8], groups: usize, acc: (i32, i32)) -> (i32, i32) {
    super::dsp::dot2(pairs, w, groups, acc)
}

#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
#[inline(always)]
fn dot2(pairs: &Pairs, w: &[i8], groups: usize, acc: (i32, i32)) -> (i32, i32) {
    dot2_portable(&pairs.h, w, groups, acc)
}

/// Gathers output pixel `pix`'s patch as pixel `p` of the pair: whole groups into `pairs`, the
/// last `k % 4` elements into `tail`.
fn gather(a: &ConvArgs, x: &[i8], pix: usize, p: usize, pairs: &mut Pairs, tail: &mut [i16; 3]) {
    let (i, o, win) = (a.input, a.output, a.window);
    let (kh, kw, ic) = (win.kh as usize, win.kw as usize, i.c as usize);
    let (oy, ox) = (pix / o.w as usize, pix % o.w as usize);
    let k4 = (kh * kw * ic) & !3;
    let zp = a.x_zero_point as i16;
    let put = |pairs: &mut Pairs, tail: &mut [i16; 3], k: usize, v: i16| {
        if k < k4 {
            pairs.h[slot(k, p)] = v;
        } else {
            tail[k - k4] = v;
        }
    };
    for ky in 0..kh {
        let iy = tap(oy, ky, win.sh, win.pad_top, i.h);
        for kx in 0..kw {
            let k0 = (ky * kw + kx) * ic;
            let ix = tap(ox, kx, win.sw, win.pad_left, i.w);
            match (iy, ix) {
                (Some(iy), Some(ix)) => {
                    let src = &x[(iy * i.w as usize + ix) * ic..][..ic];
                    if k0 % 4 == 0 && k0 + ic <= k4 {
                        // whole groups: four elements to their four slots
                        let g0 = (k0 >> 2) * 8 + p * 4;
                        for (g, s) in src.chunks_exact(4).enumerate() {
                            let d = &mut pairs.h[g0 + 8 * g..][..4];
                            d[0] = s[0] as i16 - zp;
                            d[1] = s[2] as i16 - zp;
                            d[2] = s[1] as i16 - zp;
                            d[3] = s[3] as i16 - zp;
                        }
                        for (e, &s) in src.iter().enumerate().skip(ic & !3) {
                            put(pairs, tail, k0 + e, s as i16 - zp);
                        }
                    } else {
                        for (e, &s) in src.iter().enumerate() {
                            put(pairs, tail, k0 + e, s as i16 - zp);
                        }
                    }
                }
                _ => {
                    for e in 0..ic {
                        put(pairs, tail, k0 + e, 0);
                    }
                }
            }
        }
    }
}

impl DualMac {
    fn conv2d_pairs(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let (o, win) = (a.output, a.window);
        let k = win.kh as usize * win.kw as usize * a.input.c as usize;
        let (k4, groups) = (k & !3, k / 4);
        let oc = o.c as usize;
        let pixels = o.h as usize * o.w as usize;
        let mut pairs = Pairs {
            h: [0; 2 * PAIR_CAPACITY],
        };
        let mut tails = [[0i16; 3]; 2];
        let mut chans = [Channel::default(); CHANNEL_CACHE];
        let chans = &mut chans[..oc];
        a.channels.decode_into(chans);
        let mut pix = 0;
        while pix < pixels {
            // the last pixel of an odd count is paired with itself
            let p1 = if pix + 1 < pixels { pix + 1 } else { pix };
            gather(a, x, pix, 0, &mut pairs, &mut tails[0]);
            gather(a, x, p1, 1, &mut pairs, &mut tails[1]);
            for (c, (w, ch)) in a.weights.chunks_exact(k).zip(chans.iter()).enumerate() {
                let (mut s0, mut s1) = dot2(&pairs, &w[..k4], groups, (ch.bias, ch.bias));
                for (t, &wv) in w[k4..].iter().enumerate() {
                    s0 += tails[0][t] as i32 * wv as i32;
                    s1 += tails[1][t] as i32 * wv as i32;
                }
                y[pix * oc + c] = finish(s0, ch.requant, a.rounding, a.y_zero_point, a.clamp);
                y[p1 * oc + c] = finish(s1, ch.requant, a.rounding, a.y_zero_point, a.clamp);
            }
            pix += 2;
        }
    }
}

impl Kernels for DualMac {
    fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let k = a.window.kh as usize * a.window.kw as usize * a.input.c as usize;
        if k > PAIR_CAPACITY || a.output.c as usize > CHANNEL_CACHE {
            return Fast::conv2d(a, x, y);
        }
        Self::conv2d_pairs(a, x, y)
    }

    fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        // measured: a four-channel register loop cost 28 instructions per MAC in QEMU against
        // Fast's 23 (its 64-channel blocks amortise each tap's set-up); kept for now
        Fast::depthwise_conv2d(a, x, y)
    }

    fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        Fast::fully_connected(a, x, y)
    }

    fn max_pool(a: &super::PoolArgs, x: &[i8], y: &mut [i8]) {
        Fast::max_pool(a, x, y)
    }

    fn avg_pool(a: &super::AvgPoolArgs, x: &[i8], y: &mut [i8]) {
        Fast::avg_pool(a, x, y)
    }

    fn add(a: &super::AddArgs, xa: &[i8], xb: &[i8], y: &mut [i8]) {
        Fast::add(a, xa, xb, y)
    }

    fn pad_channels(a: &super::PadArgs, x: &[i8], y: &mut [i8]) {
        Fast::pad_channels(a, x, y)
    }
}
