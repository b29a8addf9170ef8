//! Building model files (std): tensors and layers in, checked bytes out, with the buffer plan
//! and the requantisation multipliers computed here, once, at export time.

use std::vec::Vec;

use super::format::{self, LAYER_RECORD, MAGIC, NO_TENSOR, TENSOR_RECORD, VERSION};
use super::kernels::{CHANNEL_RECORD, ChannelParams};
use super::model::{Layer, Model};
use super::shape;
use super::{Clamp, OpKind, QParams, Rounding, Shape, Window};
use crate::container;
use crate::quant::Requant;

/// A weighted layer's quantised parameters: int8 weights (laid out as its op says), int32
/// biases and one weight scale per output channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    pub w_scales: Vec<f32>,
}

impl Params {
    pub fn new(weights: Vec<i8>, bias: Vec<i32>, w_scales: Vec<f32>) -> Self {
        Self {
            weights,
            bias,
            w_scales,
        }
    }
}

/// A layer as the exporter describes it. Weight layouts are those of [`super::kernels::ConvArgs`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    pub op: OpKind,
    pub inputs: [u16; 2],
    pub output: u16,
    pub window: Window,
    pub clamp: Clamp,
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    /// Per output channel for conv-like layers; `[1 / (kh * kw)]` for average pool.
    pub w_scales: Vec<f32>,
}

impl LayerSpec {
    /// A layer without parameters (its output is filled in when it is pushed).
    pub fn new(op: OpKind, inputs: [u16; 2], window: Window, clamp: Clamp) -> Self {
        Self {
            op,
            inputs,
            output: NO_TENSOR,
            window,
            clamp,
            weights: Vec::new(),
            bias: Vec::new(),
            w_scales: Vec::new(),
        }
    }

    /// The layer with these weights, biases and weight scales.
    pub fn with(self, weights: Vec<i8>, bias: Vec<i32>, w_scales: Vec<f32>) -> Self {
        Self {
            weights,
            bias,
            w_scales,
            ..self
        }
    }
}

/// Why a model could not be written.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteError {
    /// A shape rule or parameter count is violated (message says which).
    Invalid(std::string::String),
    /// The bytes were written but did not parse back: a bug in the writer.
    SelfCheck(format::FormatError),
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Invalid(m) => write!(f, "invalid model: {m}"),
            Self::SelfCheck(e) => write!(f, "written model does not parse back: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Greedy first-fit in the given order: each tensor goes at the lowest 4-aligned offset where it
/// overlaps no tensor already placed whose lifetime meets its own. Returns offsets and the end.
fn place_in_order(
    order: &[usize],
    lives: &[(usize, usize)],
    len: impl Fn(usize) -> u64,
) -> (Vec<u64>, u64) {
    let meet = |a: usize, b: usize| lives[a].0 <= lives[b].1 && lives[b].0 <= lives[a].1;
    let mut offsets = std::vec![0u64; lives.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(order.len());
    for &t in order {
        let rivals: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&p| meet(p, t))
            .map(|&p| (offsets[p], offsets[p] + len(p)))
            .collect();
        let mut candidates: Vec<u64> = rivals.iter().map(|r| r.1.next_multiple_of(4)).collect();
        candidates.push(0);
        candidates.sort_unstable();
        // The end of the highest rival always fits, so a candidate is always found.
        offsets[t] = candidates
            .into_iter()
            .find(|&c| rivals.iter().all(|&(s, e)| c + len(t) <= s || e <= c))
            .unwrap_or(0);
        placed.push(t);
    }
    let end = (0..lives.len())
        .map(|t| offsets[t] + len(t))
        .max()
        .unwrap_or(0);
    (offsets, end)
}

fn invalid<T>(msg: impl Into<std::string::String>) -> Result<T, WriteError> {
    Err(WriteError::Invalid(msg.into()))
}

/// Collects tensors and layers (in execution order) and writes the model file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelBuilder {
    pub tensors: Vec<(Shape, QParams)>,
    pub layers: Vec<LayerSpec>,
    pub input: u16,
    pub outputs: Vec<u16>,
}

