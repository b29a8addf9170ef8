//! Classifies the crops embedded at build time with the embedded int8 model and logs, per crop,
//! the label, the int8 logits, the probability and the instruction count (SysTick under QEMU
//! `-icount`; cycles on a real chip), then each layer's MACs and instructions on the last crop,
//! the stack high-water mark, and exits with status 0.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facegender_core::nn::model::Model;
use facegender_firmware::{self as fw, model};

#[entry]
fn main() -> ! {
    fw::stack::paint();
    let cp = cortex_m::Peripherals::take().unwrap_or_else(|| fw::exit(false));
    let clock = fw::Clock::start(cp.SYST);
    let net = match Model::parse(&model::MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!("model does not parse: {}", e);
            fw::exit(false)
        }
    };
    let Some(arena) = cortex_m::singleton!(: [u8; model::ARENA_LEN] = [0; model::ARENA_LEN]) else {
        fw::exit(false)
    };
    let Some(input) = cortex_m::singleton!(: [i8; model::INPUT_LEN] = [0; model::INPUT_LEN]) else {
        fw::exit(false)
    };
    defmt::info!(
        "model: {} layers, arena {} bytes, {} weight bytes, {} MACs",
        net.layer_count(),
        net.arena_len(),
        net.weight_bytes(),
        net.macs()
    );
    for (name, crop) in model::CROPS {
        for (x, &p) in input.iter_mut().zip(crop.iter()) {
            *x = (p as i16 - 128) as i8;
        }
        let t0 = clock.ticks();
        let out = match net.run(arena, input) {
            Ok(o) => o,
            Err(e) => {
                defmt::error!("inference failed: {}", e);
                fw::exit(false)
            }
        };
        let ticks = clock.ticks() - t0;
        let (logits, label, prob) = fw::classified(&out);
        defmt::info!(
            "crop={=str} label={=str} logits={} prob={=f32} ticks={=u64} instructions={=u64}",
            name,
            label,
            logits,
            prob,
            ticks,
            fw::qemu_instructions(ticks)
        );
    }
    // once more on the last crop, timing each layer
    fw::log_layers("classifier", &net, arena, input, &clock);
    fw::log_stack();
    fw::exit(true)
}
