//! Convolutions over the Cortex-M's dual 16-bit multiply-accumulate, the shape of CMSIS-NN's
//! `arm_nn_mat_mult_kernel_s8_s16`, and a depthwise 3x3 over its halfword multiplies.
//!
//! **Convolution.** Four output pixels' patches are gathered once (im2col, zero point
//! subtracted, i16) into one buffer laid out for `SMLAD`: for every group of four patch elements
//! `x0 x1 x2 x3`, the words `[x0|x2]` and `[x1|x3]` of pixel 0, then the same of pixels 1, 2 and
//! 3. Four int8 weights loaded as one word split with `SXTB16` into `[w0|w2]` and `[w1|w3]`, so
//! each weight word feeds eight `SMLAD`s (16 MACs: 4 pixels x 4 elements), and each patch is
//! reused by every output channel.
//!
//! **Depthwise 3x3.** Four channels at a time: one word of four activations per tap, split by
//! `SXTB16`, against weights expanded to i16 once per layer, through `SMLABB` / `SMLATT`. The
//! zero point is folded into the bias (`sum (x - zp) w = sum x w - zp sum w`), and padded taps
//! read a row of zero-point bytes, so the inner loop has no branch and no subtraction.
//!
//! With the `dsp` feature on ARM the inner loops are [`super::dsp`]'s assembly; elsewhere they
//! are the portable twins in [`super::packed`] (with the operand layouts) with the same
//! arithmetic, so layouts and tails are tested on any host. Integer sums are exact, so the
//! result equals [`super::reference::Reference`] bit for bit. Outputs are finished by the FPU's f32 product
//! ([`OutRange`]) where the layer allows it, else by [`finish`].

use super::args::{CHANNEL_CACHE, Channel, ConvArgs, Kernels};
use super::fast::{self, Fast};
use super::finish::{OutRange, finish, tap};
use super::packed::{DEPTHWISE_CHANNELS, Expanded, PIXELS, QUAD_PATCH_CAPACITY, Quads, slot};

/// Convolution through four-pixel patches, depthwise 3x3 over four channels (other operators as
/// [`Fast`]).
pub struct DualMac;

#[cfg(all(feature = "dsp", target_arch = "arm"))]
#[inline(always)]
fn dot4(quads: &Quads, w: &[i8], groups: usize, acc: [i32; 4]) -> [i32; 4] {
    super::dsp::dot4(quads, w, groups, acc)
}

#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
#[inline(always)]
fn dot4(quads: &Quads, w: &[i8], groups: usize, acc: [i32; 4]) -> [i32; 4] {
    super::packed::dot4_portable(&quads.h, w, groups, acc)
}

/// Writes patch elements `k0..k0 + src.len()` of pixel `p` (zero point subtracted): whole
/// aligned groups straight to their four slots, the rest one by one.
#[inline(always)]
fn put_run(q: &mut Quads, k0: usize, src: &[i8], zp: i8, p: usize) {
    let put = |q: &mut Quads, k: usize, v: i8| {
        if let Some(h) = q.h.get_mut(slot(k, p)) {
            *h = v as i16 - zp as i16;
        }
    };
    let (mut k, mut s) = (k0, src);
    while k % 4 != 0 {
        let Some((&v, rest)) = s.split_first() else {
            return;
        };
        put(q, k, v);
        (k, s) = (k + 1, rest);
    }
    let whole = s.len() / 4;
    widen(s, &mut q.h[(k >> 2) * 16 + p * 4..], whole, zp);
    k += 4 * whole;
    for &v in &s[4 * whole..] {
        put(q, k, v);
        k += 1;
    }
}

#[cfg(all(feature = "dsp", target_arch = "arm"))]
use super::dsp::widen;
#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
use super::packed::widen_portable as widen;