impl ModelBuilder {
    /// A builder whose first tensor is the model input.
    pub fn new(input: Shape, q: QParams) -> Self {
        Self {
            tensors: std::vec![(input, q)],
            layers: Vec::new(),
            input: 0,
            outputs: Vec::new(),
        }
    }

    pub fn shape(&self, t: u16) -> Shape {
        self.tensors[t as usize].0
    }

    pub fn qparams(&self, t: u16) -> QParams {
        self.tensors[t as usize].1
    }

    fn push_tensor(&mut self, shape: Shape, q: QParams) -> u16 {
        self.tensors.push((shape, q));
        (self.tensors.len() - 1) as u16
    }

    /// Appends `layer` (its `output` filled in here) and its output tensor of `out_c` channels
    /// quantised with `out_q`; the shape follows from the input by the shape rules.
    fn push(
        &mut self,
        mut layer: LayerSpec,
        out_c: u16,
        out_q: QParams,
    ) -> Result<u16, WriteError> {
        let input = self.shape(layer.inputs[0]);
        let shape = shape::output_shape(layer.op, input, &layer.window, out_c)
            .or_else(|e| invalid(std::format!("{}: {e}", layer.op.name())))?;
        layer.output = self.push_tensor(shape, out_q);
        let output = layer.output;
        self.layers.push(layer);
        Ok(output)
    }

    /// A convolution: `op` [`OpKind::Conv2d`] (`weights` `[out_c][kh][kw][in_c]`) or
    /// [`OpKind::DepthwiseConv2d`] (channel multiplier 1, `weights` `[kh][kw][c]`).
    pub fn conv(
        &mut self,
        op: OpKind,
        input: u16,
        window: Window,
        out_q: QParams,
        clamp: Clamp,
        p: Params,
    ) -> Result<u16, WriteError> {
        let out_c = self.conv_channels(op, input, &p)?;
        let layer = LayerSpec::new(op, [input, NO_TENSOR], window, clamp);
        self.push(layer.with(p.weights, p.bias, p.w_scales), out_c, out_q)
    }

    /// Output channels of a convolution: one per bias of a full one, the input's for a
    /// depthwise one.
    fn conv_channels(&self, op: OpKind, input: u16, p: &Params) -> Result<u16, WriteError> {
        match op {
            OpKind::Conv2d => u16::try_from(p.bias.len()).or_else(|_| invalid("too many channels")),
            OpKind::DepthwiseConv2d => Ok(self.shape(input).c),
            _ => invalid(std::format!("{} is not a convolution", op.name())),
        }
    }

    /// Fully connected over the whole input (flattened NHWC); `weights` is `[out][h][w][c]`.
    pub fn fully_connected(
        &mut self,
        input: u16,
        out_q: QParams,
        clamp: Clamp,
        p: Params,
    ) -> Result<u16, WriteError> {
        let out_c = u16::try_from(p.bias.len()).or_else(|_| invalid("too many channels"))?;
        let (op, window) = (OpKind::FullyConnected, Window::default());
        let layer = LayerSpec::new(op, [input, NO_TENSOR], window, clamp);
        self.push(layer.with(p.weights, p.bias, p.w_scales), out_c, out_q)
    }

    pub fn max_pool(&mut self, input: u16, window: Window) -> Result<u16, WriteError> {
        let (c, q) = (self.shape(input).c, self.qparams(input));
        let layer = LayerSpec::new(OpKind::MaxPool, [input, NO_TENSOR], window, Clamp::NONE);
        self.push(layer, c, q)
    }

    /// Average pool over unpadded windows.
    pub fn avg_pool(
        &mut self,
        input: u16,
        window: Window,
        out_q: QParams,
        clamp: Clamp,
    ) -> Result<u16, WriteError> {
        let c = self.shape(input).c;
        let inv = 1.0 / (window.kh as f32 * window.kw as f32);
        let layer = LayerSpec::new(OpKind::AvgPool, [input, NO_TENSOR], window, clamp);
        let layer = layer.with(Vec::new(), std::vec![0], std::vec![inv]);
        self.push(layer, c, out_q)
    }

