//! `facegender demo`: the product on the bundled held-out photos, in about a minute.
//!
//! 1. The shipped model through `predict` on photos it never trained on: accuracy with its 95 %
//!    interval, faces found, scenes with several faces and none, and an annotated contact sheet.
//! 2. The device chain (int8 BlazeFace, keypoint alignment, the same int8 classifier) on the same
//!    photos, and the `full_chain` firmware in QEMU on its embedded frames, bit for bit against
//!    the host.
//! 3. The training pipeline on the sample: preprocess, filter, split, a short fine-tune from the
//!    shipped weights, export, eval on every engine, and int8 core = tract.
//! 4. A summary, also written as `demo.json`.

mod chains;
mod context;
mod fine_tune;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::{fsutil, model_dir};
use facegender_qemu::parity;
use serde::Serialize;

use chains::{ChainScore, Photos};
pub use context::Inputs;
use context::{CONTACT_SHEET, Log, millions};
use fine_tune::{TrainingReport, fine_tune};

#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub workdir: PathBuf,
    /// Whether the photos are the bundled held-out sample.
    pub held_out: bool,
    pub seconds: f64,
    /// (step, seconds)
    pub step_seconds: Vec<(String, f64)>,
    pub shipped_model: PathBuf,
    pub host_chain: ChainScore,
    pub device_chain: ChainScore,
    /// Photos where both chains give the largest face the same label.
    pub same_label: usize,
    pub contact_sheet: PathBuf,
    pub qemu: parity::ChainCheck,
    pub qemu_instructions_per_frame: u64,
    pub training: TrainingReport,
}

/// Runs the demo in `inputs.workdir` (created; an earlier demo there is replaced). Returns the
/// report and everything it said.
pub fn run(inputs: &Inputs<'_>) -> anyhow::Result<(DemoReport, String)> {
    let started = Instant::now();
    let mut log = Log::default();
    let workdir = inputs.workdir;
    let shipped = inputs.models_dir.join("gender");
    let weights = shipped.join("weights.bpk");
    anyhow::ensure!(
        weights.is_file(),
        "{} is missing: the demo fine-tunes from the shipped float weights (scripts/train-shipped writes them)",
        weights.display()
    );
    clear_workdir(workdir)?;
    let photos = Photos::load(inputs)?;
    let (info, bytes) = model_dir::read_classifier(&shipped)?;
    let classifier = Classifier::new(&bytes, info)?;

    let t = Instant::now();
    let host = chains::host_chain(inputs, &photos, &shipped, &classifier, &mut log)?;
    log.step("shipped model, host chain", t);

    let t = Instant::now();
    let device = chains::device_chain(inputs, &photos, &shipped, &classifier, &host, &mut log)?;
    log.step("device chain and QEMU", t);

    let t = Instant::now();
    log.say(
        "3. The training pipeline on the sample: preprocess, filter, split, fine-tune, export, eval",
    );
    let training = fine_tune(inputs, &shipped, &weights, &mut log)?;
    log.step("training pipeline", t);

    let qemu_instructions_per_frame = device.qemu.instructions_per_frame();
    let report = DemoReport {
        workdir: workdir.to_path_buf(),
        held_out: inputs.held_out,
        seconds: started.elapsed().as_secs_f64(),
        step_seconds: log.steps,
        shipped_model: shipped,
        host_chain: host.score,
        device_chain: device.score,
        same_label: device.same_label,
        contact_sheet: host.contact_sheet,
        qemu: device.qemu,
        qemu_instructions_per_frame,
        training,
    };
    fsutil::write_replace(
        &workdir.join("demo.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok((report, log.text))
}

/// Marks a folder the demo made, so that a later demo may replace it.
const MARKER: &str = ".facegender-demo";

/// Empties `workdir` for a new demo: a missing or empty folder, or one an earlier demo made (it
/// holds [`MARKER`], or the `demo.json` of a demo from before the marker); any other folder is
/// refused, never deleted.
fn clear_workdir(workdir: &Path) -> anyhow::Result<()> {
    if workdir.exists() {
        let empty = std::fs::read_dir(workdir)
            .with_context(|| format!("reading {}", workdir.display()))?
            .next()
            .is_none();
        // demos before the marker left their demo.json
        let made = workdir.join(MARKER).is_file() || workdir.join("demo.json").is_file();
        anyhow::ensure!(
            empty || made,
            "{} is not empty and was not made by the demo: give a new --workdir (nothing was deleted)",
            workdir.display()
        );
        std::fs::remove_dir_all(workdir)
            .with_context(|| format!("clearing {}", workdir.display()))?;
    }
    std::fs::create_dir_all(workdir).with_context(|| format!("creating {}", workdir.display()))?;
    std::fs::write(
        workdir.join(MARKER),
        b"made by facegender demo; replaced by the next demo\n",
    )?;
    Ok(())
}

/// The closing summary: what ran, the figures, where every artifact is.
pub fn summary(r: &DemoReport) -> String {
    let (h, d, t) = (&r.host_chain, &r.device_chain, &r.training);
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    let engines: Vec<String> = t
        .test_accuracy
        .iter()
        .map(|(e, a)| format!("{e} {}", pct(*a)))
        .collect();
    let w = r.workdir.display();
    format!(
        "demo finished in {:.0} s\n\
         shipped model, {} {}photos: host chain {} (95 % interval {}-{}), device chain {} ({}-{}); same label on {} photos; a face found in {} (host) and {} (device)\n\
         firmware in QEMU: {}/{} faces equal to the host; {} instructions per frame with one face (mean over its frames)\n\
         fine-tune from the shipped weights on the sample ({} epochs, {:.0} s): test {} on {} crops ({}), shipped model {} on the same crops; int8 core vs tract: {} crops differ{}\n\
         artifacts in {w}: {} (contact sheet), predict-host.jsonl, predict-device.jsonl, crops/, data/ (train/val/test, manifest.csv), run/ (history.csv, history.png), model/ (model.onnx, model-int8.onnx, model.fgi8), eval/, demo.json",
        r.seconds,
        h.photos,
        if r.held_out { "held-out " } else { "" },
        pct(h.accuracy),
        pct(h.accuracy_ci95.0),
        pct(h.accuracy_ci95.1),
        pct(d.accuracy),
        pct(d.accuracy_ci95.0),
        pct(d.accuracy_ci95.1),
        r.same_label,
        h.face_found,
        d.face_found,
        r.qemu.equal,
        r.qemu.total,
        millions(r.qemu_instructions_per_frame),
        t.epochs,
        t.train_seconds,
        t.test_accuracy.last().map_or("?".into(), |(_, a)| pct(*a)),
        t.test_crops,
        engines.join(", "),
        pct(t.shipped_accuracy_same_crops),
        t.int8_core_vs_tract_mismatches,
        if t.smoke_run {
            " (a smoke run, not a model)"
        } else {
            ""
        },
        CONTACT_SHEET
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_replaces_only_folders_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("photos");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("keep.jpg"), b"x").unwrap();
        let e = clear_workdir(&user).unwrap_err().to_string();
        assert!(e.contains("not made by the demo"), "{e}");
        assert!(user.join("keep.jpg").is_file());

        let demo = dir.path().join("demo");
        clear_workdir(&demo).unwrap();
        std::fs::write(demo.join("old.json"), b"{}").unwrap();
        clear_workdir(&demo).unwrap();
        assert!(!demo.join("old.json").exists() && demo.join(MARKER).is_file());
    }
}
