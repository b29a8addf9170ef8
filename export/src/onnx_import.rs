//! A float ONNX CNN to the core's int8 format: the exporter's second front end, used for
//! BlazeFace. The graph is read from the ONNX proto; tract runs the float model on calibration
//! inputs with every intermediate tensor exposed, which gives each activation's range (method:
//! the 0.01% and 99.99% quantiles of the tensor's values over the calibration images for hidden
//! tensors; the mean of per-image minima and maxima for the outputs, whose rare extremes, e.g. a
//! score logit of -25000 for an empty anchor, would otherwise blow the step up a hundredfold);
//! weights are quantised per output channel, symmetric, biases to int32.
//!
//! Supported pattern (what convolutional TF/Keras exports look like): an NHWC input transposed to
//! NCHW; `Conv` (plain or depthwise, any stride and padding), `Relu` (fused into the producer as
//! a clamp), `Add`, `MaxPool`, channel padding written as `ConstantOfShape` + `Concat(axis=1)`,
//! and outputs of the form `Conv -> Transpose(0,2,3,1) -> Reshape`. Anything else is an error
//! naming the node.

use std::collections::HashMap;

use facegender_core::nn::write::ModelBuilder;
use facegender_core::nn::{Clamp, OpKind, QParams, Shape, Window};
use facegender_pipeline::bail;
use facegender_pipeline::error::Context;

use crate::quantize::{self, Scale, range_q, relu_q};
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::*;

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn attr_int(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Float values of an initializer (float tensors only).
fn floats(t: &TensorProto) -> facegender_pipeline::Result<Vec<f32>> {
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    facegender_pipeline::ensure!(
        t.raw_data.len().is_multiple_of(4),
        "initializer {} is not f32",
        t.name
    );
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn int64s(t: &TensorProto) -> Vec<i64> {
    if !t.int64_data.is_empty() {
        return t.int64_data.clone();
    }
    t.raw_data
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

struct Graph<'a> {
    g: &'a GraphProto,
    inits: HashMap<&'a str, &'a TensorProto>,
    consumers: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Graph<'a> {
    fn new(g: &'a GraphProto) -> Self {
        let inits = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for x in &n.input {
                consumers.entry(x.as_str()).or_default().push(i);
            }
        }
        Self {
            g,
            inits,
            consumers,
        }
    }

    /// The node that reads `name`, if exactly one does.
    fn sole_consumer(&self, name: &str) -> Option<&'a NodeProto> {
        match self.consumers.get(name).map(Vec::as_slice) {
            Some([i]) => Some(&self.g.node[*i]),
            _ => None,
        }
    }

    /// If `name` feeds only a Relu, the Relu's output name.
    fn relu_after(&self, name: &str) -> Option<&'a str> {
        self.sole_consumer(name)
            .filter(|n| n.op_type == "Relu")
            .map(|n| n.output[0].as_str())
    }
}

/// The tensors whose ranges the quantiser needs: every Conv and Add output, or the Relu after it.
fn materialised(g: &Graph<'_>) -> Vec<String> {
    g.g.node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "Conv" | "Add"))
        .map(|n| {
            g.relu_after(&n.output[0])
                .unwrap_or(&n.output[0])
                .to_string()
        })
        .collect()
}

/// Fraction of each tensor's values left outside its range, on each side.
pub const TAIL: f64 = 1e-4;
const BINS: usize = 4096;

