//! Fast kernels against the reference, over random shapes including awkward ones.

use super::cases::{AWKWARD, ConvCase, conv_kernel};
use super::*;
use crate::nn::{Clamp, QParams, Rounding, Shape, Window};
use crate::quant::Requant;
use proptest::prelude::*;
use std::vec::Vec;

fn channel_bytes(bias: &[i32], m: &[f32]) -> Vec<u8> {
    let mut v = Vec::new();
    for (b, &m) in bias.iter().zip(m) {
        v.extend(ChannelParams::record(
            *b,
            1.0,
            Requant::from_f32(m).unwrap(),
        ));
    }
    v
}

/// A shared case and the seed its data is drawn from.
#[derive(Debug, Clone)]
struct Case {
    conv: ConvCase,
    seed: u64,
}

fn window_and_input() -> impl Strategy<Value = (Shape, Window)> {
    (
        1u16..12,
        1u16..12,
        1u16..21,
        1u8..6,
        1u8..6,
        1u8..3,
        1u8..3,
        any::<[bool; 4]>(),
    )
        .prop_filter_map("window must fit", |(h, w, c, kh, kw, sh, sw, pads)| {
            let win = Window::half_padded(kh, kw, sh, sw, pads);
            win.output_hw(h, w)?;
            Some((Shape::new(h, w, c), win))
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        window_and_input(),
        1u16..19,
        any::<i8>(),
        any::<i8>(),
        any::<(i8, i8)>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |((input, window), out_c, x_zp, y_zp, (a, b), exact, seed)| Case {
                conv: ConvCase {
                    input,
                    window,
                    out_c,
                    x_zp,
                    y_zp,
                    clamp: if a % 3 == 0 {
                        Clamp::NONE
                    } else {
                        Clamp {
                            min: a.min(b),
                            max: a.max(b),
                        }
                    },
                    rounding: if exact {
                        Rounding::Exact
                    } else {
                        Rounding::F32Product
                    },
                },
                seed,
            },
        )
}

/// Small deterministic generator (SplitMix64) so each case is reproducible from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        crate::nn::splitmix::next(&mut self.0)
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    fn bias(&mut self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| (self.next() % 20001) as i32 - 10000)
            .collect()
    }
    /// Mostly multipliers that keep outputs in range, one in eight large enough to saturate.
    fn multipliers(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let large = self.next().is_multiple_of(8);
                (self.next() % 10_000 + 1) as f32 * if large { 1.3e-2 } else { 1.3e-6 }
            })
            .collect()
    }
}

