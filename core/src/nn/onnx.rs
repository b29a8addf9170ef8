//! The same int8 model as an ONNX graph, and tract running it (feature `tract`).
//!
//! Each layer maps to standard ONNX (opset 13) that tract evaluates with the arithmetic the core
//! kernels mirror:
//!
//! | core | ONNX |
//! |---|---|
//! | conv2d, depthwise (group = C), fully connected (kernel = input H x W) | `QLinearConv`, per-channel `w_scale` |
//! | average pool | depthwise `QLinearConv` with all-one weights and `w_scale = 1 / (kh * kw)` |
//! | max pool | `MaxPool` on int8 |
//! | add | `DequantizeLinear` x2 -> `Add` -> `QuantizeLinear` |
//! | clamp (fused ReLU/ReLU6) | `Clip` on int8 |
//!
//! Tensors are NCHW in ONNX and NHWC in the core; [`TractModel`] converts at the boundary.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};
use tract_onnx::prelude::*;

use super::model::{Layer, Model};
use super::{Clamp, Shape};

/// What the ONNX graph takes as input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// int8 NCHW, already quantised (parity tests).
    Int8,
    /// f32 NCHW, quantised by a leading `QuantizeLinear` (host inference on float pixels).
    Float,
}

/// Opset of the graphs written here.
pub const OPSET: i64 = 13;

fn t_name(t: u16) -> String {
    format!("t{t}")
}

/// The element types initializers hold: their ONNX data type, and where their values go (where
/// the exporter has always put them, so files stay byte for byte the same: floats and int64s in
/// their typed fields, int8 and int32 as little-endian raw bytes).
pub trait Element: Copy {
    const DATA_TYPE: DataType;
    fn store(data: &[Self], t: &mut TensorProto);
}

macro_rules! element {
    ($($t:ty => $data_type:ident: |$d:ident, $p:ident| $store:expr),* $(,)?) => {$(
        impl Element for $t {
            const DATA_TYPE: DataType = DataType::$data_type;
            fn store($d: &[Self], $p: &mut TensorProto) {
                $store;
            }
        }
    )*};
}
element!(
    f32 => Float: |d, t| t.float_data = d.to_vec(),
    i64 => Int64: |d, t| t.int64_data = d.to_vec(),
    i8 => Int8: |d, t| t.raw_data = d.iter().map(|&v| v as u8).collect(),
    i32 => Int32: |d, t| t.raw_data = d.iter().flat_map(|v| v.to_le_bytes()).collect(),
);

/// An initializer of `dims` holding `data`.
pub fn tensor<T: Element>(name: &str, dims: &[i64], data: &[T]) -> TensorProto {
    let mut t = TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: T::DATA_TYPE as i32,
        ..Default::default()
    };
    T::store(data, &mut t);
    t
}

/// A graph input or output of type `elem` and shape `dims`.
pub fn value_info(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: kind as i32,
        ..Default::default()
    }
}

/// An `ints` attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    let ints = v.to_vec();
    AttributeProto {
        ints,
        ..attribute(name, AttributeType::Ints)
    }
}

/// An `int` attribute.
pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        i,
        ..attribute(name, AttributeType::Int)
    }
}

/// A node of `op` named after its one output.
pub fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

fn nchw(s: Shape) -> [i64; 4] {
    [1, s.c as i64, s.h as i64, s.w as i64]
}

struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Graph {
    /// Scale and zero-point initializers of tensor `t` (`s{t}`, `z{t}`), created once.
    fn qparams(&mut self, m: &Model<'_>, t: u16) -> (String, String) {
        let (s, z) = (format!("s{t}"), format!("z{t}"));
        if !self.inits.iter().any(|i| i.name == s) {
            let q = m.tensor(t).q;
            self.inits.push(tensor(&s, &[], &[q.scale]));
            self.inits.push(tensor(&z, &[], &[q.zero_point]));
        }
        (s, z)
    }

    /// Name the layer should write: the tensor itself, or a temporary feeding a `Clip`.
    fn clamped_output(&mut self, i: u16, out: u16, clamp: Clamp) -> String {
        if clamp.is_none() {
            return t_name(out);
        }
        let pre = format!("pre{i}");
        let (lo, hi) = (format!("clip_min{i}"), format!("clip_max{i}"));
        self.inits.push(tensor(&lo, &[], &[clamp.min]));
        self.inits.push(tensor(&hi, &[], &[clamp.max]));
        self.nodes
            .push(node("Clip", &[&pre, &lo, &hi], &t_name(out), vec![]));
        pre
    }

    /// Layer `i` as a `QLinearConv` from tensor `input` to `out` (through a `Clip` when clamped).
    fn qlinear_conv(&mut self, m: &Model<'_>, i: u16, input: u16, out: u16, conv: ConvNode) {
        let output = self.clamped_output(i, out, conv.clamp);
        let (xs, xz) = self.qparams(m, input);
        let (ys, yz) = self.qparams(m, out);
        let (w, ws, wz, b) = (
            format!("w{i}"),
            format!("ws{i}"),
            format!("wz{i}"),
            format!("b{i}"),
        );
        let oc = conv.dims[0];
        self.inits.push(tensor(&w, &conv.dims, &conv.weights));
        self.inits.push(tensor(&ws, &[oc], &conv.w_scales));
        self.inits.push(tensor(&wz, &[oc], &vec![0i8; oc as usize]));
        let x = t_name(input);
        let mut inputs = vec![x.as_str(), &xs, &xz, &w, &ws, &wz, &ys, &yz];
        if let Some(bias) = conv.bias {
            self.inits.push(tensor(&b, &[oc], &bias));
            inputs.push(&b);
        }
        self.nodes
            .push(node("QLinearConv", &inputs, &output, conv.attrs));
    }
}

/// What a `QLinearConv` node needs besides its tensors' names and quantisation.
struct ConvNode {
    /// ONNX weight dims `[out][in / group][kh][kw]` and the weights in that order.
    dims: [i64; 4],
    weights: Vec<i8>,
    w_scales: Vec<f32>,
    bias: Option<Vec<i32>>,
    clamp: Clamp,
    attrs: Vec<AttributeProto>,
}

/// `[out][kh][kw][in]` weights (the core's conv and fully connected layout; depthwise is
/// `out = 1, in = c`) as ONNX's `[out][in][kh][kw]`.
fn ohwi_to_oihw(w: &[i8], [o, h, wd, i]: [usize; 4]) -> Vec<i8> {
    let mut out = vec![0i8; w.len()];
    for oc in 0..o {
        for y in 0..h {
            for x in 0..wd {
                for ic in 0..i {
                    out[((oc * i + ic) * h + y) * wd + x] = w[((oc * h + y) * wd + x) * i + ic];
                }
            }
        }
    }
    out
}

/// `QLinearConv` / `MaxPool` attributes: kernel, strides, pads (top, left, bottom, right) and
/// the group count (`None`: no group attribute, as on `MaxPool`).
fn conv_attrs(
    kernel: [i64; 2],
    strides: [i64; 2],
    pads: [i64; 4],
    group: Option<i64>,
) -> Vec<AttributeProto> {
    let mut attrs = vec![
        ints("kernel_shape", &kernel),
        ints("strides", &strides),
        ints("pads", &pads),
    ];
    attrs.extend(group.map(|g| int("group", g)));
    attrs
}

fn window_attrs(w: &super::Window, group: Option<i64>) -> Vec<AttributeProto> {
    let pads = [w.pad_top, w.pad_left, w.pad_bottom, w.pad_right].map(i64::from);
    conv_attrs(
        [w.kh as i64, w.kw as i64],
        [w.sh as i64, w.sw as i64],
        pads,
        group,
    )
}

