//! The int8 model file: flat, versioned, little-endian, checked once, read in place.
//!
//! ```text
//! header (32 bytes: the shared [`crate::container`] header, then these fields)
//!   0  magic "FGI8"          4  version u16 = 1      6  header_len u16 = 32
//!   8  payload_len u32      12  payload CRC-32 (IEEE) u32
//!  16  tensor_count u16     18  layer_count u16     20  output_count u16    22  input tensor u16
//!  24  arena_len u32        28  data_len u32
//! payload
//!   tensors  tensor_count x 16: h u16, w u16, c u16, zero_point i8, 0 u8, scale f32, arena offset u32
//!   outputs  output_count x u16 tensor ids, zero-padded to a multiple of 4 bytes
//!   layers   layer_count x 32:
//!              0 op u8, rounding u8, input0 u16, input1 u16 (0xffff: none), output u16,
//!              8 kh, kw, sh, sw u8, 12 pad top, left, bottom, right u8,
//!             16 clamp min i8, clamp max i8, 0 u16, 20 data offset u32, 24 data len u32, 28 0 u32
//!   data     data_len bytes: per layer, int8 weights (padded to 4) then 16-byte channel records
//! ```
//!
//! [`parse`] validates every count, offset, length, shape, quantisation parameter and the buffer
//! plan (no live tensor overlaps the one being written) and returns a [`ModelFile`]; after that
//! every accessor on [`super::model::Model`], which is built on it, is infallible and every kernel
//! argument is consistent. Shape rules come from [`super::shape`]; this module only reads.

use super::kernels::{CHANNEL_RECORD, ChannelParams};
use super::shape::{self, TensorInfo};
use super::{Clamp, OpKind, QParams, Rounding, Shape, Window};
use crate::container::{self, check_header, u8_at, u16_at, u32_at};
use crate::quant::Requant;

pub use crate::container::HEADER_LEN;

/// The int8 model file's magic and format version (in the [`crate::container`] header).
pub const MAGIC: [u8; 4] = *b"FGI8";
pub const VERSION: u16 = 1;
/// Bytes of one tensor record and of one layer record.
pub const TENSOR_RECORD: usize = 16;
pub const LAYER_RECORD: usize = 32;
/// Marks an unused input slot in a layer record.
pub const NO_TENSOR: u16 = 0xffff;
/// Most tensors, layers and outputs a file may declare.
pub const MAX_TENSORS: usize = 4096;
pub const MAX_LAYERS: usize = 4096;
pub const MAX_OUTPUTS: usize = 16;
/// Largest number of products summed into one accumulator. `255 * 128 * 2^15 < 2^31`, so no
/// sum can overflow an i32.
pub const MAX_FAN_IN: usize = 1 << 15;
/// Largest bias magnitude; with [`MAX_FAN_IN`] the accumulator stays inside i32.
pub const MAX_BIAS: i32 = 1 << 30;

/// Why a model file was rejected. Small and `Copy`, so it works without an allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FormatError {
    /// Fewer bytes than a header.
    TooShort,
    BadMagic,
    UnsupportedVersion(u16),
    BadHeaderLength(u16),
    /// The header's payload length does not match the bytes given.
    LengthMismatch {
        declared: u32,
        actual: u32,
    },
    ChecksumMismatch {
        declared: u32,
        actual: u32,
    },
    /// A count is zero where it must not be, or above its limit.
    BadCount(&'static str),
    /// The sections do not add up to the payload length.
    BadLayout,
    BadTensor {
        index: u16,
        reason: &'static str,
    },
    BadLayer {
        index: u16,
        reason: &'static str,
    },
    BadOutput {
        index: u16,
    },
    /// The buffer plan lets layer `layer` overwrite a tensor that is still needed.
    BadPlan {
        layer: u16,
        tensor: u16,
    },
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "file is shorter than the {HEADER_LEN}-byte header"),
            Self::BadMagic => write!(f, "not a facegender int8 model (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Self::BadHeaderLength(v) => write!(f, "bad header length {v}"),
            Self::LengthMismatch { declared, actual } => {
                write!(
                    f,
                    "payload is {actual} bytes but the header says {declared} (truncated?)"
                )
            }
            Self::ChecksumMismatch { declared, actual } => {
                write!(
                    f,
                    "checksum mismatch: header {declared:#010x}, payload {actual:#010x}"
                )
            }
            Self::BadCount(what) => write!(f, "bad {what} count"),
            Self::BadLayout => write!(f, "sections do not add up to the payload length"),
            Self::BadTensor { index, reason } => write!(f, "tensor {index}: {reason}"),
            Self::BadLayer { index, reason } => write!(f, "layer {index}: {reason}"),
            Self::BadOutput { index } => write!(f, "output {index} names no produced tensor"),
            Self::BadPlan { layer, tensor } => {
                write!(
                    f,
                    "buffer plan: layer {layer} overwrites live tensor {tensor}"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}

/// The fixed header fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub tensor_count: u16,
    pub layer_count: u16,
    pub output_count: u16,
    pub input: u16,
    pub arena_len: u32,
    pub data_len: u32,
}

/// Byte offsets of the payload sections within the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sections {
    pub tensors: usize,
    pub outputs: usize,
    pub layers: usize,
    pub data: usize,
}

