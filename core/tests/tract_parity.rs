//! tract parity (see below).
