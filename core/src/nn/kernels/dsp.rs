//! The Cortex-M4/M7 inner loops of [`super::dual::DualMac`], in assembly, over the operand layouts of
//! [`super::packed`] (the only kernel module it uses; the kernels in `dual` call it): stable Rust
//! has no DSP intrinsics, and LLVM forms `SMLAD` only from pairs of i16 loads, never from
//! `SXTB16` on int8 weights. One of the crate's two `unsafe` modules (the other is the host's
//! `x86`), compiled only with the `dsp` feature on ARM (ARMv7E-M: `SMLAD`, `SMLABB`, `SMLATT` and
//! `SXTB16` are in every Cortex-M4 and M7).
//!
//! - Convolution, per group of four patch elements and four output pixels: one `LDR` of four
//!   weights, two `SXTB16`, four `LDRD` of pair words, eight `SMLAD` (16 MACs): 15 instructions,
//!   32 for 32 MACs in the two-group unrolled body with its `SUBS`/`BNE` (1.0 per MAC).
//! - Depthwise 3x3, per tap and four channels: the tap's address, one `LDR` of four
//!   activations, one `LDRD` of four expanded weights, two `SXTB16`, four halfword
//!   multiply-accumulates (4 MACs): 9 instructions, 81 for a block of 36 MACs, no loop.
#![allow(unsafe_code)]

use super::packed::{Expanded, Quads};

/// One group step: four weights split into `[w0|w2]` (lr) and `[w1|w3]` (r12), then for each
/// of the four pixels its two pair words `[x0|x2] [x1|x3]`; 16 MACs into r3, r4, r10, r11.
macro_rules! group {
    () => {
        concat!(
            "ldr r12, [r1], #4\n",
            "sxtb16 lr, r12\n",
            "sxtb16 r12, r12, ror #8\n",
            "ldrd r5, r8, [r0], #8\n",
            "smlad r3, r5, lr, r3\n",
            "smlad r3, r8, r12, r3\n",
            "ldrd r5, r8, [r0], #8\n",
            "smlad r4, r5, lr, r4\n",
            "smlad r4, r8, r12, r4\n",
            "ldrd r5, r8, [r0], #8\n",
            "smlad r10, r5, lr, r10\n",
            "smlad r10, r8, r12, r10\n",
            "ldrd r5, r8, [r0], #8\n",
            "smlad r11, r5, lr, r11\n",
            "smlad r11, r8, r12, r11",
        )
    };
}

