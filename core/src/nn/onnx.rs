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

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn tensor_i8(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: data.iter().map(|&v| v as u8).collect(),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn tensor_i32(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int32 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
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

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
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
            self.inits.push(tensor_f32(&s, &[], &[q.scale]));
            self.inits.push(tensor_i8(&z, &[], &[q.zero_point]));
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
        self.inits.push(tensor_i8(&lo, &[], &[clamp.min]));
        self.inits.push(tensor_i8(&hi, &[], &[clamp.max]));
        self.nodes
            .push(node("Clip", &[&pre, &lo, &hi], &t_name(out), vec![]));
        pre
    }

    #[allow(clippy::too_many_arguments)]
    fn qlinear_conv(
        &mut self,
        m: &Model<'_>,
        i: u16,
        input: u16,
        output: &str,
        out: u16,
        weights: (&[i64], Vec<i8>),
        w_scales: Vec<f32>,
        bias: Option<Vec<i32>>,
        attrs: Vec<AttributeProto>,
    ) {
        let (xs, xz) = self.qparams(m, input);
        let (ys, yz) = self.qparams(m, out);
        let (w, ws, wz, b) = (
            format!("w{i}"),
            format!("ws{i}"),
            format!("wz{i}"),
            format!("b{i}"),
        );
        let oc = weights.0[0];
        self.inits.push(tensor_i8(&w, weights.0, &weights.1));
        self.inits.push(tensor_f32(&ws, &[oc], &w_scales));
        self.inits
            .push(tensor_i8(&wz, &[oc], &vec![0; oc as usize]));
        let x = t_name(input);
        let mut inputs = vec![x.as_str(), &xs, &xz, &w, &ws, &wz, &ys, &yz];
        if let Some(bias) = bias {
            self.inits.push(tensor_i32(&b, &[oc], &bias));
            inputs.push(&b);
        }
        self.nodes.push(node("QLinearConv", &inputs, output, attrs));
    }
}

