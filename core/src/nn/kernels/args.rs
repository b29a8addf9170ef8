//! What a kernel is given and what every kernel set implements: the argument structs over
//! caller slices, the per-channel parameter records, and the [`Kernels`] trait.

use crate::nn::{Clamp, QParams, Rounding, Shape, Window};
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
