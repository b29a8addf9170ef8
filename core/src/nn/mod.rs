//! int8 CNN inference: a checked, zero-copy model file and kernels over caller buffers.
//!
//! - [`format`]: bytes in, a checked [`format::ModelFile`] out (every length, offset and shape
//!   checked once). The 32-byte header it shares with the landmark file is [`crate::container`].
//! - [`shape`]: the shape rules (output shapes, parameter sizes) format and writer share.
//! - [`model`]: the model description ([`model::Model`], [`model::Layer`]) built on the checked file, and
//!   [`model::Model::run`], which walks the
//!   layers over a caller-provided arena following the buffer plan stored in the file.
//! - [`kernels`]: pure functions over slices, a plain [`kernels::Reference`] and the faster
//!   [`kernels::Fast`] and [`kernels::DualMac`] that are tested against it.
//! - `write` (feature `std`): builds model files, including the buffer plan.
//! - `onnx` (feature `tract`): the same model as an ONNX graph of QLinearConv / QDQ ops, run by
//!   tract, for parity tests and host inference.
//!
//! Tensors are NHWC int8 with batch 1. Weights are int8, symmetric, per output channel; biases are
//! int32 with scale `x_scale * w_scale`.

pub mod format;
pub mod kernels;
pub mod model;
#[cfg(feature = "tract")]
pub mod onnx;
#[cfg(feature = "std")]
pub mod random;
pub mod shape;
pub mod splitmix;
#[cfg(feature = "std")]
pub mod write;

/// Height, width and channels of an NHWC tensor (batch is always 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    pub h: u16,
    pub w: u16,
    pub c: u16,
}

impl Shape {
    pub const fn new(h: u16, w: u16, c: u16) -> Self {
        Self { h, w, c }
    }