/// Writes `m` as an ONNX model whose outputs are the model outputs as int8 NCHW tensors.
pub fn to_onnx(m: &Model<'_>, input: InputKind) -> ModelProto {
    let mut g = Graph {
        nodes: Vec::new(),
        inits: Vec::new(),
    };
    let inp = m.input();
    let graph_input = match input {
        InputKind::Int8 => value_info(&t_name(m.input_id()), DataType::Int8, &nchw(inp.shape)),
        InputKind::Float => {
            let (s, z) = g.qparams(m, m.input_id());
            g.nodes.push(node(
                "QuantizeLinear",
                &["input", &s, &z],
                &t_name(m.input_id()),
                vec![],
            ));
            value_info("input", DataType::Float, &nchw(inp.shape))
        }
    };
    for i in 0..m.layer_count() {
        let layer = m.layer(i);
        let out = layer.output();
        let os = m.tensor(out).shape;
        match layer {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) | Layer::FullyConnected(c) => {
                let is = m.tensor(c.input).shape;
                let (kh, kw) = (c.window.kh as usize, c.window.kw as usize);
                let (oc, ic) = (os.c as usize, is.c as usize);
                // the core's weights as [out][kh][kw][in], and the ONNX dims and attributes
                let (layout, dims, attrs) = match layer {
                    Layer::Conv2d(_) => (
                        [oc, kh, kw, ic],
                        [oc, ic, kh, kw],
                        window_attrs(&c.window, Some(1)),
                    ),
                    // depthwise [kh][kw][c]: one "output" of c inputs, as [c][1][kh][kw]
                    Layer::DepthwiseConv2d(_) => (
                        [1, kh, kw, oc],
                        [oc, 1, kh, kw],
                        window_attrs(&c.window, Some(oc as i64)),
                    ),
                    // fully connected: a convolution whose kernel is the whole input
                    _ => {
                        let (h, w) = (is.h as usize, is.w as usize);
                        let kernel = [h as i64, w as i64];
                        let attrs = conv_attrs(kernel, [1, 1], [0; 4], Some(1));
                        ([oc, h, w, ic], [oc, ic, h, w], attrs)
                    }
                };
                let conv = ConvNode {
                    dims: dims.map(|d| d as i64),
                    weights: ohwi_to_oihw(c.weights, layout),
                    w_scales: (0..oc).map(|o| c.channels.w_scale(o)).collect(),
                    bias: Some((0..oc).map(|o| c.channels.bias(o)).collect()),
                    clamp: c.clamp,
                    attrs,
                };
                g.qlinear_conv(m, i, c.input, out, conv);
            }
            Layer::MaxPool(p) => {
                let attrs = window_attrs(&p.window, None);
                g.nodes
                    .push(node("MaxPool", &[&t_name(p.input)], &t_name(out), attrs));
            }
            Layer::AvgPool(p) => {
                // a depthwise convolution with all-one weights and w_scale = 1 / (kh * kw)
                let (kh, kw, ch) = (p.window.kh as usize, p.window.kw as usize, os.c as usize);
                let conv = ConvNode {
                    dims: [ch as i64, 1, kh as i64, kw as i64],
                    weights: vec![1i8; ch * kh * kw],
                    w_scales: vec![p.params.w_scale(0); ch],
                    bias: None,
                    clamp: p.clamp,
                    attrs: window_attrs(&p.window, Some(ch as i64)),
                };
                g.qlinear_conv(m, i, p.input, out, conv);
            }
            Layer::PadChannels(p) => {
                let is = m.tensor(p.input).shape;
                let extra = os.c as i64 - is.c as i64;
                let (pads, value) = (format!("pads{i}"), format!("padv{i}"));
                g.inits
                    .push(tensor(&pads, &[8], &[0, 0, 0, 0, 0, extra, 0, 0]));
                g.inits
                    .push(tensor(&value, &[], &[m.tensor(p.input).q.zero_point]));
                g.nodes.push(node(
                    "Pad",
                    &[&t_name(p.input), &pads, &value],
                    &t_name(out),
                    vec![],
                ));
            }
            Layer::Add(a) => {
                let mut deq = Vec::new();
                for (k, &t) in a.inputs.iter().enumerate() {
                    let (s, z) = g.qparams(m, t);
                    let f = format!("f{i}_{k}");
                    g.nodes
                        .push(node("DequantizeLinear", &[&t_name(t), &s, &z], &f, vec![]));
                    deq.push(f);
                }
                let sum = format!("sum{i}");
                g.nodes.push(node("Add", &[&deq[0], &deq[1]], &sum, vec![]));
                let (s, z) = g.qparams(m, out);
                let name = g.clamped_output(i, out, a.clamp);
                g.nodes
                    .push(node("QuantizeLinear", &[&sum, &s, &z], &name, vec![]));
            }
        }
    }
    let outputs = (0..m.output_count())
        .map(|k| {
            let t = m.output_id(k);
            value_info(&t_name(t), DataType::Int8, &nchw(m.tensor(t).shape))
        })
        .collect();
    // Nodes must be in topological order: clip nodes were pushed before the layer node that
    // feeds them, so sort each Clip after its producer.
    let nodes = topo_sort(g.nodes);
    model_proto(GraphProto {
        name: "facegender_int8".into(),
        node: nodes,
        initializer: g.inits,
        input: vec![graph_input],
        output: outputs,
        ..Default::default()
    })
}

