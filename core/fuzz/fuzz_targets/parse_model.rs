//! Any bytes: the int8 model parser returns a model or a typed error, never panics; a model
//! that parses also runs.
#![no_main]

use facegender_core::nn::Model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::parse(data) {
        if m.arena_len() <= 1 << 20 {
            let mut arena = vec![0u8; m.arena_len()];
            let input = vec![3i8; m.input().shape.len()];
            let _ = m.run(&mut arena, &input);
        }
    }
});
