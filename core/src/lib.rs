//! facegender-core: the parts of facegender that run on a microcontroller.
//!
//! `#![no_std]`, no allocator. Everything works on caller-provided buffers and returns typed
//! errors on bad bytes or odd sizes.
//!
//! - [`ert`]: dlib's 68-point landmark regression trees, bit-compatible with dlib 19.24.
//! - [`detect`]: BlazeFace anchor decoding and weighted NMS over fixed-capacity buffers.
//! - [`align`]: openface-style 3-point and least-squares similarity alignment, bilinear warps.
//! - [`chain`]: the device chain, frame to label, stage by stage.
//! - `dlib` (feature `std`): dlib's serialisation, read with the offset of every fault.
//! - [`container`]: the 32-byte header both model files share (magic, version, length, CRC).
//! - [`image`]: checked grey and RGB (888 or 565) image views.
//! - [`frame`]: camera frame to detector input (integer letterbox and resampling).
//! - [`nn`]: int8 CNN inference (model file format, kernels, buffer plan).
//! - [`quant`]: requantisation arithmetic shared by the kernels and the exporter.
//!
//! Features: `std` (model writer), `tract` (ONNX twin of a model run by tract, host only),
//! `defmt` (`defmt::Format` on public types), `dsp` (Cortex-M4/M7 convolution kernels on the
//! DSP extension's `SMLAD`, in inline assembly; ARMv7E-M targets only).
#![no_std]
// The exceptions, one module per target with a proof per block: `nn::kernels::dsp` (feature
// `dsp`, ARM: the SMLAD assembly) and `nn::kernels::x86` (feature `std`, x86_64: calls into the
// AVX builds after checking the CPU).
#![deny(unsafe_code)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod align;
pub mod chain;
pub mod container;
pub mod detect;
#[cfg(feature = "std")]
pub mod dlib;
pub mod ert;
pub mod frame;
pub mod image;
pub mod nn;
pub mod quant;
