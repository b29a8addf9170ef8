//! The firmware against the host, bit for bit: [`firmware`] builds it for the Cortex-M, boots
//! it in QEMU and reads its defmt log and ELF sizes; [`parity`] compares what it printed with
//! the host's own run of the same int8 models (the classifier on embedded crops, the whole
//! device chain on embedded frames); [`frames`] writes and reads the raw frames it embeds.

pub mod firmware;
pub mod frames;
pub mod parity;