fn check_conv(c: &Case, op: u8) {
    let mut rng = Rng(c.seed);
    let (args, wlen) = c.conv.conv_args(op).unwrap();
    let output = args.output;
    let x = rng.i8s(c.conv.input.len());
    let weights = rng.i8s(wlen);
    let bias = rng.bias(output.c as usize);
    let ms = rng.multipliers(output.c as usize);
    let bytes = channel_bytes(&bias, &ms);
    let args = ConvArgs {
        weights: &weights,
        channels: ChannelParams::new(&bytes),
        ..args
    };
    let mut want = std::vec![0i8; output.len()];
    let mut got = std::vec![1i8; output.len()];
    conv_kernel::<Reference>(op)(&args, &x, &mut want);
    conv_kernel::<Fast>(op)(&args, &x, &mut got);
    // DualMac's fully connected is Fast's
    if op < 2 {
        let mut dual = std::vec![2i8; output.len()];
        conv_kernel::<DualMac>(op)(&args, &x, &mut dual);
        assert_eq!(want, dual, "DualMac {c:?}");
    }
    let mut inf = std::vec![3i8; output.len()];
    conv_kernel::<Inference>(op)(&args, &x, &mut inf);
    assert_eq!(want, inf, "Inference {c:?}");
    assert_eq!(want, got, "{c:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fast_conv2d_equals_reference(c in case()) { check_conv(&c, 0) }

    #[test]
    fn fast_depthwise_equals_reference(c in case()) { check_conv(&c, 1) }

    #[test]
    fn fast_fully_connected_equals_reference(c in case()) { check_conv(&c, 2) }

    #[test]
    fn dual_mac_3x3_equals_reference(
        c in case(), h in 1u16..14, w in 1u16..14, ch in 1u16..41, s in 1u8..3, pads in any::<[bool; 4]>(),
    ) {
        // DualMac's own depthwise 3x3 and four-pixel convolution, on the f32-product rule
        let p = |on: bool| if on { 1 } else { 0 };
        let window = Window {
            kh: 3, kw: 3, sh: s, sw: s,
            pad_top: p(pads[0]), pad_left: p(pads[1]), pad_bottom: p(pads[2]), pad_right: p(pads[3]),
        };
        prop_assume!(window.output_hw(h, w).is_some());
        let conv = ConvCase { input: Shape::new(h, w, ch), window, rounding: Rounding::F32Product, ..c.conv };
        let c = Case { conv, ..c };
        check_conv(&c, 1);
        check_conv(&c, 0);
    }

    #[test]
    fn fast_pools_equal_reference(c in case()) {
        let mut rng = Rng(c.seed);
        let x = rng.i8s(c.conv.input.len());
        let args = c.conv.max_pool_args().unwrap();
        let mut want = std::vec![0i8; args.output.len()];
        let mut got = std::vec![1i8; args.output.len()];
        Reference::max_pool(&args, &x, &mut want);
        Fast::max_pool(&args, &x, &mut got);
        prop_assert_eq!(&want, &got);

        if let Some(args) = c.conv.avg_pool_args(0.37) {
            let mut want = std::vec![0i8; args.output.len()];
            let mut got = std::vec![1i8; args.output.len()];
            Reference::avg_pool(&args, &x, &mut want);
            Fast::avg_pool(&args, &x, &mut got);
            prop_assert_eq!(want, got);
        }
    }
}

/// The awkward shapes the chip runs first, on both rounding rules: among them DualMac's patch
/// buffer near its capacity (3x3 over 128 channels), just over it (the fallback), 1x1 over odd
/// channel counts, an odd number of output pixels, and the depthwise kernel at and over its
/// channel capacity.
#[test]
fn dual_mac_equals_reference_on_wide_and_odd_patches() {
    for (seed, conv) in AWKWARD.into_iter().enumerate() {
        for rounding in [Rounding::Exact, Rounding::F32Product] {
            let c = Case {
                conv: ConvCase { rounding, ..conv },
                seed: seed as u64,
            };
            check_conv(&c, 0);
            check_conv(&c, 1);
        }
    }
}

#[test]
fn dual_mac_portable_dot_follows_the_quad_layout() {
    // one group: pixel p is (1 2 3 4) * (p + 1) * (-1)^p, stored [x0|x2] [x1|x3] per pixel
    let h: Vec<i16> = (0..4)
        .flat_map(|p: i16| [1, 3, 2, 4].map(|v| v * (p + 1) * if p % 2 == 0 { 1 } else { -1 }))
        .collect();
    let w = [1, 10, 100, -1];
    let one = 1 + 20 + 300 - 4;
    assert_eq!(
        dot4_portable(&h, &w, 1, [5, 0, 0, 7]),
        [5 + one, -2 * one, 3 * one, 7 - 4 * one]
    );
}

#[test]
fn dual_mac_portable_depthwise_follows_the_expanded_layout() {
    // tap t holds channels (t, 2t, 3t, 4t); weights per tap [w0|w2] [w1|w3] = 1, 3, 2, 4
    let rows: Vec<[i8; 4]> = (0..9).map(|t: i8| [t, 2 * t, 3 * t, 4 * t]).collect();
    let taps: [&[i8]; 9] = core::array::from_fn(|t| &rows[t][..]);
    let w: Vec<i16> = (0..9).flat_map(|_| [1, 3, 2, 4]).collect();
    let sum_t = 36; // 0 + 1 + ... + 8
    assert_eq!(
        depthwise_block_portable(&taps, 0, &w, [1, 0, 0, 0]),
        [1 + sum_t, 2 * 2 * sum_t, 3 * 3 * sum_t, 4 * 4 * sum_t]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn fast_add_equals_reference(
        seed in any::<u64>(), n in 1usize..300,
        sa in 1.0e-4f32..10.0, sb in 1.0e-4f32..10.0, sy in 1.0e-5f32..10.0,
        zps in any::<(i8, i8, i8)>(), (lo, hi) in any::<(i8, i8)>(),
    ) {
        let mut rng = Rng(seed);
        let (xa, xb) = (rng.i8s(n), rng.i8s(n));
        let q = |scale, zero_point| QParams { scale, zero_point };
        let args = AddArgs {
            a: q(sa, zps.0),
            b: q(sb, zps.1),
            y: q(sy, zps.2),
            clamp: Clamp { min: lo.min(hi), max: lo.max(hi) },
        };
        let (mut want, mut got) = (std::vec![0i8; n], std::vec![1i8; n]);
        Reference::add(&args, &xa, &xb, &mut want);
        Fast::add(&args, &xa, &xb, &mut got);
        prop_assert_eq!(want, got);
    }
}

/// An unclamped add of inputs quantised `a` and `b` into `y`, each as `(scale, zero point)`.
fn add_args(a: (f32, i8), b: (f32, i8), y: (f32, i8)) -> AddArgs {
    let q = |(scale, zero_point)| QParams { scale, zero_point };
    AddArgs {
        a: q(a),
        b: q(b),
        y: q(y),
        clamp: Clamp::NONE,
    }
}

#[test]
fn fast_add_rounds_ties_to_even_like_the_reference() {
    // sums landing on k + 0.5 exactly: 0.5 + 1.0 * q with unit scales
    let args = add_args((0.5, 0), (1.0, 0), (1.0, 0));
    let xa: std::vec::Vec<i8> = (-128..=127).collect();
    let xb: std::vec::Vec<i8> = (-128..=127).rev().collect();
    let (mut want, mut got) = (std::vec![0i8; 256], std::vec![1i8; 256]);
    Reference::add(&args, &xa, &xb, &mut want);
    Fast::add(&args, &xa, &xb, &mut got);
    assert_eq!(want, got);
}

#[test]
fn max_pool_ignores_padding() {
    // A 1x1 input of -100 with a 3x3 window padded all round: the padding must not win.
    let args = PoolArgs {
        input: Shape::new(1, 1, 1),
        output: Shape::new(1, 1, 1),
        window: Window::half_padded(3, 3, 1, 1, [true; 4]),
    };
    let mut y = [0i8];
    Reference::max_pool(&args, &[-100], &mut y);
    assert_eq!(y, [-100]);
}

#[test]
fn add_follows_dequantize_add_quantize() {
    let args = add_args((0.5, 0), (0.25, 10), (1.0, -5));
    let mut y = [0i8; 3];
    Reference::add(&args, &[4, -3, 127], &[14, 10, 127], &mut y);
    // 2 + 1 = 3 -> -2; -1.5 + 0 = -1.5 -> round half even to -2 -> -7; 63.5 + 29.25 -> 93 -> 88
    assert_eq!(y, [-2, -7, 88]);
}
