//! The operand layouts of [`super::dual::DualMac`] and the portable inner loops over them: four
//! pixels' patches in `SMLAD` order ([`Quads`]), a depthwise 3x3 layer's weights expanded to i16
//! ([`Expanded`]), and the plain-Rust twins of the assembly in `super::dsp`. It imports nothing
//! of the kernels: `dsp` (the assembly) and `dual` (the kernels) both build on it.

/// Largest patch (`kh * kw * in_c`) handled here; larger ones go to [`super::fast::Fast`]. 3x3 over 128
/// channels; the four-pixel buffer is 4 x 1152 i16 (9 KiB of stack).
pub const QUAD_PATCH_CAPACITY: usize = 1152;

/// Pixels gathered per pass.
pub(crate) const PIXELS: usize = 4;

/// The four pixels' patches in `SMLAD` order (see `super::dual`'s module docs), 4-byte aligned so the
/// assembly may load it as words.
#[repr(C, align(4))]
pub(crate) struct Quads {
    pub(crate) h: [i16; PIXELS * QUAD_PATCH_CAPACITY],
}

/// Position in [`Quads::h`] of patch element `k` of pixel `p`.
#[inline(always)]
pub(crate) fn slot(k: usize, p: usize) -> usize {
    (k >> 2) * 16 + p * 4 + (k & 1) * 2 + ((k >> 1) & 1)
}

/// The portable twin of the assembly: `acc[p] + sum x_p * w` for the four pixels, over the
/// first `groups` groups of four, read from the four-pixel layout (`Quads`).
pub fn dot4_portable(h: &[i16], w: &[i8], groups: usize, acc: [i32; 4]) -> [i32; 4] {
    let mut a = acc;
    for (hs, ws) in h.chunks_exact(16).zip(w.chunks_exact(4)).take(groups) {
        let [w0, w1, w2, w3] = [ws[0], ws[1], ws[2], ws[3]].map(|v| v as i32);
        for (p, s) in a.iter_mut().enumerate() {
            // [x0|x2] [x1|x3] per pixel
            let x = &hs[4 * p..4 * p + 4];
            let d = x[0] as i32 * w0 + x[1] as i32 * w2 + x[2] as i32 * w1 + x[3] as i32 * w3;
            *s = s.wrapping_add(d);
        }
    }
    a
}

/// The portable twin of the reordering im2col: `groups` groups of four bytes of `src`, less
/// `zp`, to halfwords `16 g..16 g + 4` of `dst` in the order `x0 x2 x1 x3`.
pub fn widen_portable(src: &[i8], dst: &mut [i16], groups: usize, zp: i8) {
    let zp = zp as i16;
    for (d, v) in dst.chunks_mut(16).zip(src.chunks_exact(4)).take(groups) {
        if let [d0, d1, d2, d3, ..] = d {
            *d0 = v[0] as i16 - zp;
            *d1 = v[2] as i16 - zp;
            *d2 = v[1] as i16 - zp;
            *d3 = v[3] as i16 - zp;
        }
    }
}

/// Most channels of a depthwise 3x3 layer taken by [`super::dual::DualMac`]'s own kernel (its expanded
/// weights are 9 x 256 i16, 4.5 KiB of stack); wider layers and other windows go to [`super::fast::Fast`].
pub const DEPTHWISE_CHANNELS: usize = 256;

/// A depthwise 3x3 layer's weights as i16, four channels at a time: for channels `c..c + 4` and
/// each tap, `[w_c|w_c+2]` then `[w_c+1|w_c+3]` (36 halfwords per block).
#[repr(C, align(4))]
pub(crate) struct Expanded {
    pub(crate) h: [i16; 9 * DEPTHWISE_CHANNELS],
}

/// The portable twin of the depthwise assembly: `acc[j] + sum_t taps[t][c + j] * w_t,c+j` for
/// the four channels from `c`, with `w` one block of expanded weights (36 halfwords: for each tap
/// `w_c, w_c+2, w_c+1, w_c+3`).
pub fn depthwise_block_portable(taps: &[&[i8]; 9], c: usize, w: &[i16], acc: [i32; 4]) -> [i32; 4] {
    let mut a = acc;
    for (t, ws) in taps.iter().zip(w.chunks_exact(4)) {
        let x = &t[c..c + 4];
        a[0] = a[0].wrapping_add(x[0] as i32 * ws[0] as i32);
        a[2] = a[2].wrapping_add(x[2] as i32 * ws[1] as i32);
        a[1] = a[1].wrapping_add(x[1] as i32 * ws[2] as i32);
        a[3] = a[3].wrapping_add(x[3] as i32 * ws[3] as i32);
    }
    a
}
