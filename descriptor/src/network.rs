//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`): its
//! architecture, and the weights read from dlib's own serialisation.
//!
//! dlib writes a network as nested templates: every wrapper's version from the outermost (the
//! loss) inwards, then the input layer, then each layer's details from the input outwards. Tags
//! and skips carry no data, so the file alone does not say which tensor a skip returns to or an
//! addition adds; the architecture does, exactly as in dlib's `dnn_face_recognition_ex.cpp`:
//!
//! ```text
//! block<N,stride>  = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,stride,stride,SUBNET>>>>>
//! ares<N>          = relu<add_prev1<block<N,1,tag1<SUBNET>>>>
//! ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
//! net = loss_metric<fc_no_bias<128,avg_pool_everything<
//!         ares_down<256, ares<256>x2, ares_down<256>, ares<128>x2, ares_down<128>,
//!         ares<64>x3, ares_down<64>, ares<32>x3,
//!         max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>
//! ```
//!
//! Every stored hyper-parameter (filters, kernel, stride, padding, inputs) is checked against
//! this; a file of another network, or a damaged one, is a typed error naming the byte.

use facegender_core::dlib::{DlibError, Reader};

/// One layer, from the input outwards.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// dlib's `con_`: cross-correlation, padding `k / 2` at stride 1 and 0 otherwise.
    /// `weights` is `[out][in][k][k]`.
    Conv {
        inputs: usize,
        filters: usize,
        k: usize,
        stride: usize,
        weights: Vec<f32>,
        bias: Vec<f32>,
    },
    /// Per channel `gamma * x + beta` (batch norm frozen at the end of training).
    Affine {
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
    Relu,
    /// Max over `k` x `k` windows, no padding.
    MaxPool {
        k: usize,
        stride: usize,
    },
    /// Mean over `k` x `k` windows, no padding; `k == 0` is the mean over the whole map.
    AvgPool {
        k: usize,
        stride: usize,
    },
    /// Adds the tensor tagged `tag`; where the shapes differ, the missing cells count as 0 and the
    /// result takes the larger size in every dimension (dlib's `tt::add`).
    AddPrev {
        tag: u8,
    },
    /// Remembers the current tensor as `tag`.
    Tag(u8),
    /// Continues from the tensor tagged `tag`.
    Skip(u8),
    /// Fully connected, no bias: `out[j] = sum_i x[i] * weights[i][j]`.
    Fc {
        inputs: usize,
        outputs: usize,
        weights: Vec<f32>,
    },
}

/// The network read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// `input_rgb_image_sized`'s means; the input is `(pixel - mean) / 256`.
    pub mean_rgb: [f32; 3],
    /// The input's side in pixels (150).
    pub size: usize,
    pub layers: Vec<Layer>,
}

/// Side of the chip the network takes.
pub const CHIP_SIZE: usize = 150;
/// Length of a descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// The architecture without weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    Conv {
        filters: usize,
        k: usize,
        stride: usize,
    },
    Affine,
    Relu,
    MaxPool {
        k: usize,
        stride: usize,
    },
    AvgPool {
        k: usize,
        stride: usize,
    },
    AddPrev(u8),
    Tag(u8),
    Skip(u8),
    Fc(usize),
}

fn block(s: &mut Vec<Spec>, filters: usize, stride: usize) {
    s.extend([
        Spec::Conv {
            filters,
            k: 3,
            stride,
        },
        Spec::Affine,
        Spec::Relu,
        Spec::Conv {
            filters,
            k: 3,
            stride: 1,
        },
        Spec::Affine,
    ]);
}

fn ares(s: &mut Vec<Spec>, filters: usize) {
    s.push(Spec::Tag(1));
    block(s, filters, 1);
    s.extend([Spec::AddPrev(1), Spec::Relu]);
}

