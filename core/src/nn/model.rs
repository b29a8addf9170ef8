//! The model description: tensors and layers over a checked [`ModelFile`], and inference over a
//! caller's arena. Shape rules are in [`super::shape`] (re-exported here).

use core::ops::Range;

use super::format::{self, FormatError, Header, ModelFile};
use super::kernels::{
    AddArgs, AvgPoolArgs, ChannelParams, ConvArgs, Inference, Kernels, PadArgs, PoolArgs,
};
pub use super::shape::{TensorInfo, data_layout, output_shape};
use super::{Clamp, OpKind, QParams, Rounding, Window};

/// A convolution-like layer: conv, depthwise conv or fully connected.
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer<'a> {
    pub input: u16,
    pub output: u16,
    pub window: Window,
    pub clamp: Clamp,
    pub rounding: Rounding,
    pub weights: &'a [i8],
    pub channels: ChannelParams<'a>,
}

#[derive(Clone, Copy, Debug)]
pub struct PoolLayer<'a> {
    pub input: u16,
    pub output: u16,
    pub window: Window,
    pub clamp: Clamp,
    pub rounding: Rounding,
    /// Average pool only: one channel record holding `1 / (kh * kw)` and the multiplier.
    pub params: ChannelParams<'a>,
}

#[derive(Clone, Copy, Debug)]
pub struct AddLayer {
    pub inputs: [u16; 2],
    pub output: u16,
    pub clamp: Clamp,
}

/// One layer, with its parameters as views into the model bytes.
#[derive(Clone, Copy, Debug)]
pub enum Layer<'a> {
    Conv2d(ConvLayer<'a>),
    DepthwiseConv2d(ConvLayer<'a>),
    FullyConnected(ConvLayer<'a>),
    MaxPool(PoolLayer<'a>),
    AvgPool(PoolLayer<'a>),
    Add(AddLayer),
    PadChannels(PadLayer),
}

/// Channel padding: the input's channels, then zero-point channels up to the output's count.
#[derive(Clone, Copy, Debug)]
pub struct PadLayer {
    pub input: u16,
    pub output: u16,
}

impl Layer<'_> {
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Conv2d(_) => OpKind::Conv2d,
            Self::DepthwiseConv2d(_) => OpKind::DepthwiseConv2d,
            Self::FullyConnected(_) => OpKind::FullyConnected,
            Self::MaxPool(_) => OpKind::MaxPool,
            Self::AvgPool(_) => OpKind::AvgPool,
            Self::Add(_) => OpKind::Add,
            Self::PadChannels(_) => OpKind::PadChannels,
        }
    }

    pub fn output(&self) -> u16 {
        match self {
            Self::Conv2d(l) | Self::DepthwiseConv2d(l) | Self::FullyConnected(l) => l.output,
            Self::MaxPool(l) | Self::AvgPool(l) => l.output,
            Self::Add(l) => l.output,
            Self::PadChannels(l) => l.output,
        }
    }
}

/// Why inference could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RunError {
    /// The arena is smaller than [`Model::arena_len`].
    ArenaTooSmall { needed: usize, given: usize },
    /// The input slice does not hold exactly the input tensor.
    InputLength { expected: usize, given: usize },
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena of {given} bytes is too small: the model needs {needed}"
                )
            }
            Self::InputLength { expected, given } => {
                write!(f, "input has {given} values, the model takes {expected}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RunError {}

/// A validated int8 model, borrowing the file bytes (works with `include_bytes!`).
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    file: ModelFile<'a>,
}

impl<'a> From<ModelFile<'a>> for Model<'a> {
    fn from(file: ModelFile<'a>) -> Self {
        Self { file }
    }
}