/// Per-tensor ranges over the calibration inputs (NHWC floats), from the float model in tract:
/// the [`TAIL`] and `1 - TAIL` quantiles of all the tensor's values (two passes: global
/// minimum and maximum, then a histogram between them).
pub fn calibrate(
    proto: &ModelProto,
    input: Shape,
    names: &[String],
    inputs: &[Vec<f32>],
) -> facegender_pipeline::Result<HashMap<String, (f32, f32)>> {
    use rayon::prelude::*;
    let mut p = proto.clone();
    let g = p.graph.as_mut().context("no graph")?;
    g.output = names
        .iter()
        .map(|n| ValueInfoProto {
            name: n.clone(),
            ..Default::default()
        })
        .collect();
    let shape = [1, input.h as usize, input.w as usize, input.c as usize];
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&p)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let run = |x: &Vec<f32>| -> facegender_pipeline::Result<Vec<Vec<f32>>> {
        let out = plan.run(tvec!(Tensor::from_shape(&shape, x)?.into()))?;
        out.iter()
            .map(|t| Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
            .collect()
    };
    let k = names.len();
    // pass 1: global extremes, and the per-image extremes summed (for their mean)
    type Ext = Vec<(f32, f32, f64, f64)>;
    let pass1: Ext = inputs
        .par_iter()
        .map(|x| -> facegender_pipeline::Result<Ext> {
            Ok(run(x)?
                .iter()
                .map(|v| {
                    let (a, b) = v
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    (a, b, a as f64, b as f64)
                })
                .collect())
        })
        .try_reduce(
            || vec![(f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0); k],
            |a, b| {
                Ok(a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x.0.min(y.0), x.1.max(y.1), x.2 + y.2, x.3 + y.3))
                    .collect())
            },
        )?;
    let extremes: Vec<(f32, f32)> = pass1.iter().map(|e| (e.0, e.1)).collect();
    let n = inputs.len().max(1) as f64;
    let averaged: Vec<(f32, f32)> = pass1
        .iter()
        .map(|e| ((e.2 / n) as f32, (e.3 / n) as f32))
        .collect();
    // pass 2: histograms between them
    let bin = |lo: f32, hi: f32, v: f32| {
        (((v - lo) / (hi - lo).max(1e-12)) * BINS as f32).clamp(0.0, (BINS - 1) as f32) as usize
    };
    let hist = inputs
        .par_iter()
        .map(|x| -> facegender_pipeline::Result<Vec<Vec<u64>>> {
            Ok(run(x)?
                .iter()
                .zip(&extremes)
                .map(|(v, &(lo, hi))| {
                    let mut h = vec![0u64; BINS];
                    for &x in v {
                        h[bin(lo, hi, x)] += 1;
                    }
                    h
                })
                .collect())
        })
        .try_reduce(
            || vec![vec![0u64; BINS]; k],
            |a, b| {
                Ok(a.iter()
                    .zip(&b)
                    .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p + q).collect())
                    .collect())
            },
        )?;
    let ranges = hist.iter().zip(&extremes).map(|(h, &(lo, hi))| {
        let total: u64 = h.iter().sum();
        let cut = (total as f64 * TAIL) as u64;
        let width = (hi - lo) / BINS as f32;
        let (mut acc, mut first) = (0u64, 0usize);
        while first < BINS - 1 && acc + h[first] <= cut {
            acc += h[first];
            first += 1;
        }
        let (mut acc, mut last) = (0u64, BINS - 1);
        while last > first && acc + h[last] <= cut {
            acc += h[last];
            last -= 1;
        }
        (lo + first as f32 * width, lo + (last + 1) as f32 * width)
    });
    // Graph outputs (e.g. detection score logits) have tails far below anything that matters
    // (sigmoid(-30) is 1e-13) and no later layer to protect: the mean per-image extremes suit them.
    Ok(names
        .iter()
        .cloned()
        .zip(ranges.zip(averaged))
        .map(|(name, (pct, avg))| {
            let r = if output_fed(proto, &name).is_some() {
                avg
            } else {
                pct
            };
            (name, r)
        })
        .collect())
}

/// The graph output that `name` is, or feeds through reshapes/transposes only.
pub fn output_fed(proto: &ModelProto, name: &str) -> Option<usize> {
    let g = proto.graph.as_ref()?;
    let mut cur = name.to_string();
    for _ in 0..4 {
        if let Some(k) = g.output.iter().position(|o| o.name == cur) {
            return Some(k);
        }
        let next: Vec<&tract_onnx::pb::NodeProto> =
            g.node.iter().filter(|n| n.input.contains(&cur)).collect();
        match next.as_slice() {
            [n] if matches!(n.op_type.as_str(), "Transpose" | "Reshape") => {
                cur = n.output[0].clone()
            }
            _ => return None,
        }
    }
    None
}