fn ares_down(s: &mut Vec<Spec>, filters: usize) {
    s.push(Spec::Tag(1));
    block(s, filters, 2);
    s.extend([
        Spec::Tag(2),
        Spec::Skip(1),
        Spec::AvgPool { k: 2, stride: 2 },
        Spec::AddPrev(2),
        Spec::Relu,
    ]);
}

/// `anet_type` of `dnn_face_recognition_ex.cpp`, from the input outwards.
fn architecture() -> Vec<Spec> {
    let mut s = vec![
        Spec::Conv {
            filters: 32,
            k: 7,
            stride: 2,
        },
        Spec::Affine,
        Spec::Relu,
        Spec::MaxPool { k: 3, stride: 2 },
    ];
    for (filters, down, plain) in [
        (32, false, 3),
        (64, true, 3),
        (128, true, 2),
        (256, true, 2),
    ] {
        if down {
            ares_down(&mut s, filters);
        }
        for _ in 0..plain {
            ares(&mut s, filters);
        }
    }
    ares_down(&mut s, 256);
    s.extend([Spec::AvgPool { k: 0, stride: 1 }, Spec::Fc(DESCRIPTOR_LEN)]);
    s
}

/// dlib's `alias_tensor`: version 1 and four dimensions (its data lives in `params`).
fn alias(r: &mut Reader<'_>) -> Result<[i64; 4], DlibError> {
    if r.int(4)? != 1 {
        return r.err("unsupported alias_tensor version");
    }
    let mut d = [0; 4];
    for v in &mut d {
        *v = r.int(8)?;
    }
    Ok(d)
}

/// The four learning-rate and weight-decay multipliers (doubles): read and dropped.
fn multipliers(r: &mut Reader<'_>) -> Result<(), DlibError> {
    for _ in 0..4 {
        r.float()?;
    }
    Ok(())
}

fn expect(r: &Reader<'_>, ok: bool, what: &'static str) -> Result<(), DlibError> {
    if ok { Ok(()) } else { r.err(what) }
}

