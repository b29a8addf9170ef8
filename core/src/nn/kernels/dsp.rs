//! The Cortex-M4/M7 inner loop of [`super::DualMac`], in assembly: stable Rust has no DSP
//! intrinsics, and LLVM forms `SMLAD` only from pairs of i16 loads, never from `SXTB16` on int8
//! weights. One of the crate's two `unsafe` modules (the other is the host's `x86`), compiled
//! only with the `dsp` feature on ARM (ARMv7E-M: `SMLAD` and `SXTB16` are in every Cortex-M4
//! and M7).
//!
//! Per group of four patch elements and two output pixels: one `LDM` of four pair words, one
//! `LDR` of four weights, two `SXTB16`, four `SMLAD` (8 MACs), and the loop's `SUBS`/`BNE`:
//! 10 instructions for 8 MACs, 18 for 16 in the two-group unrolled body (1.125 per MAC).
#![allow(unsafe_code)]

use super::dual::Pairs;

/// One group step: four pair words (`[x0|x2] [x1|x3]` of pixel 0, then of pixel 1) and four
/// weights split into `[w0|w2]` and `[w1|w3]`; 8 MACs, into r3 (pixel 0) and r4 (pixel 1).
macro_rules! group {
    () => {
        concat!(
            "ldm r0!, {{r5, r8, r10, r11}}\n",
            "ldr r12, [r1], #4\n",
            "sxtb16 lr, r12\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r3, r5, lr, r3\n",
            "smlad r3, r8, r12, r3\n",
            "smlad r4, r10, lr, r4\n",
            "smlad r4, r11, r12, r4",
        )
    };
}

/// `(acc0 + sum x0 * w, acc1 + sum x1 * w)` over the first `groups` groups of four elements of
/// `pairs` (pixel 0 and pixel 1) and `w`, exactly as [`super::dual::dot2_portable`].
#[inline(always)]
pub(crate) fn dot2(pairs: &Pairs, w: &[i8], groups: usize, acc: (i32, i32)) -> (i32, i32) {
    // never read past either slice: 8 i16 (4 words) of `pairs` and 4 bytes of `w` per group
    let groups = groups.min(pairs.h.len() / 8).min(w.len() / 4);
    let (mut a0, mut a1) = acc;
    if groups == 0 {
        return (a0, a1);
    }
    let (pairs_ptr, w_ptr) = (pairs.h.as_ptr(), w.as_ptr());
    // SAFETY: the group step runs exactly `groups` times: once if `groups` is odd, then twice per
    // pass for `groups / 2` passes (SUBS/BNE count r2 down to 0; none when it is 0). Each step
    // reads 16 bytes at r0 (LDM, post-incremented) and 4 bytes at r1 (LDR, post-incremented).
    // So it reads exactly `16 * groups` bytes from `pairs.h` (which holds `16 * (len / 8)` bytes,
    // at least that many by the `min` above) and `4 * groups` bytes from `w` (at least
    // `4 * groups` long, same `min`), both borrowed for the whole call and never written. `LDM`
    // needs a word-aligned address: `Pairs` is `repr(align(4))` and `h` is its first field, and
    // r0 advances by 16. `LDR` from `w` may be unaligned, which ARMv7-M permits for `LDR`
    // (CCR.UNALIGN_TRP is 0 out of reset; CMSIS-NN reads its int8 weights the same way). Every
    // register written is an operand (inout or clobbered output); the flags (`SUBS`, SMLAD's
    // sticky Q) are not preserved and not declared preserved; no stack is used.
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
            inout("r0") pairs_ptr => _,
            inout("r1") w_ptr => _,
            inout("r2") groups => _,
            inout("r3") a0,
            inout("r4") a1,
            out("r5") _,
            out("r8") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack, readonly),
        );
    }
    (a0, a1)
}
