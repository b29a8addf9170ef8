//! SplitMix64: the one small deterministic generator behind test data, on the host
//! (`nn::random`, the kernel tests) and on the chip (the firmware's kernel tests), so a
//! seed gives the same numbers everywhere.

/// The next value of the SplitMix64 sequence whose state is `state`.
#[inline]
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