/// A model of `graph` at [`OPSET`], produced by facegender.
pub fn model_proto(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "facegender".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Orders nodes so that each comes after the producers of its inputs (stable otherwise).
fn topo_sort(mut pending: Vec<NodeProto>) -> Vec<NodeProto> {
    let mut done: Vec<NodeProto> = Vec::with_capacity(pending.len());
    let mut produced: std::collections::HashSet<String> = std::collections::HashSet::new();
    let all_outputs: std::collections::HashSet<String> = pending
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|n| {
            n.input
                .iter()
                .all(|i| !all_outputs.contains(i) || produced.contains(i))
        });
        // A cycle cannot happen for graphs built from a validated model; keep order if it does.
        let k = ready.unwrap_or(0);
        let n = pending.remove(k);
        produced.extend(n.output.iter().cloned());
        done.push(n);
    }
    done
}

/// A core model's ONNX twin, optimised and ready to run in tract.
pub struct TractModel {
    plan: std::sync::Arc<TypedRunnableModel>,
    input: Shape,
    outputs: Vec<Shape>,
    kind: InputKind,
}

impl TractModel {
    /// Builds the ONNX graph for `m` and loads it into tract.
    pub fn from_model(m: &Model<'_>, kind: InputKind) -> TractResult<Self> {
        let proto = to_onnx(m, kind);
        let outputs = (0..m.output_count()).map(|k| m.output(k).shape).collect();
        Self::from_proto(&proto, m.input().shape, outputs, kind)
    }

    pub fn from_proto(
        proto: &ModelProto,
        input: Shape,
        outputs: Vec<Shape>,
        kind: InputKind,
    ) -> TractResult<Self> {
        let plan = tract_onnx::onnx()
            .model_for_proto_model(proto)?
            .into_optimized()?
            .into_runnable()?;
        Ok(Self {
            plan,
            input,
            outputs,
            kind,
        })
    }

    /// Runs on an NHWC int8 input, returning each output as NHWC int8.
    pub fn run_i8(&self, input_nhwc: &[i8]) -> TractResult<Vec<Vec<i8>>> {
        anyhow_ensure(self.kind == InputKind::Int8, "model takes float input")?;
        let x = Tensor::from_shape(&nchw_usize(self.input), &to_nchw(input_nhwc, self.input))?;
        self.run(x)
    }

    /// Runs on an NHWC f32 input (graph built with [`InputKind::Float`]).
    pub fn run_f32(&self, input_nhwc: &[f32]) -> TractResult<Vec<Vec<i8>>> {
        anyhow_ensure(self.kind == InputKind::Float, "model takes int8 input")?;
        let x = Tensor::from_shape(&nchw_usize(self.input), &to_nchw(input_nhwc, self.input))?;
        self.run(x)
    }

    fn run(&self, x: Tensor) -> TractResult<Vec<Vec<i8>>> {
        let out = self.plan.run(tvec!(x.into()))?;
        out.iter()
            .zip(&self.outputs)
            .map(|(t, &s)| {
                let v = t.try_as_plain_ram()?.as_slice::<i8>()?;
                Ok(to_nhwc(v, s))
            })
            .collect()
    }
}

fn anyhow_ensure(ok: bool, msg: &'static str) -> TractResult<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow::anyhow!(msg))
    }
}

fn nchw_usize(s: Shape) -> [usize; 4] {
    [1, s.c as usize, s.h as usize, s.w as usize]
}

/// NHWC -> NCHW.
pub fn to_nchw<T: Copy + Default>(x: &[T], s: Shape) -> Vec<T> {
    permute(x, s, true)
}

/// NCHW -> NHWC.
pub fn to_nhwc<T: Copy + Default>(x: &[T], s: Shape) -> Vec<T> {
    permute(x, s, false)
}

/// NHWC to NCHW (`to_nchw`) or back.
fn permute<T: Copy + Default>(x: &[T], s: Shape, to_nchw: bool) -> Vec<T> {
    let (h, w, c) = (s.h as usize, s.w as usize, s.c as usize);
    let mut out = vec![T::default(); x.len()];
    for y in 0..h {
        for xx in 0..w {
            for ch in 0..c {
                let (nhwc, nchw) = ((y * w + xx) * c + ch, (ch * h + y) * w + xx);
                let (to, from) = if to_nchw { (nchw, nhwc) } else { (nhwc, nchw) };
                out[to] = x[from];
            }
        }
    }
    out
}