    /// Global average pool: an average pool whose window is the whole input.
    pub fn global_avg_pool(&mut self, input: u16, out_q: QParams) -> Result<u16, WriteError> {
        let s = self.shape(input);
        let (kh, kw) = match (u8::try_from(s.h), u8::try_from(s.w)) {
            (Ok(h), Ok(w)) => (h, w),
            _ => return invalid("global pool input larger than 255 x 255"),
        };
        self.avg_pool(input, Window::valid(kh, kw, 1, 1), out_q, Clamp::NONE)
    }

    pub fn add(&mut self, a: u16, b: u16, out_q: QParams, clamp: Clamp) -> Result<u16, WriteError> {
        let c = self.shape(a).c;
        let layer = LayerSpec::new(OpKind::Add, [a, b], Window::default(), clamp);
        self.push(layer, c, out_q)
    }

    /// Appends zero-point channels up to `out_c` (same quantisation).
    pub fn pad_channels(&mut self, input: u16, out_c: u16) -> Result<u16, WriteError> {
        let q = self.qparams(input);
        let (op, window) = (OpKind::PadChannels, Window::default());
        let layer = LayerSpec::new(op, [input, NO_TENSOR], window, Clamp::NONE);
        self.push(layer, out_c, q)
    }

    /// Marks a tensor as a model output (in order).
    pub fn output(&mut self, t: u16) {
        self.outputs.push(t);
    }