/// A conv or pool node's window: a `kh` x `kw` kernel with the node's strides and pads (each
/// must fit the core's u8 fields).
fn window(n: &NodeProto, kh: usize, kw: usize) -> facegender_pipeline::Result<Window> {
    let s = attr_ints(n, "strides").unwrap_or(vec![1, 1]);
    let p = attr_ints(n, "pads").unwrap_or(vec![0; 4]);
    facegender_pipeline::ensure!(
        s.len() == 2 && p.len() == 4,
        "{} node {:?}: strides or pads are not 2-D",
        n.op_type,
        n.name
    );
    let b = |v: i64| {
        u8::try_from(v)
            .with_context(|| format!("{} node {:?}: {v} out of range", n.op_type, n.name))
    };
    Ok(Window {
        kh: b(kh as i64)?,
        kw: b(kw as i64)?,
        sh: b(s[0])?,
        sw: b(s[1])?,
        pad_top: b(p[0])?,
        pad_left: b(p[1])?,
        pad_bottom: b(p[2])?,
        pad_right: b(p[3])?,
    })
}

/// Converts the graph to an int8 model; `input_q` quantises the (NHWC) input. Outputs are the
/// graph's outputs, in order, as NHWC tensors (the reshapes are no-ops in NHWC).
pub fn quantize(
    proto: &ModelProto,
    input: Shape,
    input_q: QParams,
    ranges: &HashMap<String, (f32, f32)>,
) -> facegender_pipeline::Result<ModelBuilder> {
    let gp = proto.graph.as_ref().context("no graph")?;
    let g = Graph::new(gp);
    let input_name = gp
        .input
        .iter()
        .map(|i| i.name.as_str())
        .find(|n| !g.inits.contains_key(n))
        .context("the graph has no input")?;
    let mut b = ModelBuilder::new(input, input_q);
    let mut t: HashMap<String, u16> = HashMap::from([(input_name.to_string(), 0)]);
    let mut zeros: HashMap<String, u16> = HashMap::new(); // ConstantOfShape outputs: channel count
    let get = |t: &HashMap<String, u16>, n: &str| {
        t.get(n)
            .copied()
            .with_context(|| format!("tensor {n} is not produced by a supported node"))
    };
    let range = |n: &str| {
        ranges
            .get(n)
            .copied()
            .with_context(|| format!("no calibration range for {n}"))
    };
    // a Conv or Add writes the output of the ReLU after it, if any: its name, scale and clamp
    let fused_output = |n: &NodeProto| -> facegender_pipeline::Result<(String, QParams, Clamp)> {
        let (out, relu) = match g.relu_after(&n.output[0]) {
            Some(r) => (r.to_string(), true),
            None => (n.output[0].clone(), false),
        };
        let (lo, hi) = range(&out)?;
        Ok(if relu {
            let q = relu_q(hi, Scale::Exact);
            (out, q, Clamp::relu(q))
        } else {
            (out, range_q(lo, hi, Scale::Exact), Clamp::NONE)
        })
    };
    let e = |e: facegender_core::nn::write::WriteError| facegender_pipeline::invalid!("{e}");
    for n in &gp.node {
        let name = || format!("{} node {:?}", n.op_type, n.name);
        match n.op_type.as_str() {
            "Transpose" | "Reshape" => {
                // NHWC <-> NCHW shuffles and the output reshapes are identities on NHWC data
                let perm = attr_ints(n, "perm").unwrap_or_default();
                let ok = n.op_type == "Reshape"
                    || (n.input[0] == input_name && perm == [0, 3, 1, 2])
                    || perm == [0, 2, 3, 1];
                facegender_pipeline::ensure!(ok, "{}: unsupported transpose {perm:?}", name());
                let x = get(&t, &n.input[0])?;
                t.insert(n.output[0].clone(), x);
            }
            "ConstantOfShape" => {
                let shape = g
                    .inits
                    .get(n.input[0].as_str())
                    .map(|s| int64s(s))
                    .with_context(|| format!("{}: shape must be constant", name()))?;
                facegender_pipeline::ensure!(
                    shape.len() == 4,
                    "{}: expected an NCHW shape",
                    name()
                );
                zeros.insert(n.output[0].clone(), u16::try_from(shape[1])?);
            }
            "Concat" => {
                facegender_pipeline::ensure!(
                    attr_int(n, "axis") == Some(1) && n.input.len() == 2,
                    "{}: only channel concat with zeros",
                    name()
                );
                let x = get(&t, &n.input[0])?;
                let extra = *zeros
                    .get(&n.input[1])
                    .with_context(|| format!("{}: second input must be ConstantOfShape", name()))?;
                let c = b.shape(x).c;
                let y = b.pad_channels(x, c + extra).map_err(e)?;
                t.insert(n.output[0].clone(), y);
            }
            "Relu" => {
                facegender_pipeline::ensure!(
                    t.contains_key(&n.output[0]),
                    "{}: a ReLU must follow a Conv or an Add",
                    name()
                );
            }
            "MaxPool" => {
                let k = attr_ints(n, "kernel_shape").context("kernel_shape")?;
                facegender_pipeline::ensure!(k.len() == 2, "{}: kernel_shape is not 2-D", name());
                let win = window(n, k[0] as usize, k[1] as usize)?;
                let y = b.max_pool(get(&t, &n.input[0])?, win).map_err(e)?;
                t.insert(n.output[0].clone(), y);
            }
            "Add" => {
                let (x0, x1) = (get(&t, &n.input[0])?, get(&t, &n.input[1])?);
                let (out, q, clamp) = fused_output(n)?;
                let y = b.add(x0, x1, q, clamp).map_err(e)?;
                t.insert(out, y);
            }
            "Conv" => {
                let x = get(&t, &n.input[0])?;
                let w = g
                    .inits
                    .get(n.input[1].as_str())
                    .with_context(|| format!("{}: weights must be an initializer", name()))?;
                let dims = &w.dims;
                let wf = floats(w)?;
                let (oc, icg, kh, kw) = (
                    dims[0] as usize,
                    dims[1] as usize,
                    dims[2] as usize,
                    dims[3] as usize,
                );
                let bias =
                    match n.input.get(2).filter(|s| !s.is_empty()) {
                        Some(bn) => floats(g.inits.get(bn.as_str()).with_context(|| {
                            format!("{}: bias must be an initializer", name())
                        })?)?,
                        None => vec![0.0; oc],
                    };
                let group = attr_int(n, "group").unwrap_or(1) as usize;
                facegender_pipeline::ensure!(
                    attr_ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1)),
                    "{}: dilation",
                    name()
                );
                let win = window(n, kh, kw)?;
                let (out, q, clamp) = fused_output(n)?;
                let xq = b.qparams(x);
                let cin = b.shape(x).c as usize;
                let depthwise = group != 1 && group == cin && oc == cin && icg == 1;
                let mut wt = vec![0f32; wf.len()];
                if group == 1 {
                    facegender_pipeline::ensure!(
                        icg == cin,
                        "{}: {cin} input channels, weights for {icg}",
                        name()
                    );
                    // [oc][ic][kh][kw] -> [oc][kh][kw][ic]
                    for o in 0..oc {
                        for i in 0..cin {
                            for y in 0..kh {
                                for xx in 0..kw {
                                    wt[((o * kh + y) * kw + xx) * cin + i] =
                                        wf[((o * cin + i) * kh + y) * kw + xx];
                                }
                            }
                        }
                    }
                } else if depthwise {
                    // [c][1][kh][kw] -> [kh][kw][c]
                    for c in 0..oc {
                        for y in 0..kh {
                            for xx in 0..kw {
                                wt[(y * kw + xx) * oc + c] = wf[(c * kh + y) * kw + xx];
                            }
                        }
                    }
                } else {
                    bail!("{}: group {group} is neither 1 nor depthwise", name());
                }
                let p = quantize::params(&wt, &bias, oc, depthwise, xq.scale);
                let op = if depthwise {
                    OpKind::DepthwiseConv2d
                } else {
                    OpKind::Conv2d
                };
                let y = b.conv(op, x, win, q, clamp, p).map_err(e)?;
                t.insert(out, y);
            }
            other => bail!("{}: unsupported operator {other}", name()),
        }
    }
    for o in &gp.output {
        b.output(get(&t, &o.name)?);
    }
    Ok(b)
}

