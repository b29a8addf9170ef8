//! facegender host tools: the library behind the `facegender` command line.
//!
//! Each module holds one stage of the pipeline; `main.rs` is argument parsing and glue.

pub mod align;
pub mod augment;
pub mod bench;
pub mod cli;
pub mod cpu;
pub mod dataset;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod device;
pub mod device_parity;
pub mod eval;
pub mod export;
pub mod firmware;
pub mod fsutil;
pub mod landmarks;
pub mod models;
pub mod onnx_import;
pub mod plot;
pub mod predict;
pub mod preprocess;
pub mod quantize;
pub mod reference;
pub mod sheet;
pub mod train;