    /// Number of int8 elements.
    pub const fn len(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Affine int8 quantisation of an activation tensor: `real = (q - zero_point) * scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i8,
}

impl QParams {
    pub fn dequantize(&self, q: i8) -> f32 {
        crate::quant::dequantize(q, self.scale, self.zero_point)
    }

    pub fn quantize(&self, x: f32) -> i8 {
        crate::quant::quantize(x, self.scale, self.zero_point)
    }
}

/// A sliding window: kernel size, stride and explicit padding (top, left, bottom, right).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    pub kh: u8,
    pub kw: u8,
    pub sh: u8,
    pub sw: u8,
    pub pad_top: u8,
    pub pad_left: u8,
    pub pad_bottom: u8,
    pub pad_right: u8,
}

impl Window {
    /// No padding.
    pub const fn valid(kh: u8, kw: u8, sh: u8, sw: u8) -> Self {
        Self {
            kh,
            kw,
            sh,
            sw,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
        }
    }

    /// Half-kernel padding (`k / 2`: what keeps an odd kernel centred) on the sides marked in
    /// `sides` (top, left, bottom, right), none on the others.
    pub const fn half_padded(kh: u8, kw: u8, sh: u8, sw: u8, sides: [bool; 4]) -> Self {
        const fn pad(on: bool, k: u8) -> u8 {
            if on { k / 2 } else { 0 }
        }
        Self {
            kh,
            kw,
            sh,
            sw,
            pad_top: pad(sides[0], kh),
            pad_left: pad(sides[1], kw),
            pad_bottom: pad(sides[2], kh),
            pad_right: pad(sides[3], kw),
        }
    }

    /// ONNX `SAME_UPPER` padding for an input of `h` x `w`: output `ceil(in / stride)`, the odd
    /// pixel of padding at the bottom/right. Returns `None` if a pad would not fit in a `u8`.
    pub fn same(kh: u8, kw: u8, sh: u8, sw: u8, h: u16, w: u16) -> Option<Self> {
        let pads = |k: u8, s: u8, n: u16| -> Option<(u8, u8)> {
            let (k, s, n) = (k as u32, s as u32, n as u32);
            if s == 0 {
                return None;
            }
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(n);
            let before = total / 2;
            Some((
                u8::try_from(before).ok()?,
                u8::try_from(total - before).ok()?,
            ))
        };
        let (pad_top, pad_bottom) = pads(kh, sh, h)?;
        let (pad_left, pad_right) = pads(kw, sw, w)?;
        Some(Self {
            kh,
            kw,
            sh,
            sw,
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
        })
    }

    /// Output size along one axis, or `None` when the window does not fit.
    pub const fn out_len(n: u16, k: u8, s: u8, pad_before: u8, pad_after: u8) -> Option<u16> {
        let padded = n as u32 + pad_before as u32 + pad_after as u32;
        if s == 0 || k == 0 || padded < k as u32 {
            return None;
        }
        let out = (padded - k as u32) / s as u32 + 1;
        if out > u16::MAX as u32 {
            None
        } else {
            Some(out as u16)
        }
    }

    /// Output height and width for an input of `h` x `w`.
    pub const fn output_hw(&self, h: u16, w: u16) -> Option<(u16, u16)> {
        match (
            Self::out_len(h, self.kh, self.sh, self.pad_top, self.pad_bottom),
            Self::out_len(w, self.kw, self.sw, self.pad_left, self.pad_right),
        ) {
            (Some(oh), Some(ow)) => Some((oh, ow)),
            _ => None,
        }
    }

    pub const fn is_unpadded(&self) -> bool {
        self.pad_top == 0 && self.pad_left == 0 && self.pad_bottom == 0 && self.pad_right == 0
    }
}

/// Fused activation as an int8 clamp on the output (ReLU = clamp at the zero point, ReLU6 also
/// at the quantised 6.0). `[-128, 127]` is no activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Clamp {
    pub min: i8,
    pub max: i8,
}

impl Clamp {
    pub const NONE: Self = Self {
        min: i8::MIN,
        max: i8::MAX,
    };

    pub const fn is_none(&self) -> bool {
        self.min == i8::MIN && self.max == i8::MAX
    }

    /// ReLU for an output quantised with `q`.
    pub fn relu(q: QParams) -> Self {
        Self {
            min: q.zero_point,
            max: i8::MAX,
        }
    }

    /// ReLU6 for an output quantised with `q`.
    pub fn relu6(q: QParams) -> Self {
        Self {
            min: q.zero_point,
            max: q.quantize(6.0),
        }
    }
}

/// How an accumulator is rounded to the output grid. tract uses an exact fixed-point product when
/// a layer's combined multiplier is the same for every channel, and an f32 product otherwise; the
/// model file records which, so the two engines agree bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rounding {
    /// `round_ties_even(f32(f32(|acc|) * M)) * sign(acc)`.
    F32Product = 0,
    /// `round_ties_even(|acc| * M) * sign(acc)`, the product taken exactly.
    Exact = 1,
}

/// Operator codes as stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpKind {
    Conv2d = 1,
    DepthwiseConv2d = 2,
    FullyConnected = 3,
    MaxPool = 4,
    AvgPool = 5,
    Add = 6,
    /// Appends channels holding the zero point (real 0.0): BlazeFace's residual channel padding.
    PadChannels = 7,
}

impl OpKind {
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Conv2d,
            2 => Self::DepthwiseConv2d,
            3 => Self::FullyConnected,
            4 => Self::MaxPool,
            5 => Self::AvgPool,
            6 => Self::Add,
            7 => Self::PadChannels,
            _ => return None,
        })
    }

    pub const fn name(&self) -> &'static str {
        match self {
            Self::Conv2d => "conv2d",
            Self::DepthwiseConv2d => "depthwise_conv2d",
            Self::FullyConnected => "fully_connected",
            Self::MaxPool => "max_pool",
            Self::AvgPool => "avg_pool",
            Self::Add => "add",
            Self::PadChannels => "pad_channels",
        }
    }
}