/// `acc[p] + sum x_p * w` over the first `groups` groups of four elements of the four pixels in
/// `quads` and `w`, exactly as [`super::packed::dot4_portable`].
#[inline(always)]
pub(crate) fn dot4(quads: &Quads, w: &[i8], groups: usize, acc: [i32; 4]) -> [i32; 4] {
    // never read past either slice: 16 i16 (8 words) of `quads` and 4 bytes of `w` per group
    let groups = groups.min(quads.h.len() / 16).min(w.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    let (quads_ptr, w_ptr) = (quads.h.as_ptr(), w.as_ptr());
    // SAFETY: the group step runs exactly `groups` times: once if `groups` is odd, then twice per
    // pass for `groups / 2` passes (SUBS/BNE count r2 down to 0; none when it is 0). Each step
    // reads 32 bytes at r0 (four LDRD, post-incremented) and 4 bytes at r1 (LDR,
    // post-incremented). So it reads exactly `32 * groups` bytes from `quads.h` (which holds
    // `32 * (len / 16)` bytes, at least that many by the `min` above) and `4 * groups` bytes from
    // `w` (at least `4 * groups` long, same `min`), both borrowed for the whole call and never
    // written. `LDRD` needs a word-aligned address: `Quads` is `repr(align(4))`, `h` is its first
    // field, and r0 advances by 8. `LDR` from `w` may be unaligned, which ARMv7-M permits for
    // `LDR` (CCR.UNALIGN_TRP is 0 out of reset; CMSIS-NN reads its int8 weights the same way).
    // Every register written is an operand (inout or clobbered output); the flags (`SUBS`,
    // SMLAD's sticky Q) are not preserved and not declared preserved; no stack is used.
    unsafe {
        core::arch::asm!(
            // an odd group first, then two groups per pass
            "tst r2, #1",
            "beq 3f",
            group!(),
            "3:",
            "lsrs r2, r2, #1",
            "beq 4f",
            "2:",
            group!(),
            group!(),
            "subs r2, r2, #1",
            "bne 2b",
            "4:",
            inout("r0") quads_ptr => _,
            inout("r1") w_ptr => _,
            inout("r2") groups => _,
            inout("r3") a0,
            inout("r4") a1,
            inout("r10") a2,
            inout("r11") a3,
            out("r5") _,
            out("r8") _,
            out("r12") _,
            out("lr") _,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// Writes `groups` groups of four bytes of `src`, less `zp`, as the pair words `[x0|x2]` and
/// `[x1|x3]` at every 16th halfword of `dst` (one pixel's slots in [`Quads`]), exactly as
/// [`super::packed::widen_portable`]: CMSIS-NN's reordering im2col, `SXTAB16` extending and
/// offsetting two bytes at once (5 instructions per group, against 15 in Rust).
#[inline(always)]
pub(crate) fn widen(src: &[i8], dst: &mut [i16], groups: usize, zp: i8) {
    // group g writes dst[16 g..16 g + 4]: the last one needs 16 (groups - 1) + 4 halfwords
    let groups = groups.min(src.len() / 4).min((dst.len() + 12) / 16);
    if groups == 0 || dst.as_ptr() as usize % 4 != 0 {
        return super::packed::widen_portable(src, dst, groups, zp);
    }
    let minus = (-(zp as i32)) as u16 as u32;
    let offsets = minus << 16 | minus;
    // SAFETY: the loop runs exactly `groups` times (SUBS/BNE count r2 down from `groups` >= 1).
    // Each pass reads 4 bytes at r0 (LDR, post-incremented by 4: `4 * groups` bytes of `src` in
    // all, no more than its length by the `min` above; unaligned, allowed for LDR on ARMv7-M) and
    // writes 8 bytes at r1 (STRD, post-incremented by 32): halfwords `16 g..16 g + 4` of `dst`
    // for g < `groups`, inside it by the `min` above. `src` is borrowed shared and `dst`
    // exclusively for the call, so the write aliases nothing else. STRD needs a word-aligned
    // address: checked above, and r1 advances by 32. Only operand registers and the flags
    // (SUBS, not declared preserved) change; no stack is used.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr r4, [r0], #4",
            "sxtab16 r5, r3, r4",
            "sxtab16 r4, r3, r4, ror #8",
            "strd r5, r4, [r1], #32",
            "subs r2, r2, #1",
            "bne 2b",
            inout("r0") src.as_ptr() => _,
            inout("r1") dst.as_mut_ptr() => _,
            inout("r2") groups => _,
            in("r3") offsets,
            out("r4") _,
            out("r5") _,
            options(nostack),
        );
    }
}

/// One depthwise tap over four channels: x = the four activations at the tap's address + c,
/// split into `[x0|x2]` (r5) and `[x1|x3]` (lr); weights `[w0|w2]` (r8) and `[w1|w3]` (r12).
macro_rules! tap {
    () => {
        concat!(
            "ldr r5, [r0], #4\n",
            "ldr r5, [r5, r1]\n",
            "ldrd r8, r12, [r2], #8\n",
            "sxtb16 lr, r5, ror #8\n",
            "sxtb16 r5, r5\n",
            "smlabb r3, r5, r8, r3\n",
            "smlatt r10, r5, r8, r10\n",
            "smlabb r4, lr, r12, r4\n",
            "smlatt r11, lr, r12, r11",
        )
    };
}

/// The nine taps of one output pixel of a depthwise 3x3: the address of each tap's channels
/// and the fewest channels any of them has, so that [`Taps::block`] checks one bound.
pub(crate) struct Taps<'a> {
    ptrs: [*const i8; 9],
    len: usize,
    _borrow: core::marker::PhantomData<&'a [i8]>,
}

impl<'a> Taps<'a> {
    pub(crate) fn new(taps: [&'a [i8]; 9]) -> Self {
        Self {
            ptrs: taps.map(|t| t.as_ptr()),
            len: taps.iter().map(|t| t.len()).min().unwrap_or(0),
            _borrow: core::marker::PhantomData,
        }
    }

    /// `acc[j] + sum_t tap_t[c + j] * w_t,c+j` for the four channels from `c`, with the weights
    /// of `e`'s block `b`, exactly as [`super::packed::depthwise_block_portable`]; `acc`
    /// unchanged if `c + 4` passes a tap or `b` passes `e`.
    #[inline(always)]
    pub(crate) fn block(&self, c: usize, e: &Expanded, b: usize, acc: [i32; 4]) -> [i32; 4] {
        let Some(w) = e.h.get(36 * b..36 * b + 36) else {
            return acc;
        };
        if c + 4 > self.len {
            return acc;
        }
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        // SAFETY: the tap step runs nine times, once per entry of `ptrs` (r0 post-incremented by
        // 4 from `ptrs`' start: 36 bytes of the array, which lives as long as `self`). Each step
        // reads 4 bytes at `ptrs[t] + c` (LDR with register offset r1 = c, unaligned allowed on
        // ARMv7-M as above): `ptrs[t]` is the start of a slice of at least `self.len` bytes
        // borrowed for `'a` (so still alive while `self` is), and `c + 4 <= self.len` was checked
        // above. It reads 8 bytes at r2 (LDRD, post-incremented by 8): 72 bytes in all, exactly
        // `w`'s 36 halfwords (checked by `get` above), which start word-aligned: `w` is block `b` of
        // `e.h`, 72 * b bytes into the first field of the `repr(align(4))` `Expanded` (borrowed
        // for the call). Nothing is
        // written but the operand registers; the flags (SMLABB's sticky Q) are not preserved and
        // not declared preserved; no stack is used.
        unsafe {
            core::arch::asm!(
                tap!(), tap!(), tap!(),
                tap!(), tap!(), tap!(),
                tap!(), tap!(), tap!(),
                inout("r0") self.ptrs.as_ptr() => _,
                in("r1") c,
                inout("r2") w.as_ptr() => _,
                inout("r3") a0,
                inout("r4") a1,
                inout("r10") a2,
                inout("r11") a3,
                out("r5") _,
                out("r8") _,
                out("r12") _,
                out("lr") _,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2, a3]
    }
}
