//! Kernels: pure functions over NHWC int8 slices. They never see the file format.
//!
//! [`Reference`] is the plain scalar definition of every operator; [`Fast`] (portable) and
//! [`DualMac`] (convolutions over CMSIS-NN-style four-pixel patches and a four-channel depthwise
//! 3x3, in assembly on the Cortex-M) are what inference uses ([`Inference`]), tested against it
//! over the awkward shapes of `cases::AWKWARD` and random ones (the tests below, and the same
//! cases in QEMU: `firmware/src/bin/kernel_tests.rs`). Both assume arguments that
//! [`crate::nn::model::Model`] has validated: slice lengths match the shapes, windows fit, and fan-in is
//! small enough that no i32 sum overflows.

// Index loops mirror the tensor formulas and read better than iterator chains here.
#![allow(clippy::needless_range_loop)]

mod args;
#[doc(hidden)]
pub mod cases;
#[cfg(all(feature = "dsp", target_arch = "arm"))]
mod dsp;
mod dual;
mod fast;
mod finish;
mod packed;
mod reference;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod x86;

pub use args::{
    AddArgs, AvgPoolArgs, CHANNEL_CACHE, CHANNEL_RECORD, ChannelParams, ConvArgs, Kernels, PadArgs,
    PoolArgs,
};
pub use dual::DualMac;
pub use fast::Fast;
pub use packed::{
    DEPTHWISE_CHANNELS, QUAD_PATCH_CAPACITY, depthwise_block_portable, dot4_portable,
};
pub use reference::Reference;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub use x86::{Host, Level};

/// The kernels [`crate::nn::model::Model::run`] uses: [`DualMac`] (convolutions on the DSP extension's
/// dual multiply-accumulate) with the `dsp` feature on ARM, [`Fast`] elsewhere.
#[cfg(all(feature = "dsp", target_arch = "arm"))]
pub type Inference = DualMac;
/// The kernels [`crate::nn::model::Model::run`] uses: [`Host`] (AVX2 / AVX-512 picked at run time) on
/// x86_64 with `std`.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
pub type Inference = Host;
/// The kernels [`crate::nn::model::Model::run`] uses: [`Fast`] where nothing more specific applies.
#[cfg(not(any(
    all(feature = "dsp", target_arch = "arm"),
    all(feature = "std", target_arch = "x86_64")
)))]
pub type Inference = Fast;

#[cfg(test)]
mod tests;