impl<'a> Model<'a> {
    /// Validates `bytes` (see [`format`]) and returns the model view.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        format::parse_as(bytes)
    }

    fn header(&self) -> &Header {
        self.file.header()
    }

    /// The file bytes this model reads from.
    pub fn bytes(&self) -> &'a [u8] {
        self.file.bytes()
    }

    /// Scratch bytes [`Model::run`] needs: all activations under the stored buffer plan.
    pub fn arena_len(&self) -> usize {
        self.header().arena_len as usize
    }

    pub fn tensor_count(&self) -> u16 {
        self.header().tensor_count
    }

    pub fn layer_count(&self) -> u16 {
        self.header().layer_count
    }

    pub fn output_count(&self) -> u16 {
        self.header().output_count
    }

    /// Tensor `i`. Panics if `i >= tensor_count()`.
    pub fn tensor(&self, i: u16) -> TensorInfo {
        self.file.tensor(i)
    }

    pub fn input_id(&self) -> u16 {
        self.header().input
    }

    pub fn input(&self) -> TensorInfo {
        self.tensor(self.header().input)
    }

    /// Tensor id of output `k`. Panics if `k >= output_count()`.
    pub fn output_id(&self, k: u16) -> u16 {
        self.file.output_id(k)
    }

    pub fn output(&self, k: u16) -> TensorInfo {
        self.tensor(self.output_id(k))
    }

    /// Layer `i`, its parameters borrowed from the file. Panics if `i >= layer_count()`.
    pub fn layer(&self, i: u16) -> Layer<'a> {
        assert!(i < self.header().layer_count, "layer index out of range");
        let r = self.file.layer_record(i);
        let op = OpKind::from_u8(r.op).unwrap_or(OpKind::Add);
        let rounding = if r.rounding == 1 {
            Rounding::Exact
        } else {
            Rounding::F32Product
        };
        let data = self.file.data(r.data_offset, r.data_len);
        let (input, output) = (self.tensor(r.inputs[0]), self.tensor(r.output));
        let (wlen, _) = data_layout(op, input.shape, output.shape, &r.window);
        let split = wlen.next_multiple_of(4).min(data.len());
        let weights: &'a [i8] = bytemuck::cast_slice(&data[..wlen.min(data.len())]);
        let channels = ChannelParams::new(&data[split..]);
        let conv = ConvLayer {
            input: r.inputs[0],
            output: r.output,
            window: r.window,
            clamp: r.clamp,
            rounding,
            weights,
            channels,
        };
        let pool = PoolLayer {
            input: r.inputs[0],
            output: r.output,
            window: r.window,
            clamp: r.clamp,
            rounding,
            params: channels,
        };
        match op {
            OpKind::Conv2d => Layer::Conv2d(conv),
            OpKind::DepthwiseConv2d => Layer::DepthwiseConv2d(conv),
            OpKind::FullyConnected => Layer::FullyConnected(conv),
            OpKind::MaxPool => Layer::MaxPool(pool),
            OpKind::AvgPool => Layer::AvgPool(pool),
            OpKind::PadChannels => Layer::PadChannels(PadLayer {
                input: r.inputs[0],
                output: r.output,
            }),
            OpKind::Add => Layer::Add(AddLayer {
                inputs: r.inputs,
                output: r.output,
                clamp: r.clamp,
            }),
        }
    }

    /// Multiply-accumulates per inference (conv-like layers, and pool taps and adds), for reports.
    pub fn macs(&self) -> u64 {
        (0..self.layer_count()).map(|i| self.layer_macs(i)).sum()
    }

    /// Multiply-accumulates of layer `i` as [`Model::macs`] counts them.
    pub fn layer_macs(&self, i: u16) -> u64 {
        let l = self.layer(i);
        let out = self.tensor(l.output()).shape;
        match l {
            Layer::Conv2d(c) => {
                let i = self.tensor(c.input).shape;
                out.len() as u64 * (c.window.kh as u64 * c.window.kw as u64 * i.c as u64)
            }
            Layer::DepthwiseConv2d(c) => out.len() as u64 * c.window.kh as u64 * c.window.kw as u64,
            Layer::FullyConnected(c) => out.len() as u64 * self.tensor(c.input).shape.len() as u64,
            Layer::MaxPool(p) | Layer::AvgPool(p) => {
                out.len() as u64 * p.window.kh as u64 * p.window.kw as u64
            }
            Layer::Add(_) => out.len() as u64,
            Layer::PadChannels(_) => 0,
        }
    }

    /// Bytes of int8 weights (conv-like layers).
    pub fn weight_bytes(&self) -> usize {
        (0..self.layer_count())
            .map(|i| match self.layer(i) {
                Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) | Layer::FullyConnected(c) => {
                    c.weights.len()
                }
                _ => 0,
            })
            .sum()
    }

    /// Runs the model on `input` (NHWC int8, quantised with [`Model::input`]'s parameters) using
    /// `arena` for every activation, with the [`Inference`] kernels.
    pub fn run<'b>(&self, arena: &'b mut [u8], input: &[i8]) -> Result<Outputs<'a, 'b>, RunError> {
        self.run_with::<Inference>(arena, input)
    }

    /// As [`Model::run`], calling `after_layer(i)` as soon as layer `i` has run (the firmware
    /// counts each layer's instructions with it).
    pub fn run_observed<'b>(
        &self,
        arena: &'b mut [u8],
        input: &[i8],
        after_layer: impl FnMut(u16),
    ) -> Result<Outputs<'a, 'b>, RunError> {
        self.run_with_observer::<Inference>(arena, input, after_layer)
    }

    /// As [`Model::run`], with the kernels chosen by the caller (tests compare them).
    pub fn run_with<'b, K: Kernels>(
        &self,
        arena: &'b mut [u8],
        input: &[i8],
    ) -> Result<Outputs<'a, 'b>, RunError> {
        self.run_with_observer::<K>(arena, input, |_| {})
    }

    fn run_with_observer<'b, K: Kernels>(
        &self,
        arena: &'b mut [u8],
        input: &[i8],
        mut after_layer: impl FnMut(u16),
    ) -> Result<Outputs<'a, 'b>, RunError> {
        let needed = self.arena_len();
        if arena.len() < needed {
            return Err(RunError::ArenaTooSmall {
                needed,
                given: arena.len(),
            });
        }
        let inp = self.input();
        if input.len() != inp.shape.len() {
            return Err(RunError::InputLength {
                expected: inp.shape.len(),
                given: input.len(),
            });
        }
        let arena = &mut arena[..needed];
        arena[inp.region()].copy_from_slice(bytemuck::cast_slice(input));
        for i in 0..self.layer_count() {
            self.run_layer::<K>(self.layer(i), arena);
            after_layer(i);
        }
        Ok(Outputs {
            model: *self,
            arena,
        })
    }

    fn run_layer<K: Kernels>(&self, layer: Layer<'a>, arena: &mut [u8]) {
        let out = self.tensor(layer.output());
        let (before, y, after) = split3(arena, out.region());
        let y: &mut [i8] = bytemuck::cast_slice_mut(y);
        let region = out.region();
        // The plan guarantees inputs do not overlap the output: each lies before or after it.
        let read = |t: TensorInfo| -> &[i8] {
            let r = t.region();
            let bytes = if r.end <= region.start {
                &before[r]
            } else {
                &after[r.start - region.end..r.end - region.end]
            };
            bytemuck::cast_slice(bytes)
        };
        match layer {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) | Layer::FullyConnected(c) => {
                let inp = self.tensor(c.input);
                let args = ConvArgs {
                    input: inp.shape,
                    output: out.shape,
                    window: c.window,
                    x_zero_point: inp.q.zero_point,
                    y_zero_point: out.q.zero_point,
                    clamp: c.clamp,
                    rounding: c.rounding,
                    weights: c.weights,
                    channels: c.channels,
                };
                match layer.kind() {
                    OpKind::Conv2d => K::conv2d(&args, read(inp), y),
                    OpKind::DepthwiseConv2d => K::depthwise_conv2d(&args, read(inp), y),
                    _ => K::fully_connected(&args, read(inp), y),
                }
            }
            Layer::MaxPool(p) => {
                let inp = self.tensor(p.input);
                let args = PoolArgs {
                    input: inp.shape,
                    output: out.shape,
                    window: p.window,
                };
                K::max_pool(&args, read(inp), y)
            }
            Layer::AvgPool(p) => {
                let inp = self.tensor(p.input);
                let args = AvgPoolArgs {
                    input: inp.shape,
                    output: out.shape,
                    window: p.window,
                    x_zero_point: inp.q.zero_point,
                    y_zero_point: out.q.zero_point,
                    clamp: p.clamp,
                    rounding: p.rounding,
                    requant: p.params.requant(0),
                };
                K::avg_pool(&args, read(inp), y)
            }
            Layer::PadChannels(p) => {
                let inp = self.tensor(p.input);
                let args = PadArgs {
                    input: inp.shape,
                    output: out.shape,
                    zero_point: inp.q.zero_point,
                };
                K::pad_channels(&args, read(inp), y)
            }
            Layer::Add(a) => {
                let (ta, tb) = (self.tensor(a.inputs[0]), self.tensor(a.inputs[1]));
                let args = AddArgs {
                    a: ta.q,
                    b: tb.q,
                    y: out.q,
                    clamp: a.clamp,
                };
                K::add(&args, read(ta), read(tb), y)
            }
        }
    }
}

