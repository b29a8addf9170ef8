//! Kernels: pure functions over NHWC int8 slices. They never see the file format.
//!
//! [`Reference`] is the plain scalar definition of every operator; [`Fast`] (portable) and
//! [`DualMac`] (convolutions over CMSIS-NN-style four-pixel patches and a four-channel depthwise
//! 3x3, in assembly on the Cortex-M) are what inference uses ([`Inference`]), tested against it
//! over the awkward shapes of `cases::AWKWARD` and random ones (the tests below, and the same
//! cases in QEMU: `firmware/src/bin/kernel_tests.rs`). Both assume arguments that
//! [`crate::nn::Model`] has validated: slice lengths match the shapes, windows fit, and fan-in is
//! small enough that no i32 sum overflows.

// Index loops mirror the tensor formulas and read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

#[doc(hidden)]
pub mod cases;
#[cfg(all(feature = "dsp", target_arch = "arm"))]
mod dsp;
mod dual;
mod fast;
mod packed;
mod reference;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

pub use dual::DualMac;
pub use fast::Fast;
pub use packed::{
    DEPTHWISE_CHANNELS, QUAD_PATCH_CAPACITY, depthwise_block_portable, dot4_portable,
};
pub use reference::Reference;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub use x86::{Host, Level};

/// The kernels [`crate::nn::Model::run`] uses: [`DualMac`] (convolutions on the DSP extension's
/// dual multiply-accumulate) with the `dsp` feature on ARM, [`Fast`] elsewhere.
#[cfg(all(feature = "dsp", target_arch = "arm"))]
pub type Inference = DualMac;
/// The kernels [`crate::nn::Model::run`] uses: [`Host`] (AVX2 / AVX-512 picked at run time) on
/// x86_64 with `std`.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub type Inference = Host;
/// The kernels [`crate::nn::Model::run`] uses: [`Fast`] where nothing more specific applies.
#[cfg(not(any(
    all(feature = "dsp", target_arch = "arm"),
    all(feature = "std", target_arch = "x86_64")
)))]
pub type Inference = Fast;

use super::{Clamp, QParams, Rounding, Shape, Window};
use crate::quant::Requant;

/// Per-output-channel parameters: 16-byte little-endian records of
/// `bias: i32, w_scale: f32, requant mantissa: u32, requant exponent: i32`.
#[derive(Clone, Copy, Debug)]
pub struct ChannelParams<'a> {
    bytes: &'a [u8],
}

/// Size of one [`ChannelParams`] record.
pub const CHANNEL_RECORD: usize = 16;

impl<'a> ChannelParams<'a> {
    /// `bytes.len()` must be a multiple of [`CHANNEL_RECORD`]; extra bytes are ignored.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub const fn len(&self) -> usize {
        self.bytes.len() / CHANNEL_RECORD
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn word(&self, channel: usize, k: usize) -> [u8; 4] {
        let at = channel * CHANNEL_RECORD + 4 * k;
        match self.bytes.get(at..at + 4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => [0; 4],
        }
    }

    pub fn bias(&self, channel: usize) -> i32 {
        i32::from_le_bytes(self.word(channel, 0))
    }

    pub fn w_scale(&self, channel: usize) -> f32 {
        f32::from_le_bytes(self.word(channel, 1))
    }

    pub fn requant(&self, channel: usize) -> Requant {
        Requant {
            mantissa: u32::from_le_bytes(self.word(channel, 2)),
            exponent: i32::from_le_bytes(self.word(channel, 3)),
        }
    }

    /// One channel's record, as [`ChannelParams`] reads it (for writers and tests).
    pub fn record(bias: i32, w_scale: f32, requant: Requant) -> [u8; CHANNEL_RECORD] {
        let mut r = [0; CHANNEL_RECORD];
        r[0..4].copy_from_slice(&bias.to_le_bytes());
        r[4..8].copy_from_slice(&w_scale.to_le_bytes());
        r[8..12].copy_from_slice(&requant.mantissa.to_le_bytes());
        r[12..16].copy_from_slice(&requant.exponent.to_le_bytes());
        r
    }
}

/// One output channel's bias and requantiser, decoded once per layer call by the fast kernels
/// (instead of from the record bytes for every output).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Channel {
    pub bias: i32,
    pub requant: Requant,
    /// The multiplier as a normal f32 for [`OutRange::byte`]; 0 where it has none.
    pub m: f32,
}

/// Most output channels whose parameters the fast kernels decode onto the stack (8 KiB); layers
/// with more run the reference kernel.
pub const CHANNEL_CACHE: usize = 512;

impl ChannelParams<'_> {
    /// Decodes the first `out.len()` channels.
    pub(crate) fn decode_into(&self, out: &mut [Channel]) {
        for (c, ch) in out.iter_mut().enumerate() {
            let requant = self.requant(c);
            *ch = Channel {
                bias: self.bias(c),
                requant,
                m: requant.normal_f32().unwrap_or(0.0),
            };
        }
    }
}

/// A layer's output clamp with its zero point taken off, for the f32-product rule without a
/// range test ([`crate::quant::round_product_f32`]): `clamp(r, min - zp, max - zp) + zp` equals
/// `clamp(r + zp, min, max)` for any `r` of the right sign, and never overflows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutRange {
    lo: i32,
    hi: i32,
    zp: i32,
}

impl OutRange {
    /// The output range of a layer with output zero point `zp` and `clamp`.
    pub(crate) fn new(zp: i8, clamp: Clamp) -> Self {
        Self {
            lo: clamp.min as i32 - zp as i32,
            hi: clamp.max as i32 - zp as i32,
            zp: zp as i32,
        }
    }

