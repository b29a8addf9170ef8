//! Host SIMD (x86_64, feature `std`): [`super::Fast`]'s convolution, depthwise and fully connected
//! loops compiled a second and third time with AVX2 and with AVX-512 (BW, VL, VNNI), chosen at
//! run time by the CPU's flags, so one binary runs everywhere and uses what the CPU has. The code
//! is the portable code: only the instructions LLVM may pick differ, and integer sums are exact,
//! so every path gives the same bytes (the kernel tests run the one this CPU picks).
#![allow(unsafe_code)]

use super::args::{ConvArgs, Kernels};
use super::fast::{self};

/// Runtime-dispatched host kernels.
pub struct Host;

/// The instruction set [`Host`] uses on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Avx512Vnni,
    Avx2,
    Portable,
}

impl Level {
    /// What this CPU supports (cached by `is_x86_feature_detected!`).
    #[inline]
    pub fn detect() -> Self {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
        {
            Self::Avx512Vnni
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512f+bw+vl+vnni",
            Self::Avx2 => "avx2+fma",
            Self::Portable => "portable (sse2)",
        }
    }
}

macro_rules! compiled_for {
    ($feat:literal, $conv:ident, $dw:ident, $fc:ident) => {
        #[target_feature(enable = $feat)]
        fn $conv(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
            fast::conv2d(a, x, y)
        }
        #[target_feature(enable = $feat)]
        fn $dw(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
            fast::depthwise_conv2d(a, x, y)
        }
        #[target_feature(enable = $feat)]
        fn $fc(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
            fast::fully_connected(a, x, y)
        }
    };
}

compiled_for!("avx2,fma", conv_avx2, dw_avx2, fc_avx2);
compiled_for!(
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma",
    conv_avx512,
    dw_avx512,
    fc_avx512
);

macro_rules! dispatch {
    ($a:ident, $x:ident, $y:ident, $avx512:ident, $avx2:ident, $portable:path) => {
        match Level::detect() {
            // SAFETY: the target-feature function's only precondition is that the CPU has those
            // features, which `Level::detect` has just checked with `is_x86_feature_detected!`.
            Level::Avx512Vnni => unsafe { $avx512($a, $x, $y) },
            // SAFETY: as above, for AVX2 and FMA.
            Level::Avx2 => unsafe { $avx2($a, $x, $y) },
            Level::Portable => $portable($a, $x, $y),
        }
    };
}

impl Kernels for Host {
    fn conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        dispatch!(a, x, y, conv_avx512, conv_avx2, fast::conv2d)
    }

    fn depthwise_conv2d(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        dispatch!(a, x, y, dw_avx512, dw_avx2, fast::depthwise_conv2d)
    }

    fn fully_connected(a: &ConvArgs, x: &[i8], y: &mut [i8]) {
        dispatch!(a, x, y, fc_avx512, fc_avx2, fast::fully_connected)
    }

    fast::pools_add_and_pad!();
}
