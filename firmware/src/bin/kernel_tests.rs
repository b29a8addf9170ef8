//! The kernel tests on the chip: every kernel inference uses on the Cortex-M ([`DualMac`]: the
//! `SMLAD` assembly for convolutions, the `SMLABB`/`SMLATT` depthwise 3x3; [`Fast`]: other
//! depthwise windows, fully connected, pools, add on the FPU) against the scalar [`Reference`], over fixed awkward shapes and then random ones (odd
//! widths and channel counts, stride 2 on odd sizes, 1x1 spatial, padding, channel counts that are
//! not multiples of 4). Logs each mismatch and a summary, and exits 0 only if every output byte
//! is equal. `tests/it/firmware.rs` runs it in QEMU.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facegender_core::nn::kernels::{
    AddArgs, AvgPoolArgs, CHANNEL_RECORD, ChannelParams, ConvArgs, DualMac, Kernels, PoolArgs,
    Reference,
};
use facegender_core::nn::{Clamp, QParams, Rounding, Shape, Window};
use facegender_core::quant::Requant;
use facegender_firmware as fw;

/// Random cases after the fixed ones.
const RANDOM_CASES: u32 = 400;
/// Buffer sizes: the largest shapes drawn below fit.
const MAX_X: usize = 16 * 16 * 132;
const MAX_W: usize = 24 * 5 * 5 * 48;
const MAX_Y: usize = 16 * 16 * 132;
const MAX_C: usize = 260;

/// The core's SplitMix64, as the host kernel tests use it.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        facegender_core::nn::splitmix::next(&mut self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, v: &mut [i8]) {
        for x in v {
            *x = self.next() as i8;
        }
    }
}

/// One convolution-like case: shapes, window and quantisation.
#[derive(Clone, Copy)]
struct Case {
    input: Shape,
    window: Window,
    out_c: u16,
    x_zp: i8,
    y_zp: i8,
    clamp: Clamp,
    rounding: Rounding,
}

struct Buffers {
    x: [i8; MAX_X],
    w: [i8; MAX_W],
    want: [i8; MAX_Y],
    got: [i8; MAX_Y],
    channels: [u8; MAX_C * CHANNEL_RECORD],
}

fn padded(k: u8, s: u8, pads: [bool; 4]) -> Window {
    let p = |on: bool| if on { k / 2 } else { 0 };
    Window {
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        pad_top: p(pads[0]),
        pad_left: p(pads[1]),
        pad_bottom: p(pads[2]),
        pad_right: p(pads[3]),
    }
}

fn random_case(rng: &mut Rng) -> Option<Case> {
    let h = 1 + rng.below(13) as u16;
    let w = 1 + rng.below(13) as u16;
    let c = 1 + rng.below(48) as u16;
    let k = [1u8, 3, 5][rng.below(3) as usize];
    let s = 1 + rng.below(2) as u8;
    let pads = [0, 1, 2, 3].map(|i| (rng.next() >> (8 * i)) & 1 == 1);
    let window = padded(k, s, pads);
    window.output_hw(h, w)?;
    let (a, b) = (rng.next() as i8, rng.next() as i8);
    Some(Case {
        input: Shape::new(h, w, c),
        window,
        out_c: 1 + rng.below(24) as u16,
        x_zp: rng.next() as i8,
        y_zp: rng.next() as i8,
        clamp: if rng.below(3) == 0 {
            Clamp::NONE
        } else {
            Clamp {
                min: a.min(b),
                max: a.max(b),
            }
        },
        rounding: if rng.below(2) == 0 {
            Rounding::Exact
        } else {
            Rounding::F32Product
        },
    })
}

/// Fills weights, bias and multipliers for `n_ch` channels.
fn channels(rng: &mut Rng, bytes: &mut [u8], n_ch: usize) {
    for c in 0..n_ch {
        let bias = (rng.below(20001) as i32) - 10000;
        let m = (rng.below(10_000) + 1) as f32 * 1.3e-6;
        let r = Requant::from_f32(m).unwrap_or(Requant {
            mantissa: 0,
            exponent: 0,
        });
        let rec = &mut bytes[c * CHANNEL_RECORD..(c + 1) * CHANNEL_RECORD];
        rec[0..4].copy_from_slice(&bias.to_le_bytes());
        rec[4..8].copy_from_slice(&1.0f32.to_le_bytes());
        rec[8..12].copy_from_slice(&r.mantissa.to_le_bytes());
        rec[12..16].copy_from_slice(&r.exponent.to_le_bytes());
    }
}

