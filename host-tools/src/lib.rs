//! facegender host tools: the library behind the `facegender` command line.
//!
//! Each module holds one stage of the pipeline; `main.rs` is only argument parsing and glue.

pub mod decode;