/// One layer record, decoded but not yet interpreted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerRecord {
    pub op: u8,
    pub rounding: u8,
    pub inputs: [u16; 2],
    pub output: u16,
    pub window: Window,
    pub clamp: Clamp,
    pub reserved: u32,
    pub data_offset: u32,
    pub data_len: u32,
}

/// A model file that [`parse`] has checked completely: the records, read in place. The model
/// description ([`super::model::Model`]) is built on it.
#[derive(Clone, Copy, Debug)]
pub struct ModelFile<'a> {
    bytes: &'a [u8],
    header: Header,
    sections: Sections,
}

impl<'a> ModelFile<'a> {
    /// The file bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// Tensor record `i`. Panics if `i >= tensor_count`.
    pub(crate) fn tensor(&self, i: u16) -> TensorInfo {
        assert!(i < self.header.tensor_count, "tensor index out of range");
        let (b, at) = (
            self.bytes,
            self.sections.tensors + i as usize * TENSOR_RECORD,
        );
        TensorInfo {
            shape: Shape::new(u16_at(b, at), u16_at(b, at + 2), u16_at(b, at + 4)),
            q: QParams {
                zero_point: u8_at(b, at + 6) as i8,
                scale: f32::from_bits(u32_at(b, at + 8)),
            },
            offset: u32_at(b, at + 12),
            reserved: u8_at(b, at + 7),
        }
    }

    pub(crate) fn layer_record(&self, i: u16) -> LayerRecord {
        let (b, at) = (self.bytes, self.sections.layers + i as usize * LAYER_RECORD);
        let byte = |k: usize| u8_at(b, at + k);
        LayerRecord {
            op: byte(0),
            rounding: byte(1),
            inputs: [u16_at(b, at + 2), u16_at(b, at + 4)],
            output: u16_at(b, at + 6),
            window: Window {
                kh: byte(8),
                kw: byte(9),
                sh: byte(10),
                sw: byte(11),
                pad_top: byte(12),
                pad_left: byte(13),
                pad_bottom: byte(14),
                pad_right: byte(15),
            },
            clamp: Clamp {
                min: byte(16) as i8,
                max: byte(17) as i8,
            },
            reserved: u16_at(b, at + 18) as u32 | u32_at(b, at + 28),
            data_offset: u32_at(b, at + 20),
            data_len: u32_at(b, at + 24),
        }
    }

    /// Tensor id of output `k`. Panics if `k >= output_count`.
    pub(crate) fn output_id(&self, k: u16) -> u16 {
        assert!(k < self.header.output_count, "output index out of range");
        u16_at(self.bytes, self.sections.outputs + 2 * k as usize)
    }

    /// `len` bytes of the data section from `offset` (empty if out of bounds).
    pub(crate) fn data(&self, offset: u32, len: u32) -> &'a [u8] {
        let start = self.sections.data + offset as usize;
        self.bytes.get(start..start + len as usize).unwrap_or(&[])
    }
}

/// Checks `bytes` completely and returns the checked view over them.
pub fn parse(bytes: &[u8]) -> Result<ModelFile<'_>, FormatError> {
    parse_as(bytes)
}