/// Gathers output pixel `pix`'s patch as pixel `p` of the four. A kernel row that lies wholly
/// inside the input is one contiguous run of `kw * in_c` bytes; padded taps copy `zps` (the zero
/// point, so they become 0).
fn gather(a: &ConvArgs, x: &[i8], zps: &[i8], pix: usize, p: usize, q: &mut Quads) {
    let (i, o, win) = (a.input, a.output, a.window);
    let (kh, kw, ic) = (win.kh as usize, win.kw as usize, i.c as usize);
    let (oy, ox) = (pix / o.w as usize, pix % o.w as usize);
    let zp = a.x_zero_point;
    let row = kw * ic;
    let first = tap(ox, 0, win.sw, win.pad_left, i.w);
    let last = tap(ox, kw - 1, win.sw, win.pad_left, i.w);
    for ky in 0..kh {
        let k0 = ky * row;
        match (tap(oy, ky, win.sh, win.pad_top, i.h), first, last) {
            (Some(iy), Some(ix), Some(_)) => {
                let src = &x[(iy * i.w as usize + ix) * ic..][..row];
                put_run(q, k0, src, zp, p);
            }
            (Some(iy), ..) => {
                for kx in 0..kw {
                    let src = match tap(ox, kx, win.sw, win.pad_left, i.w) {
                        Some(ix) => &x[(iy * i.w as usize + ix) * ic..][..ic],
                        None => &zps[..ic],
                    };
                    put_run(q, k0 + kx * ic, src, zp, p);
                }
            }
            (None, ..) => {
                for kx in 0..kw {
                    put_run(q, k0 + kx * ic, &zps[..ic], zp, p);
                }
            }
        }
    }
}

/// Bytes of zero point, the source of a convolution's padded taps: one tap's channels, at most a
/// whole patch.
const ZP_ROW: usize = QUAD_PATCH_CAPACITY;

impl DualMac {
    fn conv2d_quads(
        a: &ConvArgs,
        x: &[i8],
        y: &mut [i8],
        chans: &[Channel],
        byte: impl Fn(i32, &Channel) -> i8,
    ) {
        let k = a.window.kh as usize * a.window.kw as usize * a.input.c as usize;
        // the patch padded with zeros to whole groups: a channel whose weights are followed by
        // at least `kp - k` more bytes (every one but the last few) reads them as whole groups
        // too, since they meet only zeros; the others finish the last `k % 4` one by one
        let (k4, kp) = (k & !3, k.next_multiple_of(4));
        let oc = a.output.c as usize;
        let pixels = a.output.h as usize * a.output.w as usize;
        let mut q = Quads {
            h: [0; PIXELS * QUAD_PATCH_CAPACITY],
        };
        let zps = [a.x_zero_point; ZP_ROW];
        // where the repeated pixels of a last, partial pass write
        let mut spare = [[0i8; CHANNEL_CACHE]; PIXELS - 1];
        for pix in (0..pixels).step_by(PIXELS) {
            // a count that is not a multiple of four repeats the last pixel
            for p in 0..PIXELS {
                gather(a, x, &zps, (pix + p).min(pixels - 1), p, &mut q);
            }
            let n = (pixels - pix).min(PIXELS);
            let mut rows = y[pix * oc..][..n * oc].chunks_exact_mut(oc);
            let mut spares = spare.iter_mut();
            let [o0, o1, o2, o3]: [&mut [i8]; PIXELS] = core::array::from_fn(|_| {
                rows.next()
                    .or_else(|| spares.next().map(|s| &mut s[..oc]))
                    .unwrap_or(&mut [])
            });
            let outs = o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3);
            for (c, (ch, (((y0, y1), y2), y3))) in chans.iter().zip(outs).enumerate() {
                let s = match a.weights.get(c * k..c * k + kp) {
                    Some(w) => dot4(&q, w, kp / 4, [ch.bias; PIXELS]),
                    None => {
                        let w = &a.weights[c * k..][..k];
                        let mut s = dot4(&q, &w[..k4], k / 4, [ch.bias; PIXELS]);
                        for (t, &wv) in w[k4..].iter().enumerate() {
                            for (p, s) in s.iter_mut().enumerate() {
                                let x = q.h[slot(k4 + t, p)] as i32;
                                *s = s.wrapping_add(x * wv as i32);
                            }
                        }
                        s
                    }
                };
                *y0 = byte(s[0], ch);
                *y1 = byte(s[1], ch);
                *y2 = byte(s[2], ch);
                *y3 = byte(s[3], ch);
            }
        }
    }
}

#[cfg(all(feature = "dsp", target_arch = "arm"))]
use super::dsp::Taps;

/// The nine taps of one output pixel, for [`super::packed::depthwise_block_portable`].
#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
struct Taps<'a>([&'a [i8]; 9]);

