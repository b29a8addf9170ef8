//! The steps every kernel shares around its sums: requantising an accumulator into an int8
//! output (one rounding rule each, [`finish_reference`] and [`finish`]) and a window's taps.

use super::args::{Channel, ConvArgs};
use crate::nn::{Clamp, Rounding};
use crate::quant::Requant;

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