/// Runs `op` (0 conv, 1 depthwise, 2 fully connected) through both kernel sets; true if equal.
fn check_conv(b: &mut Buffers, rng: &mut Rng, c: &Case, op: u8) -> bool {
    let Some((oh, ow)) = c.window.output_hw(c.input.h, c.input.w) else {
        return true;
    };
    let (kh, kw, ic) = (
        c.window.kh as usize,
        c.window.kw as usize,
        c.input.c as usize,
    );
    let (output, wlen, window) = match op {
        0 => (
            Shape::new(oh, ow, c.out_c),
            c.out_c as usize * kh * kw * ic,
            c.window,
        ),
        1 => (Shape::new(oh, ow, c.input.c), kh * kw * ic, c.window),
        _ => (
            Shape::new(1, 1, c.out_c),
            c.out_c as usize * c.input.len(),
            Window::default(),
        ),
    };
    if c.input.len() > MAX_X || wlen > MAX_W || output.len() > MAX_Y || output.c as usize > MAX_C {
        return true;
    }
    let n = output.len();
    rng.fill(&mut b.x[..c.input.len()]);
    rng.fill(&mut b.w[..wlen]);
    channels(rng, &mut b.channels, output.c as usize);
    let args = ConvArgs {
        input: c.input,
        output,
        window,
        x_zero_point: c.x_zp,
        y_zero_point: c.y_zp,
        clamp: c.clamp,
        rounding: c.rounding,
        weights: &b.w[..wlen],
        channels: ChannelParams::new(&b.channels[..output.c as usize * CHANNEL_RECORD]),
    };
    let x = &b.x[..c.input.len()];
    b.got[..n].fill(0x55);
    match op {
        0 => {
            Reference::conv2d(&args, x, &mut b.want[..n]);
            DualMac::conv2d(&args, x, &mut b.got[..n]);
        }
        1 => {
            Reference::depthwise_conv2d(&args, x, &mut b.want[..n]);
            DualMac::depthwise_conv2d(&args, x, &mut b.got[..n]);
        }
        _ => {
            Reference::fully_connected(&args, x, &mut b.want[..n]);
            DualMac::fully_connected(&args, x, &mut b.got[..n]);
        }
    }
    b.want[..n] == b.got[..n]
}

/// Max pool, average pool and add; true if all equal.
fn check_pools_and_add(b: &mut Buffers, rng: &mut Rng, c: &Case) -> bool {
    let mut ok = true;
    let len = c.input.len();
    if len > MAX_X || len > MAX_Y {
        return true;
    }
    rng.fill(&mut b.x[..len]);
    let x = &b.x[..len];
    if let Some((oh, ow)) = c.window.output_hw(c.input.h, c.input.w) {
        let output = Shape::new(oh, ow, c.input.c);
        let n = output.len();
        let args = PoolArgs {
            input: c.input,
            output,
            window: c.window,
        };
        Reference::max_pool(&args, x, &mut b.want[..n]);
        DualMac::max_pool(&args, x, &mut b.got[..n]);
        ok &= b.want[..n] == b.got[..n];
    }
    let window = Window::valid(c.window.kh, c.window.kw, c.window.sh, c.window.sw);
    if let Some((oh, ow)) = window.output_hw(c.input.h, c.input.w) {
        let output = Shape::new(oh, ow, c.input.c);
        let n = output.len();
        let taps = window.kh as f32 * window.kw as f32;
        let Some(requant) = Requant::from_f32(0.37 / taps) else {
            return false;
        };
        let args = AvgPoolArgs {
            input: c.input,
            output,
            window,
            x_zero_point: c.x_zp,
            y_zero_point: c.y_zp,
            clamp: c.clamp,
            rounding: c.rounding,
            requant,
        };
        Reference::avg_pool(&args, x, &mut b.want[..n]);
        DualMac::avg_pool(&args, x, &mut b.got[..n]);
        ok &= b.want[..n] == b.got[..n];
    }
    // add: the first half of x with the second, scales drawn over four decades
    let half = len / 2;
    if half > 0 {
        let scale = |rng: &mut Rng| (1 + rng.below(10_000)) as f32 * 1.0e-4;
        let q = |scale, zero_point| QParams { scale, zero_point };
        let args = AddArgs {
            a: q(scale(rng), c.x_zp),
            b: q(scale(rng), c.y_zp),
            y: q(scale(rng), rng.next() as i8),
            clamp: c.clamp,
        };
        let (xa, xb) = x.split_at(half);
        Reference::add(&args, xa, &xb[..half], &mut b.want[..half]);
        DualMac::add(&args, xa, &xb[..half], &mut b.got[..half]);
        ok &= b.want[..half] == b.got[..half];
    }
    ok
}