/// [`parse`], handing the checked view to what is built on it (`V::from`), so that
/// [`super::model::Model::parse`] returns this result as it is, with no second wrapping.
pub(crate) fn parse_as<'a, V: From<ModelFile<'a>>>(bytes: &'a [u8]) -> Result<V, FormatError> {
    check_header!(bytes, MAGIC, VERSION, core::convert::identity);
    let header = Header {
        tensor_count: u16_at(bytes, 16),
        layer_count: u16_at(bytes, 18),
        output_count: u16_at(bytes, 20),
        input: u16_at(bytes, 22),
        arena_len: u32_at(bytes, 24),
        data_len: u32_at(bytes, 28),
    };
    let counts = [
        (header.tensor_count as usize, MAX_TENSORS, "tensor"),
        (header.layer_count as usize, MAX_LAYERS, "layer"),
        (header.output_count as usize, MAX_OUTPUTS, "output"),
    ];
    for (n, max, what) in counts {
        if n == 0 || n > max {
            return Err(FormatError::BadCount(what));
        }
    }
    // Section sizes are small (counts are bounded), so usize arithmetic cannot overflow.
    let tensors = HEADER_LEN;
    let outputs = tensors + header.tensor_count as usize * TENSOR_RECORD;
    let layers = outputs + (2 * header.output_count as usize).next_multiple_of(4);
    let data = layers + header.layer_count as usize * LAYER_RECORD;
    if data.checked_add(header.data_len as usize) != Some(bytes.len()) {
        return Err(FormatError::BadLayout);
    }
    let sections = Sections {
        tensors,
        outputs,
        layers,
        data,
    };
    let file = ModelFile {
        bytes,
        header,
        sections,
    };
    validate(&file)?;
    Ok(V::from(file))
}

/// Reads the planned arena size from a header at compile time, without validating the file
/// (firmware: `static mut ARENA: [u8; arena_len_of(MODEL)]`; [`super::model::Model::run`] still checks).
/// Returns 0 when `bytes` is not a model header.
pub const fn arena_len_of(bytes: &[u8]) -> usize {
    if bytes.len() < HEADER_LEN || !container::has_magic(bytes, MAGIC) {
        return 0;
    }
    u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]) as usize
}

fn validate(m: &ModelFile<'_>) -> Result<(), FormatError> {
    let h = m.header();
    for t in 0..h.tensor_count {
        validate_tensor(m, t)?;
    }
    if h.input >= h.tensor_count {
        return Err(FormatError::BadCount("input tensor"));
    }
    for i in 0..h.layer_count {
        validate_layer(m, i)?;
    }
    for k in 0..h.output_count {
        let id = m.output_id(k);
        if id >= h.tensor_count || producer(m, id).is_none() {
            return Err(FormatError::BadOutput { index: k });
        }
    }
    validate_plan(m)
}

fn validate_tensor(m: &ModelFile<'_>, index: u16) -> Result<(), FormatError> {
    let t = m.tensor(index);
    let bad = |reason| Err(FormatError::BadTensor { index, reason });
    if t.shape.h == 0 || t.shape.w == 0 || t.shape.c == 0 {
        return bad("empty shape");
    }
    if !(t.q.scale.is_finite() && t.q.scale > 0.0) {
        return bad("scale must be finite and positive");
    }
    if t.reserved != 0 {
        return bad("reserved byte is not zero");
    }
    // h * w * c < 2^48: no overflow on 32-bit targets only if it also fits the arena.
    let end = t.offset as u64 + t.shape.len() as u64;
    if end > m.header().arena_len as u64 {
        return bad("does not fit in the arena");
    }
    Ok(())
}

/// Index of the layer that writes tensor `t`, if any.
fn producer(m: &ModelFile<'_>, t: u16) -> Option<u16> {
    (0..m.header().layer_count).find(|&i| m.layer_record(i).output == t)
}