    /// `None` unless the layer rounds by the f32 product and every channel's multiplier is a
    /// normal f32: then [`OutRange::byte`] gives [`finish_reference`]'s byte.
    pub(crate) fn f32_product(a: &ConvArgs, chans: &[Channel]) -> Option<Self> {
        let normal = chans.iter().all(|c| c.m != 0.0);
        (a.rounding == Rounding::F32Product && normal).then(|| Self::new(a.y_zero_point, a.clamp))
    }

    /// Accumulator to output byte, for a channel with multiplier `m`.
    #[inline(always)]
    pub(crate) fn byte(&self, acc: i32, m: f32) -> i8 {
        self.round(acc as f32 * m)
    }

    /// An f32 result to output byte: rounded ties to even
    /// ([`crate::quant::round_f32_unchecked`]), clamped, zero point added.
    #[inline(always)]
    pub(crate) fn round(&self, v: f32) -> i8 {
        (crate::quant::round_f32_unchecked(v).clamp(self.lo, self.hi) + self.zp) as i8
    }
}

/// Conv2d, depthwise conv and fully connected layers.
///
/// Weight layouts: conv `[out_c][kh][kw][in_c]`, depthwise `[kh][kw][c]`, fully connected
/// `[out_c][in_h][in_w][in_c]` (the input flattened in NHWC order).
#[derive(Clone, Copy, Debug)]
pub struct ConvArgs<'a> {
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
    pub x_zero_point: i8,
    pub y_zero_point: i8,
    pub clamp: Clamp,
    pub rounding: Rounding,
    pub weights: &'a [i8],
    pub channels: ChannelParams<'a>,
}

/// Max pool: output quantisation equals the input's; padded taps are ignored.
#[derive(Clone, Copy, Debug)]
pub struct PoolArgs {
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
}

/// Average pool over unpadded windows: the sum of `x - x_zp` over `kh * kw` taps, requantised
/// with `M = x_scale * (1 / (kh * kw)) / y_scale`.
#[derive(Clone, Copy, Debug)]
pub struct AvgPoolArgs {
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
    pub x_zero_point: i8,
    pub y_zero_point: i8,
    pub clamp: Clamp,
    pub rounding: Rounding,
    pub requant: Requant,
}

/// Elementwise add of two tensors of the same shape, each with its own quantisation.
#[derive(Clone, Copy, Debug)]
pub struct AddArgs {
    pub a: QParams,
    pub b: QParams,
    pub y: QParams,
    pub clamp: Clamp,
}

/// Channel padding: copy `input.c` channels per pixel, fill the rest with the zero point.
#[derive(Clone, Copy, Debug)]
pub struct PadArgs {
    pub input: Shape,
    pub output: Shape,
    pub zero_point: i8,
}

/// The operator set. Every implementation must give identical output for identical input.
pub trait Kernels {
    fn conv2d(args: &ConvArgs, x: &[i8], y: &mut [i8]);
    fn depthwise_conv2d(args: &ConvArgs, x: &[i8], y: &mut [i8]);
    fn fully_connected(args: &ConvArgs, x: &[i8], y: &mut [i8]);
    fn max_pool(args: &PoolArgs, x: &[i8], y: &mut [i8]);
    fn avg_pool(args: &AvgPoolArgs, x: &[i8], y: &mut [i8]);
    fn add(args: &AddArgs, a: &[i8], b: &[i8], y: &mut [i8]);
    fn pad_channels(args: &PadArgs, x: &[i8], y: &mut [i8]);
}

/// Accumulator to output, by the definition: requantise ([`Requant::apply`] or
/// [`Requant::apply_exact`]), add the output zero point, clamp (saturate + activation).
#[inline]
pub(crate) fn finish_reference(
    acc: i32,
    requant: Requant,
    rounding: Rounding,
    y_zp: i8,
    clamp: Clamp,
) -> i8 {
    let scaled = match rounding {
        Rounding::F32Product => requant.apply(acc),
        Rounding::Exact => requant.apply_exact(acc),
    };
    let v = scaled.saturating_add(y_zp as i32);
    v.clamp(clamp.min as i32, clamp.max as i32) as i8
}

/// [`finish_reference`] for the fast kernels: the same byte, through the narrow rules.
#[inline(always)]
pub(crate) fn finish(acc: i32, requant: Requant, rounding: Rounding, y_zp: i8, clamp: Clamp) -> i8 {
    // the narrow rules give the same byte as `apply` / `apply_exact` (see their tests); where
    // there is a hardware FPU the f32-product rule is the FPU's own product
    let scaled = match rounding {
        #[cfg(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64"))]
        Rounding::F32Product => requant.apply_narrow_fpu(acc),
        #[cfg(not(any(target_abi = "eabihf", target_arch = "x86_64", target_arch = "aarch64")))]
        Rounding::F32Product => requant.apply_narrow(acc),
        Rounding::Exact => requant.apply_exact_narrow(acc),
    };
    let v = scaled.saturating_add(y_zp as i32);
    v.clamp(clamp.min as i32, clamp.max as i32) as i8
}

/// Input coordinate of window tap `k` for output position `o`, or `None` in the padding.
#[inline]
pub(crate) fn tap(o: usize, k: usize, stride: u8, pad_before: u8, n: u16) -> Option<usize> {
    let i = (o * stride as usize + k).checked_sub(pad_before as usize)?;
    (i < n as usize).then_some(i)
}

#[cfg(test)]
mod tests;
