//! The network in plain Rust loops (direct convolution, f32), layer by layer as dlib defines
//! them: the second engine, which checks tract's graph and which the benchmark times beside it.

use crate::network::{DESCRIPTOR_LEN, Layer, Network};

/// A tensor: `[channels][rows][cols]` and its shape.
#[derive(Clone, Debug)]
struct T {
    v: Vec<f32>,
    d: [usize; 3],
}

fn conv(x: &T, filters: usize, k: usize, stride: usize, w: &[f32], bias: &[f32]) -> T {
    let [c_in, h, wd] = x.d;
    let pad = if stride == 1 { k / 2 } else { 0 };
    let out = |n: usize| (n + 2 * pad - k) / stride + 1;
    let (oh, ow) = (out(h), out(wd));
    let mut y = vec![0f32; filters * oh * ow];
    for f in 0..filters {
        let plane = &mut y[f * oh * ow..(f + 1) * oh * ow];
        plane.fill(bias[f]);
        for c in 0..c_in {
            let src = &x.v[c * h * wd..(c + 1) * h * wd];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = w[((f * c_in + c) * k + ky) * k + kx];
                    for oy in 0..oh {
                        let Some(iy) = (oy * stride + ky).checked_sub(pad).filter(|&i| i < h)
                        else {
                            continue;
                        };
                        let row = &src[iy * wd..(iy + 1) * wd];
                        let dst = &mut plane[oy * ow..(oy + 1) * ow];
                        for (ox, o) in dst.iter_mut().enumerate() {
                            if let Some(ix) =
                                (ox * stride + kx).checked_sub(pad).filter(|&i| i < wd)
                            {
                                *o += wv * row[ix];
                            }
                        }
                    }
                }
            }
        }
    }
    T {
        v: y,
        d: [filters, oh, ow],
    }
}

fn pool(x: &T, k: usize, stride: usize, max: bool) -> T {
    let [c, h, w] = x.d;
    let (oh, ow) = ((h - k) / stride + 1, (w - k) / stride + 1);
    let mut y = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let cells = (0..k)
                    .flat_map(|ky| (0..k).map(move |kx| (oy * stride + ky, ox * stride + kx)));
                let vals = cells.map(|(iy, ix)| x.v[(ch * h + iy) * w + ix]);
                y.push(if max {
                    vals.fold(f32::NEG_INFINITY, f32::max)
                } else {
                    vals.sum::<f32>() / (k * k) as f32
                });
            }
        }
    }
    T {
        v: y,
        d: [c, oh, ow],
    }
}

/// `a + b`, each zero-extended to the larger size in every dimension.
fn add(a: &T, b: &T) -> T {
    let d = [0, 1, 2].map(|i| a.d[i].max(b.d[i]));
    let at = |t: &T, c: usize, y: usize, x: usize| {
        if c < t.d[0] && y < t.d[1] && x < t.d[2] {
            t.v[(c * t.d[1] + y) * t.d[2] + x]
        } else {
            0.0
        }
    };
    let mut v = Vec::with_capacity(d[0] * d[1] * d[2]);
    for c in 0..d[0] {
        for y in 0..d[1] {
            for x in 0..d[2] {
                v.push(at(a, c, y, x) + at(b, c, y, x));
            }
        }
    }
    T { v, d }
}

/// The descriptor of a `size` x `size` packed RGB chip.
pub fn describe(net: &Network, chip_rgb: &[u8]) -> Option<[f32; DESCRIPTOR_LEN]> {
    let n = net.size * net.size;
    if chip_rgb.len() != 3 * n {
        return None;
    }
    let mut v = vec![0f32; 3 * n];
    for (i, px) in chip_rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            v[c * n + i] = (px[c] as f32 - net.mean_rgb[c]) / 256.0;
        }
    }
    let mut x = T {
        v,
        d: [3, net.size, net.size],
    };
    let mut tags: [Option<T>; 3] = Default::default();
    for layer in &net.layers {
        x = match layer {
            Layer::Conv {
                filters,
                k,
                stride,
                weights,
                bias,
                ..
            } => conv(&x, *filters, *k, *stride, weights, bias),
            Layer::Affine { gamma, beta } => {
                let plane = x.d[1] * x.d[2];
                for (c, chunk) in x.v.chunks_mut(plane).enumerate() {
                    chunk.iter_mut().for_each(|v| *v = gamma[c] * *v + beta[c]);
                }
                x
            }
            Layer::Relu => {
                x.v.iter_mut().for_each(|v| *v = v.max(0.0));
                x
            }
            Layer::MaxPool { k, stride } => pool(&x, *k, *stride, true),
            Layer::AvgPool { k: 0, .. } => {
                let plane = x.d[1] * x.d[2];
                let v =
                    x.v.chunks(plane)
                        .map(|c| c.iter().sum::<f32>() / plane as f32)
                        .collect();
                T {
                    v,
                    d: [x.d[0], 1, 1],
                }
            }
            Layer::AvgPool { k, stride } => pool(&x, *k, *stride, false),
            Layer::AddPrev { tag } => add(&x, tags[*tag as usize].as_ref()?),
            Layer::Tag(t) => {
                tags[*t as usize] = Some(x.clone());
                x
            }
            Layer::Skip(t) => tags[*t as usize].clone()?,
            Layer::Fc {
                inputs,
                outputs,
                weights,
            } => {
                if x.v.len() != *inputs {
                    return None;
                }
                let v = (0..*outputs)
                    .map(|o| {
                        (0..*inputs)
                            .map(|i| x.v[i] * weights[i * outputs + o])
                            .sum()
                    })
                    .collect();
                T {
                    v,
                    d: [*outputs, 1, 1],
                }
            }
        };
    }
    x.v.try_into().ok()
}
