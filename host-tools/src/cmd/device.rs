//! The device side: `firmware` (QEMU against the host), `quantize-detector`,
//! `fit-keypoint-template`, `eval-detector` and `eval-chain`.

use std::path::Path;

use anyhow::Context;
use facegender_export::detector;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::detect::{BlazeFace, Int8Detector, Variant};
use facegender_pipeline::model_dir::{self, DetectorInfo};
use facegender_pipeline::predict::DeviceModels;
use facegender_pipeline::preprocess::HostModels;
use facegender_pipeline::{dataset, eval, fsutil, progress};
use facegender_qemu::{firmware, frames, parity};

use crate::args::{
    EvalChainArgs, EvalDetectorArgs, FirmwareArgs, FitTemplateArgs, Global, QuantizeDetectorArgs,
};
use crate::output::out;
pub fn firmware(a: FirmwareArgs, g: &Global) -> anyhow::Result<()> {
    let models_dir = g.models.as_path();
    let model_dir = a.model.unwrap_or_else(|| models_dir.join("gender"));
    if a.chain {
        return firmware_chain(
            &model_dir,
            models_dir,
            a.frames_from.as_deref(),
            a.frames_per_class,
        );
    }
    if let Some(src) = &a.crops_from {
        let info = model_dir::export_info(&model_dir)?;
        let written = frames::write_firmware_crops(
            src,
            &model_dir.join("firmware-crops"),
            info.input as u32,
            a.per_class,
        )?;
        out(&format!(
            "{} crops from {} written to {}",
            written.len(),
            src.display(),
            model_dir.join("firmware-crops").display()
        ));
    }
    let check = parity::check_crops(&model_dir)?;
    let (ok, total, instructions, log) = (check.equal, check.total, check.instructions, &check.log);
    for l in log
        .lines()
        .filter(|l| l.contains("crop=") || l.contains("model:") || l.contains("stack"))
    {
        out(l.trim());
    }
    if !check.layers.is_empty() {
        out(&format!(
            "classifier per layer (QEMU -icount, last crop):\n{}",
            firmware::layer_table(&check.layers)
        ));
    }
    let elf = firmware::firmware_dir().join("target/thumbv7em-none-eabihf/release/classify");
    let s = firmware::sizes(&elf)?;
    let stack = firmware::parse_stack(log).unwrap_or(0) as u64;
    out(&format!(
        "{ok}/{total} crops equal to the host (label and int8 logits); {} instructions per inference (QEMU -icount)",
        instructions.unwrap_or(0)
    ));
    out(&format!(
        "size: .text {} + .rodata {} + .vector_table {} + .data {} = flash {} bytes; .data {} + .bss {} + .uninit {} + stack {} = RAM {} bytes",
        s.text,
        s.rodata,
        s.vector_table,
        s.data,
        s.flash(),
        s.data,
        s.bss,
        s.uninit,
        stack,
        s.static_ram() + stack
    ));
    anyhow::ensure!(total > 0 && ok == total, "firmware and host disagree");
    Ok(())
}

/// `facegender firmware --chain`: the `full_chain` firmware in QEMU against
/// `predict --device-chain` on the same frames.
fn firmware_chain(
    model_dir: &Path,
    models_dir: &Path,
    frames_from: Option<&Path>,
    per_class: usize,
) -> anyhow::Result<()> {
    let frames_dir = model_dir.join("firmware-frames");
    if let Some(src) = frames_from {
        let n = frames::write_frames(src, &frames_dir, per_class)?.len();
        out(&format!(
            "{n} frames from {} written to {}",
            src.display(),
            frames_dir.display()
        ));
    }
    let c = parity::check_chain(model_dir, models_dir)?;
    for l in &c.lines {
        out(l);
    }
    for (frame, faces, instructions) in &c.detect_per_frame {
        out(&format!(
            "{frame}: {faces} faces, detection {instructions} instructions"
        ));
    }
    for model in ["detector", "classifier"] {
        let layers: Vec<_> = c
            .layers
            .iter()
            .filter(|l| l.model == model)
            .cloned()
            .collect();
        if !layers.is_empty() {
            out(&format!(
                "{model} per layer (QEMU -icount, last frame):\n{}",
                firmware::layer_table(&layers)
            ));
        }
    }
    let frames: Vec<String> = c
        .frame_instructions()
        .iter()
        .map(|(frame, n)| format!("{frame} {n}"))
        .collect();
    out(&format!(
        "instructions per stage (QEMU -icount): detect {} per frame on average (letterbox, detector, decoding, NMS), align {} and classify {} per face; a frame with one face: {} (one detector run, or two when the frame is tried again with a margin)",
        c.detect_instructions,
        c.align_instructions,
        c.classify_instructions,
        frames.join(", ")
    ));
    out(&format!(
        "size: flash {} bytes (.text {} + .rodata {}), RAM {} bytes (.bss {} + .data {} + stack {})",
        c.flash_bytes(),
        c.sizes.text,
        c.sizes.rodata,
        c.ram_bytes(),
        c.sizes.bss,
        c.sizes.data,
        c.stack_bytes
    ));
    out(&format!(
        "{}/{} faces equal to predict --device-chain (box, score, keypoints, int8 logits, label)",
        c.equal, c.total
    ));
    anyhow::ensure!(c.equal == c.total, "the firmware and the host disagree");
    Ok(())
}

