//! Test support, not part of the API: the case the host kernel tests (`kernels/tests.rs`) and the
//! chip's (`firmware/src/bin/kernel_tests.rs`) run every kernel set on, and the awkward shapes
//! both run first.

use super::args::{AvgPoolArgs, ChannelParams, ConvArgs, Kernels, PoolArgs};
use crate::nn::{Clamp, Rounding, Shape, Window};
use crate::quant::Requant;

/// A convolution-like operator of one kernel set.
pub type ConvKernel = fn(&ConvArgs, &[i8], &mut [i8]);

/// Operator `op` of kernel set `K`: 0 conv, 1 depthwise, 2 (or more) fully connected.
pub fn conv_kernel<K: Kernels>(op: u8) -> ConvKernel {
    match op {
        0 => K::conv2d,
        1 => K::depthwise_conv2d,
        _ => K::fully_connected,
    }
}

/// One convolution-like case: shapes, window and quantisation.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub input: Shape,
    pub window: Window,
    pub out_c: u16,
    pub x_zp: i8,
    pub y_zp: i8,
    pub clamp: Clamp,
    pub rounding: Rounding,
}

impl ConvCase {
    /// Operator `op` (as [`conv_kernel`]) on this case: its arguments, still without weights and
    /// channel parameters, and how many weights it takes; `None` if the window does not fit.
    pub fn conv_args(&self, op: u8) -> Option<(ConvArgs<'static>, usize)> {
        let (oh, ow) = self.window.output_hw(self.input.h, self.input.w)?;
        let patch = self.window.kh as usize * self.window.kw as usize * self.input.c as usize;
        let (output, wlen, window) = match op {
            0 => (
                Shape::new(oh, ow, self.out_c),
                self.out_c as usize * patch,
                self.window,
            ),
            1 => (Shape::new(oh, ow, self.input.c), patch, self.window),
            _ => (
                Shape::new(1, 1, self.out_c),
                self.out_c as usize * self.input.len(),
                Window::default(),
            ),
        };
        let args = ConvArgs {
            input: self.input,
            output,
            window,
            x_zero_point: self.x_zp,
            y_zero_point: self.y_zp,
            clamp: self.clamp,
            rounding: self.rounding,
            weights: &[],
            channels: ChannelParams::new(&[]),
        };
        Some((args, wlen))
    }

    /// Max pool over this case's window; `None` if it does not fit.
    pub fn max_pool_args(&self) -> Option<PoolArgs> {
        let (oh, ow) = self.window.output_hw(self.input.h, self.input.w)?;
        Some(PoolArgs {
            input: self.input,
            output: Shape::new(oh, ow, self.input.c),
            window: self.window,
        })
    }

    /// Average pool over the unpadded window of this case's size and stride, the window sum
    /// scaled by `scale / (kh * kw)`; `None` if the window does not fit.
    pub fn avg_pool_args(&self, scale: f32) -> Option<AvgPoolArgs> {
        let w = self.window;
        let window = Window::valid(w.kh, w.kw, w.sh, w.sw);
        let (oh, ow) = window.output_hw(self.input.h, self.input.w)?;
        Some(AvgPoolArgs {
            input: self.input,
            output: Shape::new(oh, ow, self.input.c),
            window,
            x_zero_point: self.x_zp,
            y_zero_point: self.y_zp,
            clamp: self.clamp,
            rounding: self.rounding,
            requant: Requant::from_f32(scale / (w.kh as f32 * w.kw as f32))?,
        })
    }
}

/// A case on `input` through a `k` x `k` window of stride `s` with half padding on `pads` (top,
/// left, bottom, right) into `out_c` channels; zero points -7 and 3, no clamp.
const fn case(
    input: Shape,
    (k, s, pads): (u8, u8, [bool; 4]),
    out_c: u16,
    rounding: Rounding,
) -> ConvCase {
    ConvCase {
        input,
        window: Window::half_padded(k, k, s, s, pads),
        out_c,
        x_zp: -7,
        y_zp: 3,
        clamp: Clamp::NONE,
        rounding,
    }
}

/// Awkward shapes: 1x1 spatial, odd widths and channels, stride 2 on odd sizes, the patch buffer
/// at its capacity (3x3 over 128 channels) and just over it, 1x1 windows, BlazeFace-like
/// channels (42: not a multiple of 4) with one-sided padding, and the depthwise kernel's channel
/// capacity and just over it (the fallback).
pub const AWKWARD: [ConvCase; 10] = {
    use Rounding::{Exact, F32Product};
    // padded sides (top, left, bottom, right)
    const ALL: [bool; 4] = [true; 4];
    const NONE: [bool; 4] = [false; 4];
    const TOP_BOTTOM: [bool; 4] = [true, false, true, false];
    const BOTTOM_RIGHT: [bool; 4] = [false, false, true, true];
    [
        case(Shape::new(1, 1, 1), (3, 1, ALL), 1, Exact),
        case(Shape::new(7, 7, 3), (3, 2, ALL), 8, Exact),
        case(Shape::new(5, 3, 7), (1, 1, NONE), 9, F32Product),
        case(Shape::new(9, 11, 5), (5, 2, TOP_BOTTOM), 13, Exact),
        case(Shape::new(3, 5, 128), (3, 1, ALL), 6, F32Product),
        case(Shape::new(3, 3, 129), (3, 1, ALL), 5, Exact),
        case(Shape::new(1, 1, 4), (1, 1, NONE), 1, Exact),
        case(Shape::new(7, 9, 42), (3, 2, BOTTOM_RIGHT), 7, F32Product),
        case(Shape::new(3, 4, 256), (3, 1, ALL), 5, F32Product),
        case(Shape::new(3, 4, 257), (3, 1, ALL), 5, F32Product),
    ]
};