/// Names of the tensors [`calibrate`] must measure for [`quantize()`].
pub fn calibration_names(proto: &ModelProto) -> facegender_pipeline::Result<Vec<String>> {
    let g = Graph::new(proto.graph.as_ref().context("no graph")?);
    Ok(materialised(&g))
}

/// Adds `delta[c]` to output channel `c`'s bias of the conv that produces graph output `output`
/// (through reshapes/transposes): used to correct the mean int8 error of a head.
pub fn shift_output_bias(
    proto: &mut ModelProto,
    output: usize,
    delta: &[f32],
) -> facegender_pipeline::Result<()> {
    let conv = {
        let g = proto.graph.as_ref().context("no graph")?;
        g.node
            .iter()
            .find(|n| n.op_type == "Conv" && output_fed(proto, &n.output[0]) == Some(output))
            .with_context(|| format!("no Conv feeds output {output}"))?
            .clone()
    };
    let bias = conv
        .input
        .get(2)
        .with_context(|| format!("Conv {:?} has no bias", conv.name))?;
    let g = proto.graph.as_mut().context("no graph")?;
    let t = g
        .initializer
        .iter_mut()
        .find(|t| &t.name == bias)
        .with_context(|| format!("bias {bias} is not an initializer"))?;
    let mut b = floats(t)?;
    facegender_pipeline::ensure!(
        b.len() == delta.len(),
        "bias {bias} has {} channels, correction {}",
        b.len(),
        delta.len()
    );
    for (x, d) in b.iter_mut().zip(delta) {
        *x += d;
    }
    set_floats(t, &b);
    Ok(())
}