#[entry]
fn main() -> ! {
    fw::stack::paint();
    let Some(b) = cortex_m::singleton!(: Buffers = Buffers {
        x: [0; MAX_X],
        w: [0; MAX_W],
        want: [0; MAX_Y],
        got: [0; MAX_Y],
        channels: [0; MAX_C * CHANNEL_RECORD],
    }) else {
        fw::exit(false)
    };
    let base = Case {
        input: Shape::new(1, 1, 1),
        window: padded(3, 1, [true; 4]),
        out_c: 1,
        x_zp: -7,
        y_zp: 3,
        clamp: Clamp::NONE,
        rounding: Rounding::Exact,
    };
    // awkward shapes first: 1x1 spatial, odd widths and channels, stride 2 on odd sizes, the
    // patch buffer at its capacity (3x3 over 128 channels) and just over it
    let fixed = [
        Case { ..base },
        Case {
            input: Shape::new(7, 7, 3),
            window: padded(3, 2, [true; 4]),
            out_c: 8,
            ..base
        },
        Case {
            input: Shape::new(5, 3, 7),
            window: padded(1, 1, [false; 4]),
            out_c: 9,
            rounding: Rounding::F32Product,
            ..base
        },
        Case {
            input: Shape::new(9, 11, 5),
            window: padded(5, 2, [true, false, true, false]),
            out_c: 13,
            ..base
        },
        Case {
            input: Shape::new(3, 5, 128),
            window: padded(3, 1, [true; 4]),
            out_c: 6,
            rounding: Rounding::F32Product,
            ..base
        },
        Case {
            input: Shape::new(3, 3, 129),
            window: padded(3, 1, [true; 4]),
            out_c: 5,
            ..base
        },
        Case {
            input: Shape::new(1, 1, 4),
            window: padded(1, 1, [false; 4]),
            out_c: 1,
            ..base
        },
        // BlazeFace-like: 42 channels (not a multiple of 4), stride 2 with one-sided padding
        Case {
            input: Shape::new(7, 9, 42),
            window: padded(3, 2, [false, false, true, true]),
            out_c: 7,
            rounding: Rounding::F32Product,
            ..base
        },
        // the depthwise kernel's channel capacity, and just over it (the fallback)
        Case {
            input: Shape::new(3, 4, 256),
            window: padded(3, 1, [true; 4]),
            out_c: 5,
            rounding: Rounding::F32Product,
            ..base
        },
        Case {
            input: Shape::new(3, 4, 257),
            window: padded(3, 1, [true; 4]),
            out_c: 5,
            rounding: Rounding::F32Product,
            ..base
        },
    ];
    let mut rng = Rng(2026);
    let (mut cases, mut failed) = (0u32, 0u32);
    let mut run = |c: &Case, rng: &mut Rng, what: &str| {
        for op in 0..3 {
            cases += 1;
            if !check_conv(b, rng, c, op) {
                failed += 1;
                defmt::error!(
                    "{=str} op {=u8} differs: input {}x{}x{} window {}x{} stride {} out_c {}",
                    what,
                    op,
                    c.input.h,
                    c.input.w,
                    c.input.c,
                    c.window.kh,
                    c.window.kw,
                    c.window.sh,
                    c.out_c
                );
            }
        }
        cases += 1;
        if !check_pools_and_add(b, rng, c) {
            failed += 1;
            defmt::error!(
                "{=str} pools or add differ: input {}x{}x{}",
                what,
                c.input.h,
                c.input.w,
                c.input.c
            );
        }
    };
    for c in &fixed {
        run(c, &mut rng, "fixed");
    }
    let mut drawn = 0;
    while drawn < RANDOM_CASES {
        if let Some(c) = random_case(&mut rng) {
            run(&c, &mut rng, "random");
            drawn += 1;
        }
    }
    defmt::info!(
        "kernel tests: {=u32} cases, {=u32} differ from the reference",
        cases,
        failed
    );
    fw::exit(failed == 0)
}
