//! Any bytes: the landmark model parser returns a model or a typed error, never panics.
#![no_main]

use facegender_core::ert::ShapePredictor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ShapePredictor::parse(data);
});