#[cfg(not(all(feature = "dsp", target_arch = "arm")))]
impl<'a> Taps<'a> {
    fn new(taps: [&'a [i8]; 9]) -> Self {
        Self(taps)
    }

    #[inline(always)]
    fn block(&self, c: usize, e: &Expanded, b: usize, acc: [i32; 4]) -> [i32; 4] {
        super::packed::depthwise_block_portable(&self.0, c, &e.h[36 * b..36 * b + 36], acc)
    }
}

impl DualMac {
    fn depthwise3x3(a: &ConvArgs, x: &[i8], y: &mut [i8], chans: &mut [Channel], out: OutRange) {
        let (i, o, win) = (a.input, a.output, a.window);
        let ch = i.c as usize;
        let blocks = ch / 4;
        let zp = a.x_zero_point as i32;
        let mut e = Expanded {
            h: [0; 9 * DEPTHWISE_CHANNELS],
        };
        for (c, chan) in chans.iter_mut().enumerate() {
            let sum: i32 = (0..9).map(|t| a.weights[t * ch + c] as i32).sum();
            chan.bias = chan.bias.wrapping_sub(zp * sum);
        }
        for b in 0..blocks {
            for t in 0..9 {
                let w = &a.weights[t * ch + 4 * b..][..4];
                let d = &mut e.h[(b * 9 + t) * 4..][..4];
                d.copy_from_slice(&[w[0], w[2], w[1], w[3]].map(i16::from));
            }
        }
        let zps = [a.x_zero_point; DEPTHWISE_CHANNELS];
        let zps = &zps[..ch];
        for oy in 0..o.h as usize {
            let rows = [0, 1, 2].map(|ky| tap(oy, ky, win.sh, win.pad_top, i.h));
            for ox in 0..o.w as usize {
                let cols = [0, 1, 2].map(|kx| tap(ox, kx, win.sw, win.pad_left, i.w));
                let taps: [&[i8]; 9] = core::array::from_fn(|t| match (rows[t / 3], cols[t % 3]) {
                    (Some(iy), Some(ix)) => &x[(iy * i.w as usize + ix) * ch..][..ch],
                    _ => zps,
                });
                let outs = &mut y[(oy * o.w as usize + ox) * ch..][..ch];
                for c in 4 * blocks..ch {
                    let s = (0..9).fold(chans[c].bias, |s, t| {
                        s.wrapping_add(taps[t][c] as i32 * a.weights[t * ch + c] as i32)
                    });
                    outs[c] = out.byte(s, chans[c].m);
                }
                let taps = Taps::new(taps);
                let blocks = chans.chunks_exact(4).zip(outs.chunks_exact_mut(4));
                for (b, (cs, os)) in blocks.enumerate() {
                    let s = taps.block(
                        4 * b,
                        &e,
                        b,
                        [cs[0].bias, cs[1].bias, cs[2].bias, cs[3].bias],
                    );
                    for ((o, s), c) in os.iter_mut().zip(s).zip(cs) {
                        *o = out.byte(s, c.m);
                    }
                }
            }
        }
    }
}

impl Kernels for DualMac {
    fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let k = a.window.kh as usize * a.window.kw as usize * a.input.c as usize;
        let oc = a.output.c as usize;
        if k > QUAD_PATCH_CAPACITY || oc > CHANNEL_CACHE {
            return Fast::conv2d(a, x, y);
        }
        let mut chans = [Channel::default(); CHANNEL_CACHE];
        let chans = &mut chans[..oc];
        a.channels.decode_into(chans);
        match OutRange::f32_product(a, chans) {
            Some(out) => Self::conv2d_quads(a, x, y, chans, |s, ch| out.byte(s, ch.m)),
            None => Self::conv2d_quads(a, x, y, chans, |s, ch| {
                finish(s, ch.requant, a.rounding, a.y_zero_point, a.clamp)
            }),
        }
    }

    fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        let (win, ch) = (a.window, a.input.c as usize);
        if win.kh != 3 || win.kw != 3 || ch > DEPTHWISE_CHANNELS {
            return Fast::depthwise_conv2d(a, x, y);
        }
        let mut chans = [Channel::default(); DEPTHWISE_CHANNELS];
        let chans = &mut chans[..ch];
        a.channels.decode_into(chans);
        match OutRange::f32_product(a, chans) {
            Some(out) => Self::depthwise3x3(a, x, y, chans, out),
            None => Fast::depthwise_conv2d(a, x, y),
        }
    }

    fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        Fast::fully_connected(a, x, y)
    }

    fast::pools_add_and_pad!();
}
