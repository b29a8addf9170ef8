//! The network as a standard ONNX graph (opset 13), optimised and run by tract.
//!
//! | dlib | ONNX |
//! |---|---|
//! | `con_` | `Conv` (pads `k / 2` at stride 1, none at stride 2) |
//! | `affine_` | `Mul` by gamma, `Add` beta (kept apart from the convolution, as dlib computes it) |
//! | `relu_`, `max_pool_`, `avg_pool_` | `Relu`, `MaxPool`, `AveragePool` (no padding) |
//! | `avg_pool_everything` | `GlobalAveragePool` |
//! | `add_prev_` | `Pad` (zeros after the smaller operand's channels, rows and columns) then `Add` |
//! | `fc_no_bias` | `Flatten`, `MatMul` |

use facegender_core::nn::onnx::{model_proto, node, tensor, value_info};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;

use crate::network::{DESCRIPTOR_LEN, Layer, Network};

/// (channels, rows, cols) of a tensor.
type Dims = [usize; 3];

struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Builder {
    fn push(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<tract_onnx::pb::AttributeProto>,
    ) -> String {
        let out = format!("t{}", self.nodes.len());
        self.nodes.push(node(op, inputs, &out, attributes));
        out
    }

    fn init(&mut self, dims: &[i64], data: &[f32]) -> String {
        let name = format!("w{}", self.inits.len());
        self.inits.push(tensor(&name, dims, data));
        name
    }

    /// `x` of `from` zero-padded after its end to `to`.
    fn pad(&mut self, x: &str, from: Dims, to: Dims) -> String {
        if from == to {
            return x.into();
        }
        let pads: Vec<i64> = [0, 0, 0, 0, 0]
            .into_iter()
            .chain((0..3).map(|d| (to[d] - from[d]) as i64))
            .collect();
        let name = format!("p{}", self.inits.len());
        self.inits.push(tensor(&name, &[8], &pads[..]));
        self.push("Pad", &[x, &name], vec![])
    }
}

fn pooled(d: usize, k: usize, stride: usize) -> usize {
    (d - k) / stride + 1
}

