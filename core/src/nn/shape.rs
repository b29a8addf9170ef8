//! Shape rules: what each operator makes of its input, what parameters it stores, and where a
//! tensor lives in the arena. Shared by the file check ([`super::format`]), the model
//! description ([`super::model`]) and the writer; no parsing and no kernels here.

use core::ops::Range;

use super::{OpKind, QParams, Shape, Window};

/// A tensor's shape, quantisation and place in the arena.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo {
    pub shape: Shape,
    pub q: QParams,
    /// Byte offset of the tensor in the arena (the buffer plan).
    pub offset: u32,
    pub(crate) reserved: u8,
}

impl TensorInfo {
    pub fn region(&self) -> Range<usize> {
        self.offset as usize..self.offset as usize + self.shape.len()
    }
}

/// Output shape of `op` on `input`; `out_c` is the declared output channel count (only conv and
/// fully connected choose it). `Err` names what is wrong.
pub fn output_shape(
    op: OpKind,
    input: Shape,
    w: &Window,
    out_c: u16,
) -> Result<Shape, &'static str> {
    let windowed = |w: &Window| -> Result<(u16, u16), &'static str> {
        if w.kh == 0 || w.kw == 0 || w.sh == 0 || w.sw == 0 {
            return Err("zero kernel or stride");
        }
        if w.pad_top >= w.kh || w.pad_bottom >= w.kh || w.pad_left >= w.kw || w.pad_right >= w.kw {
            return Err("padding must be smaller than the kernel");
        }
        w.output_hw(input.h, input.w)
            .ok_or("window larger than the padded input")
    };
    match op {
        OpKind::Conv2d => windowed(w).map(|(h, ww)| Shape::new(h, ww, out_c)),
        OpKind::DepthwiseConv2d | OpKind::MaxPool => {
            windowed(w).map(|(h, ww)| Shape::new(h, ww, input.c))
        }
        OpKind::AvgPool => {
            if !w.is_unpadded() {
                return Err("average pool must be unpadded");
            }
            windowed(w).map(|(h, ww)| Shape::new(h, ww, input.c))
        }
        OpKind::FullyConnected | OpKind::Add | OpKind::PadChannels => {
            if *w != Window::default() {
                return Err("window fields must be zero");
            }
            Ok(match op {
                OpKind::Add => input,
                OpKind::PadChannels if out_c < input.c => {
                    return Err("padding cannot remove channels");
                }
                OpKind::PadChannels => Shape::new(input.h, input.w, out_c),
                _ => Shape::new(1, 1, out_c),
            })
        }
    }
}

/// Bytes of int8 weights and number of channel records `op` stores.
pub fn data_layout(op: OpKind, input: Shape, output: Shape, w: &Window) -> (usize, usize) {
    let taps = w.kh as usize * w.kw as usize;
    match op {
        OpKind::Conv2d => (
            output.c as usize * taps * input.c as usize,
            output.c as usize,
        ),
        OpKind::DepthwiseConv2d => (taps * input.c as usize, input.c as usize),
        OpKind::FullyConnected => (output.c as usize * input.len(), output.c as usize),
        OpKind::AvgPool => (0, 1),
        OpKind::MaxPool | OpKind::Add | OpKind::PadChannels => (0, 0),
    }
}