pub fn quantize_detector(a: QuantizeDetectorArgs, g: &Global) -> anyhow::Result<()> {
    let models_dir = g.models.as_path();
    let files =
        fsutil::image_files(&a.calibration).with_context(|| a.calibration.display().to_string())?;
    anyhow::ensure!(
        !files.is_empty(),
        "no photos in {}",
        a.calibration.display()
    );
    let picked = dataset::evenly_spaced(&files, a.images);
    let info = detector::quantize_detector(models_dir, &picked, &a.out)?;
    out(&format!(
        "int8 BlazeFace in {}: {} MACs, {} weight bytes, arena {} bytes, calibrated on {} photos",
        a.out.display(),
        info.macs,
        info.weight_bytes,
        info.arena_bytes,
        info.calibration_images
    ));
    Ok(())
}

pub fn eval_detector(a: EvalDetectorArgs, g: &Global) -> anyhow::Result<()> {
    let models_dir = g.models.as_path();
    let float = BlazeFace::load(models_dir, Variant::Front)?;
    let int8 = Int8Detector::load(&a.detector)?;
    let int8_threshold = match a.int8_threshold {
        Some(t) => t,
        None => DetectorInfo::load(&a.detector)?.threshold,
    };
    let files = dataset::evenly_spaced(&fsutil::image_files(&a.input)?, a.limit);
    let r = eval::detector::compare(&float, &int8, &files, a.threshold, int8_threshold)?;
    out(&format!(
        "{} photos (thresholds: float {}, int8 {int8_threshold:.4}): int8 matches {} of {} float detections ({:.2}%, IoU >= 0.5); face found: float {:.2}%, int8 {:.2}%",
        r.photos,
        a.threshold,
        r.matched_by_int8,
        r.float_detections,
        100.0 * r.matched_share,
        100.0 * r.float_face_found_rate,
        100.0 * r.int8_face_found_rate
    ));
    if let Some(p) = a.json {
        fsutil::write_replace(&p, &serde_json::to_vec_pretty(&r)?)?;
    }
    Ok(())
}

pub fn fit_template(a: FitTemplateArgs, _: &Global) -> anyhow::Result<()> {
    let det = Int8Detector::load(&a.detector)?;
    // the chain decides with the int8 detector's calibrated threshold
    let threshold = DetectorInfo::load(&a.detector)?.threshold;
    let info = detector::fit_template(&a.report, &a.photos, &det, a.limit, threshold)?;
    fsutil::write_replace(&a.out, &serde_json::to_vec_pretty(&info)?)?;
    out(&format!(
        "keypoint template from {} crops ({} px): {:?} -> {}",
        info.fitted_on,
        info.template_side,
        info.template,
        a.out.display()
    ));
    Ok(())
}

pub fn eval_chain(a: EvalChainArgs, g: &Global) -> anyhow::Result<()> {
    let (models_dir, dlib, progress) = (g.models.as_path(), g.dlib.as_path(), g.progress);
    let model_dir = a.model.clone().unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = model_dir::read_classifier(&model_dir)?;
    let classifier = Classifier::new(&bytes, info)?;
    let host = HostModels::load(models_dir, dlib, Variant::Front)?;
    let m = host.models()?;
    let device = DeviceModels::load(&a.detector, &model_dir)?;
    let items = dataset::evenly_spaced(&dataset::list(&a.input)?, a.limit);
    let bar = progress::bar(items.len(), progress);
    let r = eval::chains::compare((&m, &device), &classifier, &items, &bar);
    bar.finish_and_clear();
    let (h, d) = (&r.host_chain, &r.device_chain);
    out(&format!(
        "{} photos: host chain (float BlazeFace, dlib landmarks) accuracy {:.4} (95% CI {:.3}-{:.3}, face found {:.4}); device chain (int8 BlazeFace, keypoints) accuracy {:.4} (95% CI {:.3}-{:.3}, face found {:.4}); same label {:.4}",
        r.photos,
        h.accuracy,
        h.accuracy_ci95.0,
        h.accuracy_ci95.1,
        h.face_found,
        d.accuracy,
        d.accuracy_ci95.0,
        d.accuracy_ci95.1,
        d.face_found,
        r.same_label
    ));
    if let Some(p) = a.json {
        fsutil::write_replace(&p, &serde_json::to_vec_pretty(&r)?)?;
    }
    Ok(())
}