/// Splits `arena` into the bytes before `mid`, `mid` itself, and the bytes after it.
fn split3(arena: &mut [u8], mid: Range<usize>) -> (&[u8], &mut [u8], &[u8]) {
    let (before, rest) = arena.split_at_mut(mid.start);
    let (y, after) = rest.split_at_mut(mid.end - mid.start);
    (before, y, after)
}

/// The model's outputs after a run, borrowed from the arena.
pub struct Outputs<'a, 'b> {
    model: Model<'a>,
    arena: &'b [u8],
}

impl Outputs<'_, '_> {
    pub fn len(&self) -> usize {
        self.model.output_count() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Output `k` as NHWC int8, or `None` if `k` is out of range.
    pub fn get(&self, k: usize) -> Option<&[i8]> {
        let k = u16::try_from(k)
            .ok()
            .filter(|&k| k < self.model.output_count())?;
        let t = self.model.output(k);
        Some(bytemuck::cast_slice(self.arena.get(t.region())?))
    }

    /// Quantisation of output `k`.
    pub fn qparams(&self, k: usize) -> Option<QParams> {
        let k = u16::try_from(k)
            .ok()
            .filter(|&k| k < self.model.output_count())?;
        Some(self.model.output(k).q)
    }
}

/// Softmax over dequantised logits, written into `probs` (same length as `logits`). The float
/// helper for reports and decisions; the int8 logits are the bit-exact result.
pub fn softmax(logits: &[i8], q: QParams, probs: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for &l in logits {
        max = max.max(q.dequantize(l));
    }
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = libm::expf(q.dequantize(l) - max);
        sum += *p;
    }
    for p in probs.iter_mut() {
        *p /= sum;
    }
}
