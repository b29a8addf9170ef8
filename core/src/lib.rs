//! facegender-core: the parts of facegender that run on a microcontroller.
//!
//! `#![no_std]`, no allocator. Everything works on caller-provided buffers and returns typed
//! errors on bad bytes or odd sizes.
//!
//! - [`ert`]: dlib's 68-point landmark regression trees, bit-compatible with dlib 19.24.
//! - [`detect`]: BlazeFace anchor decoding and weighted NMS over fixed-capacity buffers.
//! - [`align`]: openface-style 3-point and least-squares similarity alignment, bilinear warps.
//! - [`image`]: checked grey and RGB image views.
//! - [`nn`]: int8 CNN inference (model file format, kernels, buffer plan).
//! - [`quant`]: requantisation arithmetic shared by the kernels and the exporter.
//!
//! Features: `std` (model writer), `tract` (ONNX twin of a model run by tract, host only),
//! `defmt` (`defmt::Format` on public types).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod align;
pub mod detect;
pub mod ert;
pub mod image;
pub mod nn;
pub mod quant;