    /// Rebuilds the description of a parsed model (for round trips and conversions).
    pub fn from_model(m: &Model<'_>) -> Self {
        let tensors = (0..m.tensor_count())
            .map(|t| (m.tensor(t).shape, m.tensor(t).q))
            .collect();
        let layers = (0..m.layer_count())
            .map(|i| {
                let layer = m.layer(i);
                let one = |t: u16| [t, NO_TENSOR];
                let (inputs, window, clamp, weights, params) = match layer {
                    Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) | Layer::FullyConnected(c) => {
                        let w = c.weights.to_vec();
                        (one(c.input), c.window, c.clamp, w, Some(c.channels))
                    }
                    Layer::MaxPool(p) => (one(p.input), p.window, p.clamp, Vec::new(), None),
                    Layer::AvgPool(p) => {
                        let params = Some(p.params);
                        (one(p.input), p.window, p.clamp, Vec::new(), params)
                    }
                    Layer::Add(a) => (a.inputs, Window::default(), a.clamp, Vec::new(), None),
                    Layer::PadChannels(p) => {
                        let window = Window::default();
                        (one(p.input), window, Clamp::NONE, Vec::new(), None)
                    }
                };
                let n = params.map_or(0, |p| p.len());
                let bias = (0..n).map(|c| params.map_or(0, |p| p.bias(c))).collect();
                let w_scales = (0..n)
                    .map(|c| params.map_or(0.0, |p| p.w_scale(c)))
                    .collect();
                LayerSpec {
                    output: layer.output(),
                    ..LayerSpec::new(layer.kind(), inputs, window, clamp)
                }
                .with(weights, bias, w_scales)
            })
            .collect();
        let outputs = (0..m.output_count()).map(|k| m.output_id(k)).collect();
        Self {
            tensors,
            layers,
            input: m.input_id(),
            outputs,
        }
    }

    /// The buffer plan: per-tensor arena offsets (4-aligned) and the arena length. A tensor is
    /// alive from the layer that writes it (the input: from the start) to the last layer that
    /// reads it (model outputs: to the end), and no two tensors alive at once may overlap.
    ///
    /// Two greedy first-fit orders are tried and the smaller arena kept: execution order, and
    /// largest tensor first (as TFLite's planner). In a plain chain, execution order leaves the
    /// input's slot as a gap under the first two large activations; largest first closes it.
    pub fn plan(&self) -> Result<(Vec<u32>, u32), WriteError> {
        let lives = self.lifetimes()?;
        let len = |t: usize| self.tensors[t].0.len() as u64;
        let mut by_size: Vec<usize> = (0..lives.len()).collect();
        by_size.sort_by_key(|&t| (std::cmp::Reverse(len(t)), lives[t].0, t));
        let mut by_time: Vec<usize> = (0..lives.len()).collect();
        by_time.sort_by_key(|&t| (lives[t].0, t != self.input as usize, t));
        let a = place_in_order(&by_time, &lives, len);
        let b = place_in_order(&by_size, &lives, len);
        let (offsets, arena) = if b.1 < a.1 { b } else { a };
        let offsets = offsets
            .into_iter()
            .map(|o| u32::try_from(o).or_else(|_| invalid("arena larger than 4 GiB")))
            .collect::<Result<_, _>>()?;
        let arena =
            u32::try_from(arena.next_multiple_of(4)).or_else(|_| invalid("arena too big"))?;
        Ok((offsets, arena))
    }

    /// The most bytes alive at any one layer: no plan can be smaller than this.
    pub fn live_peak(&self) -> Result<u64, WriteError> {
        let lives = self.lifetimes()?;
        let alive_at = |i: usize| -> u64 {
            (0..lives.len())
                .filter(|&t| lives[t].0 <= i && i <= lives[t].1)
                .map(|t| self.tensors[t].0.len() as u64)
                .sum()
        };
        Ok((0..self.layers.len()).map(alive_at).max().unwrap_or(0))
    }

    /// Per tensor, the first and last layer index at which it is alive.
    fn lifetimes(&self) -> Result<Vec<(usize, usize)>, WriteError> {
        let n = self.tensors.len();
        let mut first = std::vec![None::<usize>; n];
        let mut last = std::vec![None::<usize>; n];
        *first
            .get_mut(self.input as usize)
            .ok_or_else(|| bad_id(self.input))? = Some(0);
        for (i, l) in self.layers.iter().enumerate() {
            for &t in l.inputs.iter().filter(|&&t| t != NO_TENSOR) {
                *last.get_mut(t as usize).ok_or_else(|| bad_id(t))? = Some(i);
            }
            let out = l.output;
            match first.get_mut(out as usize) {
                Some(f @ None) => *f = Some(i),
                _ => {
                    return invalid(std::format!(
                        "layer {i}: output tensor {out} is bad or reused"
                    ));
                }
            }
        }
        for &t in &self.outputs {
            *last.get_mut(t as usize).ok_or_else(|| bad_id(t))? = Some(usize::MAX);
        }
        (0..n)
            .map(|t| match first[t] {
                Some(f) => Ok((f, last[t].unwrap_or(f).max(f))),
                None => invalid(std::format!("tensor {t} is neither the input nor written")),
            })
            .collect()
    }

    /// Writes the model file and checks that it parses back.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        let (offsets, arena_len) = self.plan()?;
        let count = |n: usize, what: &str| {
            u16::try_from(n).or_else(|_| invalid(std::format!("too many {what}")))
        };
        let tensor_count = count(self.tensors.len(), "tensors")?;
        let layer_count = count(self.layers.len(), "layers")?;
        let output_count = count(self.outputs.len(), "outputs")?;

        let mut data = Vec::new();
        let mut layer_bytes = Vec::with_capacity(self.layers.len() * LAYER_RECORD);
        for (i, l) in self.layers.iter().enumerate() {
            let (xs, ys) = (self.qparams(l.inputs[0]), self.qparams(l.output));
            let (wlen, channels) = shape::data_layout(
                l.op,
                self.shape(l.inputs[0]),
                self.shape(l.output),
                &l.window,
            );
            if l.weights.len() != wlen || l.bias.len() != channels || l.w_scales.len() != channels {
                return invalid(std::format!(
                    "layer {i} ({}): expected {wlen} weights and {channels} biases and scales, got {}, {} and {}",
                    l.op.name(),
                    l.weights.len(),
                    l.bias.len(),
                    l.w_scales.len()
                ));
            }
            let start = data.len();
            data.extend(l.weights.iter().map(|&w| w as u8));
            data.resize(data.len().next_multiple_of(4), 0);
            let mut requants = Vec::with_capacity(channels);
            for c in 0..channels {
                // tract's combined multiplier: (w_scale * x_scale) / y_scale, in f32.
                let m = (l.w_scales[c] * xs.scale) / ys.scale;
                let rq = Requant::from_f32(m)
                    .filter(|r| r.is_valid())
                    .ok_or_else(|| WriteError::Invalid(std::format!("layer {i}: bad scale")))?;
                requants.push(rq);
                data.extend(ChannelParams::record(l.bias[c], l.w_scales[c], rq));
            }
            let uniform = requants.windows(2).all(|w| w[0] == w[1]);
            let rounding = if uniform {
                Rounding::Exact
            } else {
                Rounding::F32Product
            };
            let w = &l.window;
            let mut rec = [0u8; LAYER_RECORD];
            rec[0] = l.op as u8;
            rec[1] = if channels > 0 {
                rounding as u8
            } else {
                Rounding::F32Product as u8
            };
            rec[2..4].copy_from_slice(&l.inputs[0].to_le_bytes());
            rec[4..6].copy_from_slice(&l.inputs[1].to_le_bytes());
            rec[6..8].copy_from_slice(&l.output.to_le_bytes());
            rec[8..16].copy_from_slice(&[
                w.kh,
                w.kw,
                w.sh,
                w.sw,
                w.pad_top,
                w.pad_left,
                w.pad_bottom,
                w.pad_right,
            ]);
            rec[16] = l.clamp.min as u8;
            rec[17] = l.clamp.max as u8;
            rec[20..24].copy_from_slice(&(start as u32).to_le_bytes());
            rec[24..28].copy_from_slice(&((data.len() - start) as u32).to_le_bytes());
            layer_bytes.extend_from_slice(&rec);
            debug_assert_eq!(
                (data.len() - start),
                wlen.next_multiple_of(4) + channels * CHANNEL_RECORD
            );
        }

        let mut payload = Vec::new();
        for (t, (shape, q)) in self.tensors.iter().enumerate() {
            let mut rec = [0u8; TENSOR_RECORD];
            rec[0..2].copy_from_slice(&shape.h.to_le_bytes());
            rec[2..4].copy_from_slice(&shape.w.to_le_bytes());
            rec[4..6].copy_from_slice(&shape.c.to_le_bytes());
            rec[6] = q.zero_point as u8;
            rec[8..12].copy_from_slice(&q.scale.to_le_bytes());
            rec[12..16].copy_from_slice(&offsets[t].to_le_bytes());
            payload.extend_from_slice(&rec);
        }
        for &o in &self.outputs {
            payload.extend_from_slice(&o.to_le_bytes());
        }
        payload.resize(payload.len().next_multiple_of(4), 0);
        payload.extend_from_slice(&layer_bytes);
        payload.extend_from_slice(&data);

        let data_len = u32::try_from(data.len()).or_else(|_| invalid("model larger than 4 GiB"))?;
        let mut fields = [0u8; 16];
        let counts = [tensor_count, layer_count, output_count, self.input];
        for (f, v) in fields.chunks_exact_mut(2).zip(counts) {
            f.copy_from_slice(&v.to_le_bytes());
        }
        fields[8..12].copy_from_slice(&arena_len.to_le_bytes());
        fields[12..].copy_from_slice(&data_len.to_le_bytes());
        let bytes = container::seal(MAGIC, VERSION, &fields, &payload)
            .or_else(|_| invalid("model too large"))?;
        format::parse(&bytes).map_err(WriteError::SelfCheck)?;
        Ok(bytes)
    }
}

fn bad_id(t: u16) -> WriteError {
    WriteError::Invalid(std::format!("tensor id {t} out of range"))
}