fn window_attrs(w: &super::Window, group: i64) -> Vec<AttributeProto> {
    vec![
        ints("kernel_shape", &[w.kh as i64, w.kw as i64]),
        ints("strides", &[w.sh as i64, w.sw as i64]),
        ints(
            "pads",
            &[
                w.pad_top as i64,
                w.pad_left as i64,
                w.pad_bottom as i64,
                w.pad_right as i64,
            ],
        ),
        int("group", group),
    ]
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
            Layer::Conv2d(c) => {
                let is = m.tensor(c.input).shape;
                let (kh, kw, ic, oc) = (
                    c.window.kh as usize,
                    c.window.kw as usize,
                    is.c as usize,
                    os.c as usize,
                );
                // [oc][kh][kw][ic] -> [oc][ic][kh][kw]
                let mut w = vec![0i8; c.weights.len()];
                for o in 0..oc {
                    for y in 0..kh {
                        for x in 0..kw {
                            for ci in 0..ic {
                                w[((o * ic + ci) * kh + y) * kw + x] =
                                    c.weights[((o * kh + y) * kw + x) * ic + ci];
                            }
                        }
                    }
                }
                let dims = [oc as i64, ic as i64, kh as i64, kw as i64];
                let scales = (0..oc).map(|o| c.channels.w_scale(o)).collect();
                let bias = (0..oc).map(|o| c.channels.bias(o)).collect();
                let name = g.clamped_output(i, out, c.clamp);
                let attrs = window_attrs(&c.window, 1);
                g.qlinear_conv(
                    m,
                    i,
                    c.input,
                    &name,
                    out,
                    (&dims, w),
                    scales,
                    Some(bias),
                    attrs,
                );
            }
            Layer::DepthwiseConv2d(c) => {
                let (kh, kw, ch) = (c.window.kh as usize, c.window.kw as usize, os.c as usize);
                // [kh][kw][c] -> [c][1][kh][kw]
                let mut w = vec![0i8; c.weights.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for ci in 0..ch {
                            w[(ci * kh + y) * kw + x] = c.weights[(y * kw + x) * ch + ci];
                        }
                    }
                }
                let dims = [ch as i64, 1, kh as i64, kw as i64];
                let scales = (0..ch).map(|o| c.channels.w_scale(o)).collect();
                let bias = (0..ch).map(|o| c.channels.bias(o)).collect();
                let name = g.clamped_output(i, out, c.clamp);
                let attrs = window_attrs(&c.window, ch as i64);
                g.qlinear_conv(
                    m,
                    i,
                    c.input,
                    &name,
                    out,
                    (&dims, w),
                    scales,
                    Some(bias),
                    attrs,
                );
            }
            Layer::FullyConnected(c) => {
                let is = m.tensor(c.input).shape;
                let (h, wd, ic, oc) = (is.h as usize, is.w as usize, is.c as usize, os.c as usize);
                let mut w = vec![0i8; c.weights.len()];
                for o in 0..oc {
                    for y in 0..h {
                        for x in 0..wd {
                            for ci in 0..ic {
                                w[((o * ic + ci) * h + y) * wd + x] =
                                    c.weights[((o * h + y) * wd + x) * ic + ci];
                            }
                        }
                    }
                }
                let dims = [oc as i64, ic as i64, h as i64, wd as i64];
                let scales = (0..oc).map(|o| c.channels.w_scale(o)).collect();
                let bias = (0..oc).map(|o| c.channels.bias(o)).collect();
                let name = g.clamped_output(i, out, c.clamp);
                let attrs = vec![
                    ints("kernel_shape", &[h as i64, wd as i64]),
                    ints("strides", &[1, 1]),
                    ints("pads", &[0, 0, 0, 0]),
                    int("group", 1),
                ];
                g.qlinear_conv(
                    m,
                    i,
                    c.input,
                    &name,
                    out,
                    (&dims, w),
                    scales,
                    Some(bias),
                    attrs,
                );
            }
            Layer::MaxPool(p) => {
                let mut attrs = window_attrs(&p.window, 1);
                attrs.pop(); // no group on MaxPool
                g.nodes
                    .push(node("MaxPool", &[&t_name(p.input)], &t_name(out), attrs));
            }
            Layer::AvgPool(p) => {
                let (kh, kw, ch) = (p.window.kh as usize, p.window.kw as usize, os.c as usize);
                let dims = [ch as i64, 1, kh as i64, kw as i64];
                let scales = vec![p.params.w_scale(0); ch];
                let name = g.clamped_output(i, out, p.clamp);
                let attrs = window_attrs(&p.window, ch as i64);
                let ones = vec![1i8; ch * kh * kw];
                g.qlinear_conv(
                    m,
                    i,
                    p.input,
                    &name,
                    out,
                    (&dims, ones),
                    scales,
                    None,
                    attrs,
                );
            }
            Layer::PadChannels(p) => {
                let is = m.tensor(p.input).shape;
                let extra = os.c as i64 - is.c as i64;
                let (pads, value) = (format!("pads{i}"), format!("padv{i}"));
                g.inits
                    .push(tensor_i64(&pads, &[8], &[0, 0, 0, 0, 0, extra, 0, 0]));
                g.inits
                    .push(tensor_i8(&value, &[], &[m.tensor(p.input).q.zero_point]));
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
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "facegender".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            name: "facegender_int8".into(),
            node: nodes,
            initializer: g.inits,
            input: vec![graph_input],
            output: outputs,
            ..Default::default()
        }),
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
    let (h, w, c) = (s.h as usize, s.w as usize, s.c as usize);
    let mut out = vec![T::default(); x.len()];
    for y in 0..h {
        for xx in 0..w {
            for ch in 0..c {
                out[(ch * h + y) * w + xx] = x[(y * w + xx) * c + ch];
            }
        }
    }
    out
}

/// NCHW -> NHWC.
pub fn to_nhwc<T: Copy + Default>(x: &[T], s: Shape) -> Vec<T> {
    let (h, w, c) = (s.h as usize, s.w as usize, s.c as usize);
    let mut out = vec![T::default(); x.len()];
    for y in 0..h {
        for xx in 0..w {
            for ch in 0..c {
                out[(y * w + xx) * c + ch] = x[(ch * h + y) * w + xx];
            }
        }
    }
    out
}
