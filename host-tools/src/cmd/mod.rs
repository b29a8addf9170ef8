//! One file per command group; each function takes its parsed arguments, calls the libraries
//! and prints through [`crate::output::out`].

pub mod data;
pub mod device;
pub mod host;
pub mod predict;
pub mod train;