fn version<'a>(r: &mut Reader<'_>, allowed: &[&'a str]) -> Result<&'a str, DlibError> {
    let v = r.string()?;
    match allowed.iter().find(|a| **a == v) {
        Some(a) => Ok(a),
        None => r.err("unexpected layer type or version (not dlib's face-recognition ResNet)"),
    }
}

/// `con_`'s details; `inputs` is the channel count reaching it.
fn conv(
    r: &mut Reader<'_>,
    inputs: usize,
    filters: usize,
    k: usize,
    stride: usize,
) -> Result<Layer, DlibError> {
    let v = version(r, &["con_4", "con_5"])?;
    let (_, params) = r.tensor()?;
    let stored = [r.int(8)?, r.int(8)?, r.int(8)?];
    expect(
        r,
        stored == [filters as i64, k as i64, k as i64],
        "convolution size differs",
    )?;
    let strides = [r.int(4)?, r.int(4)?];
    let pad = if stride == 1 { k / 2 } else { 0 } as i64;
    let padding = [r.int(4)?, r.int(4)?];
    expect(
        r,
        strides == [stride as i64; 2] && padding == [pad; 2],
        "convolution stride or padding differs",
    )?;
    let w = alias(r)?;
    expect(
        r,
        w == [filters as i64, inputs as i64, k as i64, k as i64],
        "convolution inputs differ",
    )?;
    let b = alias(r)?;
    multipliers(r)?;
    let use_bias = if v == "con_5" { r.bool()? } else { true };
    let n_w = filters * inputs * k * k;
    let n_b = if use_bias { filters } else { 0 };
    expect(
        r,
        !use_bias || b == [1, filters as i64, 1, 1],
        "convolution bias size differs",
    )?;
    expect(
        r,
        params.len() == n_w + n_b,
        "convolution parameter count differs",
    )?;
    let bias = if use_bias {
        params[n_w..].to_vec()
    } else {
        vec![0.0; filters]
    };
    Ok(Layer::Conv {
        inputs,
        filters,
        k,
        stride,
        weights: params[..n_w].to_vec(),
        bias,
    })
}

fn affine(r: &mut Reader<'_>, channels: usize) -> Result<Layer, DlibError> {
    let v = version(r, &["affine_", "affine_2"])?;
    let (_, params) = r.tensor()?;
    let (g, b) = (alias(r)?, alias(r)?);
    let shape = [1, channels as i64, 1, 1];
    expect(r, g == shape && b == shape, "affine size differs")?;
    // dlib's `layer_mode`: CONV_MODE = 0 (per channel).
    let mode = r.int(4)?;
    expect(r, mode == 0, "affine layer is not per channel")?;
    if v == "affine_2" {
        let disabled = r.bool()?;
        expect(r, !disabled, "affine layer is disabled")?;
    }
    expect(
        r,
        params.len() == 2 * channels,
        "affine parameter count differs",
    )?;
    Ok(Layer::Affine {
        gamma: params[..channels].to_vec(),
        beta: params[channels..].to_vec(),
    })
}

fn pool(r: &mut Reader<'_>, name: &str, k: usize, stride: usize) -> Result<(), DlibError> {
    version(r, &[name])?;
    let stored = [
        r.int(8)?,
        r.int(8)?,
        r.int(4)?,
        r.int(4)?,
        r.int(4)?,
        r.int(4)?,
    ];
    let k = k as i64;
    let s = stride as i64;
    expect(
        r,
        stored == [k, k, s, s, 0, 0],
        "pooling size, stride or padding differs",
    )
}

fn fc(r: &mut Reader<'_>, inputs: usize, outputs: usize) -> Result<Layer, DlibError> {
    let v = version(r, &["fc_2", "fc_3"])?;
    let (o, i) = (r.uint()?, r.uint()?);
    expect(
        r,
        (o, i) == (outputs as u64, inputs as u64),
        "fully connected size differs",
    )?;
    let (_, params) = r.tensor()?;
    let w = alias(r)?;
    expect(
        r,
        w == [inputs as i64, outputs as i64, 1, 1],
        "fully connected weights differ",
    )?;
    alias(r)?;
    // dlib's `fc_bias_mode`: FC_NO_BIAS = 1.
    let mode = r.int(4)?;
    expect(r, mode == 1, "fully connected layer has a bias")?;
    multipliers(r)?;
    if v == "fc_3" {
        r.bool()?;
    }
    expect(
        r,
        params.len() == inputs * outputs,
        "fully connected parameter count differs",
    )?;
    Ok(Layer::Fc {
        inputs,
        outputs,
        weights: params,
    })
}

impl Network {
    /// Multiply-accumulates per chip (convolutions and the fully connected layer).
    pub fn macs(&self) -> u64 {
        let mut dims = [3usize, self.size, self.size];
        let mut tags = [[0usize; 3]; 3];
        let mut macs = 0u64;
        for l in &self.layers {
            match l {
                Layer::Conv {
                    inputs,
                    filters,
                    k,
                    stride,
                    ..
                } => {
                    let pad = if *stride == 1 { k / 2 } else { 0 };
                    let out = |d: usize| (d + 2 * pad - k) / stride + 1;
                    dims = [*filters, out(dims[1]), out(dims[2])];
                    macs += (dims[0] * dims[1] * dims[2] * inputs * k * k) as u64;
                }
                Layer::MaxPool { k, stride } | Layer::AvgPool { k, stride } if *k > 0 => {
                    dims = [
                        dims[0],
                        (dims[1] - k) / stride + 1,
                        (dims[2] - k) / stride + 1,
                    ];
                }
                Layer::MaxPool { .. } | Layer::AvgPool { .. } => dims = [dims[0], 1, 1],
                Layer::AddPrev { tag } => {
                    let t = tags[*tag as usize];
                    dims = [0, 1, 2].map(|i| dims[i].max(t[i]));
                }
                Layer::Tag(t) => tags[*t as usize] = dims,
                Layer::Skip(t) => dims = tags[*t as usize],
                Layer::Fc {
                    inputs, outputs, ..
                } => {
                    macs += (inputs * outputs) as u64;
                    dims = [*outputs, 1, 1];
                }
                Layer::Affine { .. } | Layer::Relu => {}
            }
        }
        macs
    }

    /// Reads dlib's serialised `anet_type`. The whole input must be consumed.
    pub fn parse(bytes: &[u8]) -> Result<Self, DlibError> {
        let spec = architecture();
        let mut r = Reader::new(bytes, "face-recognition network");
        let loss_version = r.int(4)?;
        expect(&r, loss_version == 1, "unsupported loss layer version")?;
        if version(&mut r, &["loss_metric_", "loss_metric_2"])? == "loss_metric_2" {
            r.float()?; // margin
            r.float()?; // distance threshold
        }
        // Every wrapper's version, outermost first; the innermost layer holds the input.
        let mut versions = vec![0i64; spec.len()];
        for (i, s) in spec.iter().enumerate().rev() {
            let v = r.int(4)?;
            let ok = match s {
                Spec::Tag(_) | Spec::Skip(_) => v == 1,
                _ if i == 0 => (2..=3).contains(&v),
                _ => (1..=2).contains(&v),
            };
            expect(
                &r,
                ok,
                "unexpected layer version (not dlib's face-recognition ResNet)",
            )?;
            versions[i] = v;
        }
        version(&mut r, &["input_rgb_image_sized"])?;
        let mean_rgb = [r.float()?, r.float()?, r.float()?];
        let size = (r.uint()?, r.uint()?);
        expect(
            &r,
            size == (CHIP_SIZE as u64, CHIP_SIZE as u64),
            "input is not 150 x 150",
        )?;

        // Channel counts as the tensors flow, to check each layer's inputs.
        let mut channels = 3usize;
        let mut tagged = [0usize; 3];
        let mut layers = Vec::with_capacity(spec.len());
        for (i, &s) in spec.iter().enumerate() {
            let layer = match s {
                Spec::Tag(t) => {
                    tagged[t as usize] = channels;
                    Layer::Tag(t)
                }
                Spec::Skip(t) => {
                    channels = tagged[t as usize];
                    Layer::Skip(t)
                }
                Spec::Conv { filters, k, stride } => {
                    let l = conv(&mut r, channels, filters, k, stride)?;
                    channels = filters;
                    l
                }
                Spec::Affine => affine(&mut r, channels)?,
                Spec::Relu => {
                    version(&mut r, &["relu_"])?;
                    Layer::Relu
                }
                Spec::MaxPool { k, stride } => {
                    pool(&mut r, "max_pool_2", k, stride)?;
                    Layer::MaxPool { k, stride }
                }
                Spec::AvgPool { k, stride } => {
                    pool(&mut r, "avg_pool_2", k, stride)?;
                    Layer::AvgPool { k, stride }
                }
                Spec::AddPrev(t) => {
                    version(&mut r, &["add_prev_"])?;
                    channels = channels.max(tagged[t as usize]);
                    Layer::AddPrev { tag: t }
                }
                Spec::Fc(outputs) => {
                    let l = fc(&mut r, channels, outputs)?;
                    channels = outputs;
                    l
                }
            };
            if !matches!(s, Spec::Tag(_) | Spec::Skip(_)) {
                // add_layer's state: three flags, x_grad and cached_output, then the input
                // layer's grad_final and sample expansion factor, or params_grad (version 2).
                for _ in 0..3 {
                    r.bool()?;
                }
                r.tensor()?;
                r.tensor()?;
                if i == 0 {
                    r.tensor()?;
                    if versions[0] == 3 {
                        r.uint()?;
                    }
                } else if versions[i] == 2 {
                    r.tensor()?;
                }
            }
            layers.push(layer);
        }
        r.finish()?;
        Ok(Self {
            mean_rgb,
            size: CHIP_SIZE,
            layers,
        })
    }
}
