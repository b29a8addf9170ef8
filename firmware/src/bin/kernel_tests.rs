//! The kernel tests on the chip: every kernel inference uses on the Cortex-M ([`DualMac`]: the
//! `SMLAD` assembly for convolutions, the `SMLABB`/`SMLATT` depthwise 3x3; [`Fast`]: other
//! depthwise windows, fully connected, pools, add on the FPU) against the scalar [`Reference`],
//! over the core's fixed awkward shapes ([`AWKWARD`], which the host tests run too) and then random
//! ones (odd widths and channel counts, stride 2 on odd sizes, 1x1 spatial, padding, channel
//! counts that are not multiples of 4). Logs each mismatch and a summary, and exits 0 only if
//! every output byte is equal. `tests/it/firmware.rs` runs it in QEMU.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facegender_core::nn::kernels::cases::{AWKWARD, ConvCase, conv_kernel};
use facegender_core::nn::kernels::{
    AddArgs, CHANNEL_RECORD, ChannelParams, ConvArgs, DualMac, Kernels, Reference,
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

struct Buffers {
    x: [i8; MAX_X],
    w: [i8; MAX_W],
    out: Outputs,
    channels: [u8; MAX_C * CHANNEL_RECORD],
}

/// What the reference wrote, and what [`DualMac`] wrote.
struct Outputs {
    want: [i8; MAX_Y],
    got: [i8; MAX_Y],
}

/// One operator of one kernel set: `op(args, x, y)`.
type Op<A> = fn(&A, &[i8], &mut [i8]);

impl Outputs {
    /// Runs the reference's `op` into the first `n` bytes of `want` and [`DualMac`]'s into `got`,
    /// both over `args` and `x`; true if they wrote the same.
    fn agree<A>(&mut self, n: usize, [reference, dual]: [Op<A>; 2], args: &A, x: &[i8]) -> bool {
        let (want, got) = (&mut self.want[..n], &mut self.got[..n]);
        reference(args, x, want);
        dual(args, x, got);
        want == got
    }
}

/// Add of kernel set `K` of the first `y.len()` bytes of `x` with the next `y.len()`.
fn add_halves<K: Kernels>(args: &AddArgs, x: &[i8], y: &mut [i8]) {
    let (xa, xb) = x.split_at(y.len());
    K::add(args, xa, &xb[..y.len()], y);
}

fn random_case(rng: &mut Rng) -> Option<ConvCase> {
    let h = 1 + rng.below(13) as u16;
    let w = 1 + rng.below(13) as u16;
    let c = 1 + rng.below(48) as u16;
    let k = [1u8, 3, 5][rng.below(3) as usize];
    let s = 1 + rng.below(2) as u8;
    let pads = [0, 1, 2, 3].map(|i| (rng.next() >> (8 * i)) & 1 == 1);
    let window = Window::half_padded(k, k, s, s, pads);
    window.output_hw(h, w)?;
    let (a, b) = (rng.next() as i8, rng.next() as i8);
    Some(ConvCase {
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
        bytes[c * CHANNEL_RECORD..(c + 1) * CHANNEL_RECORD]
            .copy_from_slice(&ChannelParams::record(bias, 1.0, r));
    }
}

/// Runs `op` (0 conv, 1 depthwise, 2 fully connected) through both kernel sets; true if equal.
fn check_conv(b: &mut Buffers, rng: &mut Rng, c: &ConvCase, op: u8) -> bool {
    let Some((args, wlen)) = c.conv_args(op) else {
        return true;
    };
    let output = args.output;
    if c.input.len() > MAX_X || wlen > MAX_W || output.len() > MAX_Y || output.c as usize > MAX_C {
        return true;
    }
    let n = output.len();
    rng.fill(&mut b.x[..c.input.len()]);
    rng.fill(&mut b.w[..wlen]);
    channels(rng, &mut b.channels, output.c as usize);
    let args = ConvArgs {
        weights: &b.w[..wlen],
        channels: ChannelParams::new(&b.channels[..output.c as usize * CHANNEL_RECORD]),
        ..args
    };
    let x = &b.x[..c.input.len()];
    b.out.got[..n].fill(0x55);
    let op = [conv_kernel::<Reference>(op), conv_kernel::<DualMac>(op)];
    b.out.agree(n, op, &args, x)
}

/// Max pool, average pool and add; true if all equal.
fn check_pools_and_add(b: &mut Buffers, rng: &mut Rng, c: &ConvCase) -> bool {
    let mut ok = true;
    let len = c.input.len();
    if len > MAX_X || len > MAX_Y {
        return true;
    }
    rng.fill(&mut b.x[..len]);
    let x = &b.x[..len];
    if let Some(args) = c.max_pool_args() {
        let op = [Reference::max_pool, DualMac::max_pool];
        ok &= b.out.agree(args.output.len(), op, &args, x);
    }
    if let Some(args) = c.avg_pool_args(0.37) {
        let op = [Reference::avg_pool, DualMac::avg_pool];
        ok &= b.out.agree(args.output.len(), op, &args, x);
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
        let op = [add_halves::<Reference>, add_halves::<DualMac>];
        ok &= b.out.agree(half, op, &args, x);
    }
    ok
}

#[entry]
fn main() -> ! {
    fw::stack::paint();
    let Some(b) = cortex_m::singleton!(: Buffers = Buffers {
        x: [0; MAX_X],
        w: [0; MAX_W],
        out: Outputs {
            want: [0; MAX_Y],
            got: [0; MAX_Y],
        },
        channels: [0; MAX_C * CHANNEL_RECORD],
    }) else {
        fw::exit(false)
    };
    let mut rng = Rng(2026);
    let (mut cases, mut failed) = (0u32, 0u32);
    let mut run = |c: &ConvCase, rng: &mut Rng, what: &str| {
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
    // awkward shapes first (1x1 spatial, odd widths and channels, stride 2 on odd sizes, the
    // kernels' buffer capacities and just over them), then random ones
    for c in &AWKWARD {
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