fn set_floats(t: &mut TensorProto, v: &[f32]) {
    t.float_data.clear();
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
}

/// Cross-layer equalisation (Nagel et al., "Data-Free Quantization", 2019): for every depthwise
/// conv feeding only a 1x1 conv (no non-linearity between, as in BlazeFace's blocks), scales
/// depthwise channel `c` by `1 / s_c` and the 1x1 conv's input channel `c` by `s_c`, with
/// `s_c = sqrt(r1_c / r2_c)` (`r1`, `r2`: the channel's weight ranges in each layer). The float
/// function is unchanged; the per-tensor activation between the two layers no longer has a few
/// channels that dwarf the rest. Returns how many layer pairs were equalised.
pub fn equalize(proto: &mut ModelProto) -> facegender_pipeline::Result<usize> {
    let g = proto.graph.as_mut().context("no graph")?;
    let mut pairs = Vec::new();
    {
        let graph = Graph::new(g);
        for (i, n) in g.node.iter().enumerate() {
            if n.op_type != "Conv" || attr_int(n, "group").unwrap_or(1) <= 1 {
                continue;
            }
            let Some(next) = graph.sole_consumer(&n.output[0]) else {
                continue;
            };
            let j = g
                .node
                .iter()
                .position(|m| std::ptr::eq(m, next))
                .unwrap_or(usize::MAX);
            let k = attr_ints(next, "kernel_shape").unwrap_or_default();
            if next.op_type == "Conv" && attr_int(next, "group").unwrap_or(1) == 1 && k == [1, 1] {
                pairs.push((i, j));
            }
        }
    }
    let index: HashMap<String, usize> = g
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    for &(i, j) in &pairs {
        let (w1n, w2n) = (g.node[i].input[1].clone(), g.node[j].input[1].clone());
        let b1n = g.node[i].input.get(2).filter(|s| !s.is_empty()).cloned();
        let (i1, i2) = (index[&w1n], index[&w2n]);
        let mut w1 = floats(&g.initializer[i1])?;
        let mut w2 = floats(&g.initializer[i2])?;
        let c = g.initializer[i1].dims[0] as usize;
        let per1 = w1.len() / c;
        let o = g.initializer[i2].dims[0] as usize;
        facegender_pipeline::ensure!(
            g.initializer[i2].dims[1] as usize == c,
            "equalise: channel mismatch at {}",
            g.node[j].name
        );
        for ch in 0..c {
            let r1 = w1[ch * per1..(ch + 1) * per1]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            let r2 = (0..o).map(|oo| w2[oo * c + ch].abs()).fold(0f32, f32::max);
            if r1 <= 0.0 || r2 <= 0.0 {
                continue;
            }
            let s = (r1 / r2).sqrt();
            w1[ch * per1..(ch + 1) * per1]
                .iter_mut()
                .for_each(|v| *v /= s);
            for oo in 0..o {
                w2[oo * c + ch] *= s;
            }
            if let Some(b) = &b1n {
                let ib = index[b];
                let mut bv = floats(&g.initializer[ib])?;
                bv[ch] /= s;
                set_floats(&mut g.initializer[ib], &bv);
            }
        }
        set_floats(&mut g.initializer[i1], &w1);
        set_floats(&mut g.initializer[i2], &w2);
    }
    Ok(pairs.len())
}