fn validate_layer(m: &ModelFile<'_>, index: u16) -> Result<(), FormatError> {
    let r = m.layer_record(index);
    let bad = |reason| Err(FormatError::BadLayer { index, reason });
    let Some(op) = OpKind::from_u8(r.op) else {
        return bad("unknown operator");
    };
    if r.reserved != 0 {
        return bad("reserved field is not zero");
    }
    let tensor_count = m.header().tensor_count;
    let n_inputs = if op == OpKind::Add { 2 } else { 1 };
    for (k, &t) in r.inputs.iter().enumerate() {
        if k < n_inputs {
            // Available: the model input or written by an earlier layer.
            let earlier = (0..index).any(|j| m.layer_record(j).output == t);
            if t >= tensor_count || !(t == m.header().input || earlier) {
                return bad("input is not available at this layer");
            }
        } else if t != NO_TENSOR {
            return bad("unused input slot must be 0xffff");
        }
    }
    if r.output >= tensor_count || r.output == m.header().input {
        return bad("bad output tensor");
    }
    if (0..index).any(|j| m.layer_record(j).output == r.output) {
        return bad("output tensor is written twice");
    }
    if r.clamp.min > r.clamp.max {
        return bad("clamp min above max");
    }
    let rounding = match r.rounding {
        0 => Rounding::F32Product,
        1 => Rounding::Exact,
        _ => return bad("unknown rounding"),
    };
    let inp = m.tensor(r.inputs[0]);
    let out = m.tensor(r.output);
    let expected = shape::output_shape(op, inp.shape, &r.window, out.shape.c);
    match expected {
        Ok(shape) if shape == out.shape => {}
        Ok(_) => return bad("output shape does not follow from the input"),
        Err(reason) => return bad(reason),
    }
    if op == OpKind::Add && m.tensor(r.inputs[1]).shape != inp.shape {
        return bad("add inputs differ in shape");
    }
    if matches!(op, OpKind::MaxPool | OpKind::PadChannels) && inp.q != out.q {
        return bad("max pool and channel padding must keep the quantisation");
    }
    // Data: in bounds, the exact length the operator needs, channel records valid.
    let (weights, channels) = shape::data_layout(op, inp.shape, out.shape, &r.window);
    let want = weights.next_multiple_of(4) + channels * CHANNEL_RECORD;
    if r.data_len as usize != want {
        return bad("data length does not match the operator");
    }
    let start = r.data_offset as usize;
    if !start.is_multiple_of(4)
        || start
            .checked_add(want)
            .is_none_or(|e| e > m.header().data_len as usize)
    {
        return bad("data out of bounds or misaligned");
    }
    let data = m.data(r.data_offset, r.data_len);
    if data[weights..weights.next_multiple_of(4)]
        .iter()
        .any(|&b| b != 0)
    {
        return bad("weight padding is not zero");
    }
    let params = ChannelParams::new(&data[weights.next_multiple_of(4)..]);
    let mut first: Option<Requant> = None;
    let mut uniform = true;
    for c in 0..channels {
        let rq = params.requant(c);
        let ws = params.w_scale(c);
        if !(rq.is_valid() && ws.is_finite() && ws > 0.0) {
            return bad("bad per-channel scale or multiplier");
        }
        if !(-MAX_BIAS..=MAX_BIAS).contains(&params.bias(c)) {
            return bad("bias out of range");
        }
        match first {
            None => first = Some(rq),
            Some(f) => uniform &= f == rq,
        }
    }
    if channels > 0 {
        // tract rounds exactly exactly when the multiplier is uniform; the file must agree.
        let want_rounding = if uniform {
            Rounding::Exact
        } else {
            Rounding::F32Product
        };
        if rounding != want_rounding {
            return bad("rounding does not match the multipliers");
        }
    }
    if op == OpKind::AvgPool && params.bias(0) != 0 {
        return bad("average pool has a bias");
    }
    let fan_in = match op {
        OpKind::Conv2d => r.window.kh as usize * r.window.kw as usize * inp.shape.c as usize,
        OpKind::FullyConnected => inp.shape.len(),
        _ => r.window.kh as usize * r.window.kw as usize,
    };
    if fan_in > MAX_FAN_IN {
        return bad("fan-in too large for an i32 accumulator");
    }
    Ok(())
}

/// No layer may write over a tensor that is read at or after that layer, or over a model output
/// already written.
fn validate_plan(m: &ModelFile<'_>) -> Result<(), FormatError> {
    let h = m.header();
    for i in 0..h.layer_count {
        let out = m.layer_record(i).output;
        let written = m.tensor(out).region();
        let is_live = |t: u16| -> bool {
            if t == out {
                return false;
            }
            let produced_before = t == h.input || producer(m, t).is_some_and(|p| p < i);
            if !produced_before {
                return false;
            }
            let read_later = (i..h.layer_count).any(|j| {
                let r = m.layer_record(j);
                let n = if r.op == OpKind::Add as u8 { 2 } else { 1 };
                r.inputs[..n].contains(&t)
            });
            read_later || (0..h.output_count).any(|k| m.output_id(k) == t)
        };
        for t in 0..h.tensor_count {
            if is_live(t) {
                let other = m.tensor(t).region();
                if written.start < other.end && other.start < written.end {
                    return Err(FormatError::BadPlan {
                        layer: i,
                        tensor: t,
                    });
                }
            }
        }
    }
    Ok(())
}
