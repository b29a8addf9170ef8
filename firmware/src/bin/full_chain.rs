//! The whole chain on the device: for every frame embedded at build time, letterbox it for the
//! int8 BlazeFace, detect faces (anchor decoding and weighted NMS), align each face from its
//! keypoints onto the template the classifier's crops were made with, and classify the crop.
//! Logs per face the box, score, keypoints, int8 logits, label and probability, and per stage
//! the instruction count (SysTick under QEMU `-icount`; cycles on a real chip), then each
//! model's instructions per layer on the last frame. The host mirror
//! is `facegender predict --device-chain`, which makes exactly these core calls.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use facegender_core::align;
use facegender_core::chain::{self, DetectParams, Template};
use facegender_core::detect::{AnchorSpec, Detection};
use facegender_core::image::RgbView;
use facegender_core::nn::model::Model;
use facegender_firmware::{self as fw, model};
use heapless::Vec;

/// Detector input side (BlazeFace front).
const DET_SIDE: u32 = 128;
/// Candidates kept before NMS, and faces classified per frame (as on the host).
const CANDIDATES: usize = 64;
const MAX_FACES: usize = 8;

fn fail(what: &str) -> ! {
    defmt::error!("{=str}", what);
    fw::exit(false)
}

#[entry]
fn main() -> ! {
    fw::stack::paint();
    let cp = cortex_m::Peripherals::take().unwrap_or_else(|| fw::exit(false));
    let clock = fw::Clock::start(cp.SYST);
    let (Some(det_bytes), Some(settings)) = (model::DETECTOR, model::CHAIN.as_ref()) else {
        fail("built without the detector or device-chain.json")
    };
    let det = Model::parse(&det_bytes.0).unwrap_or_else(|_| fail("detector does not parse"));
    let net = Model::parse(&model::MODEL.0).unwrap_or_else(|_| fail("classifier does not parse"));
    let template = Template {
        side: settings.side,
        points: settings.points,
    };
    let side = settings.side as usize;
    let Some(arena) =
        cortex_m::singleton!(: [u8; model::CHAIN_ARENA_LEN] = [0; model::CHAIN_ARENA_LEN])
    else {
        fw::exit(false)
    };
    let Some(det_in) =
        cortex_m::singleton!(: [i8; model::DET_INPUT_LEN] = [0; model::DET_INPUT_LEN])
    else {
        fw::exit(false)
    };
    let Some(crop) = cortex_m::singleton!(: [u8; model::INPUT_LEN] = [0; model::INPUT_LEN]) else {
        fw::exit(false)
    };
    let Some(input) = cortex_m::singleton!(: [i8; model::INPUT_LEN] = [0; model::INPUT_LEN]) else {
        fw::exit(false)
    };
    if side * side * 3 != model::INPUT_LEN {
        fail("the template's crop size is not the classifier's input");
    }
    defmt::info!(
        "chain: detector {} MACs, classifier {} MACs, shared arena {} bytes, {} frames",
        det.macs(),
        net.macs(),
        model::CHAIN_ARENA_LEN,
        model::FRAMES.len()
    );
    for &(name, width, height, pixels) in model::FRAMES {
        let view = RgbView::packed(pixels, width, height).unwrap_or_else(|_| fail("bad frame"));
        let t0 = clock.ticks();
        let mut faces: Vec<Detection, CANDIDATES> = Vec::new();
        let params = DetectParams {
            spec: &AnchorSpec::FRONT_128,
            threshold: settings.threshold,
            nms_iou: settings.nms_iou,
        };
        // letterbox, detect, and a second try on a margin when nothing is found
        let lb = match chain::detect_frame(&det, arena, &view, det_in, params, &mut faces) {
            Ok(lb) => lb,
            Err(e) => {
                defmt::error!("detection failed: {}", e);
                fw::exit(false)
            }
        };
        let t1 = clock.ticks();
        defmt::info!(
            "frame={=str} faces={=usize} retried={=bool} detect_instructions={=u64}",
            name,
            faces.len().min(MAX_FACES),
            lb.width.max(lb.height) < DET_SIDE,
            fw::qemu_instructions(t1 - t0)
        );
        for (i, f) in faces.iter().take(MAX_FACES).enumerate() {
            let t3 = clock.ticks();
            let a = chain::keypoint_affine(f, &template).unwrap_or_else(|_| fail("keypoints"));
            align::warp_rgb(&view, &a, side, crop).unwrap_or_else(|_| fail("warp"));
            chain::crop_to_input(crop, input);
            let t4 = clock.ticks();
            let out = match net.run(arena, input) {
                Ok(o) => o,
                Err(e) => {
                    defmt::error!("classification failed: {}", e);
                    fw::exit(false)
                }
            };
            let t5 = clock.ticks();
            let (Some(logits), Some(q)) = (out.get(0), out.qparams(0)) else {
                fw::exit(false)
            };
            let (label, prob) = fw::top_class(logits, q);
            defmt::info!(
                "frame={=str} face={=usize} box={} score={=f32} keypoints={} logits={} label={=str} prob={=f32} align_instructions={=u64} classify_instructions={=u64}",
                name,
                i,
                f.corners(),
                f.score,
                f.keypoints,
                logits,
                label,
                prob,
                fw::qemu_instructions(t4 - t3),
                fw::qemu_instructions(t5 - t4)
            );
        }
    }
    // each model once more on the last frame's inputs, timing each layer
    fw::log_layers("detector", &det, arena, det_in, &clock);
    fw::log_layers("classifier", &net, arena, input, &clock);
    defmt::info!(
        "stack high-water mark: {=usize} bytes of {=usize}",
        fw::stack::high_water(),
        fw::stack::capacity()
    );
    fw::exit(true)
}