/// The ONNX graph of `net`: input `chip` (f32, 1 x 3 x 150 x 150, already `(p - mean) / 256`),
/// output `descriptor` (f32, 1 x 128).
pub fn to_onnx(net: &Network) -> ModelProto {
    use facegender_core::nn::onnx::ints;
    let mut b = Builder {
        nodes: Vec::new(),
        inits: Vec::new(),
    };
    let mut x = String::from("chip");
    let mut dims: Dims = [3, net.size, net.size];
    let mut tags: [(String, Dims); 3] = Default::default();
    for layer in &net.layers {
        match layer {
            Layer::Conv {
                inputs,
                filters,
                k,
                stride,
                weights,
                bias,
            } => {
                let (k, s) = (*k, *stride);
                let pad = if s == 1 { k / 2 } else { 0 };
                let w = b.init(
                    &[*filters as i64, *inputs as i64, k as i64, k as i64],
                    weights,
                );
                let bias = b.init(&[*filters as i64], bias);
                let p = pad as i64;
                x = b.push(
                    "Conv",
                    &[&x, &w, &bias],
                    vec![
                        ints("kernel_shape", &[k as i64; 2]),
                        ints("strides", &[s as i64; 2]),
                        ints("pads", &[p; 4]),
                    ],
                );
                let out = |d: usize| (d + 2 * pad - k) / s + 1;
                dims = [*filters, out(dims[1]), out(dims[2])];
            }
            Layer::Affine { gamma, beta } => {
                let c = gamma.len() as i64;
                let g = b.init(&[c, 1, 1], gamma);
                let be = b.init(&[c, 1, 1], beta);
                let m = b.push("Mul", &[&x, &g], vec![]);
                x = b.push("Add", &[&m, &be], vec![]);
            }
            Layer::Relu => x = b.push("Relu", &[&x], vec![]),
            Layer::MaxPool { k, stride } | Layer::AvgPool { k, stride } if *k > 0 => {
                let op = if matches!(layer, Layer::MaxPool { .. }) {
                    "MaxPool"
                } else {
                    "AveragePool"
                };
                x = b.push(
                    op,
                    &[&x],
                    vec![
                        ints("kernel_shape", &[*k as i64; 2]),
                        ints("strides", &[*stride as i64; 2]),
                    ],
                );
                dims = [
                    dims[0],
                    pooled(dims[1], *k, *stride),
                    pooled(dims[2], *k, *stride),
                ];
            }
            Layer::MaxPool { .. } | Layer::AvgPool { .. } => {
                x = b.push("GlobalAveragePool", &[&x], vec![]);
                dims = [dims[0], 1, 1];
            }
            Layer::AddPrev { tag } => {
                let (t, tdims) = tags[*tag as usize].clone();
                let to = [0, 1, 2].map(|d| dims[d].max(tdims[d]));
                let a = b.pad(&x, dims, to);
                let c = b.pad(&t, tdims, to);
                x = b.push("Add", &[&a, &c], vec![]);
                dims = to;
            }
            Layer::Tag(t) => tags[*t as usize] = (x.clone(), dims),
            Layer::Skip(t) => (x, dims) = tags[*t as usize].clone(),
            Layer::Fc {
                inputs,
                outputs,
                weights,
            } => {
                let f = b.push("Flatten", &[&x], vec![]);
                let w = b.init(&[*inputs as i64, *outputs as i64], weights);
                x = b.push("MatMul", &[&f, &w], vec![]);
                dims = [*outputs, 1, 1];
            }
        }
    }
    // Name the last node's output.
    if let Some(last) = b.nodes.last_mut() {
        last.output = vec!["descriptor".into()];
    }
    let size = net.size as i64;
    model_proto(GraphProto {
        name: "dlib_face_recognition_resnet_v1".into(),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("chip", DataType::Float, &[1, 3, size, size])],
        output: vec![value_info(
            "descriptor",
            DataType::Float,
            &[1, DESCRIPTOR_LEN as i64],
        )],
        ..Default::default()
    })
}

/// The network optimised by tract, ready to describe chips (shareable across threads).
pub struct TractNet {
    plan: std::sync::Arc<TypedRunnableModel>,
    mean_rgb: [f32; 3],
    size: usize,
}

impl TractNet {
    pub fn new(net: &Network) -> TractResult<Self> {
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&to_onnx(net))?
            .into_optimized()?
            .into_runnable()?;
        Ok(Self {
            plan,
            mean_rgb: net.mean_rgb,
            size: net.size,
        })
    }

    /// The descriptor of one chip: `size` x `size` packed RGB.
    pub fn describe(&self, chip_rgb: &[u8]) -> TractResult<[f32; DESCRIPTOR_LEN]> {
        let n = self.size * self.size;
        anyhow::ensure!(
            chip_rgb.len() == n * 3,
            "chip is not {0} x {0} RGB",
            self.size
        );
        let mut planes = vec![0f32; 3 * n];
        for (i, px) in chip_rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // dlib's input_rgb_image: (p - mean) / 256, in f32 (the division is exact).
                planes[c * n + i] = (px[c] as f32 - self.mean_rgb[c]) / 256.0;
            }
        }
        let x = Tensor::from_shape(&[1, 3, self.size, self.size], &planes)?;
        let out = self.plan.run(tvec!(x.into()))?;
        let v = out[0].try_as_plain_ram()?.as_slice::<f32>()?;
        let mut d = [0f32; DESCRIPTOR_LEN];
        anyhow::ensure!(
            v.len() == DESCRIPTOR_LEN,
            "descriptor has {} values",
            v.len()
        );
        for (o, i) in d.iter_mut().zip(v.iter()) {
            *o = *i;
        }
        Ok(d)
    }
}
