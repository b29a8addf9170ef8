//! Step 3 of the demo: the sample through preprocess, filter and split, a short fine-tune from
//! the shipped weights, export, and every engine's evaluation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use facegender_export::classifier as export;
use facegender_pipeline::align::AlignMethod;
use facegender_pipeline::dataset::crops::load_split;
use facegender_pipeline::dataset::{filter, split};
use facegender_pipeline::detect::DEFAULT_THRESHOLD;
use facegender_pipeline::eval::chart::confusion_and_roc;
use facegender_pipeline::eval::{self, engines};
use facegender_pipeline::fsutil;
use facegender_pipeline::preprocess::{self};
use facegender_train::inference::run_float;
use facegender_train::training;

use super::context::{CROP, CROP_SCALE, Inputs, Log};

/// The fine-tune: a few epochs at a tenth of the shipped run's peak learning rate.
const FINE_TUNE_EPOCHS: usize = 3;

const FINE_TUNE_LR: f64 = 2e-4;

/// The fine-tune on the sample.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingReport {
    pub photos: usize,
    pub face_found_rate: f64,
    pub crops_kept: usize,
    /// (part, class, crops)
    pub split: Vec<(String, String, usize)>,
    pub init_from: PathBuf,
    pub epochs: usize,
    pub train_seconds: f64,
    pub test_crops: usize,
    /// (engine, accuracy) on the sample's own test crops.
    pub test_accuracy: Vec<(String, f64)>,
    pub int8_core_accuracy_ci95: (f64, f64),
    /// The shipped model (int8 core) on the same test crops.
    pub shipped_accuracy_same_crops: f64,
    pub int8_core_vs_tract_mismatches: usize,
    /// Below the shipped model: a few minutes on a few hundred photos is a smoke run.
    pub smoke_run: bool,
}

/// Step 3: the sample through preprocess, filter and split, a short fine-tune from the shipped
/// weights, export and every engine's evaluation.
pub fn fine_tune(
    inputs: &Inputs<'_>,
    shipped: &Path,
    weights: &Path,
    log: &mut Log,
) -> anyhow::Result<TrainingReport> {
    let (workdir, progress) = (inputs.workdir, inputs.progress);
    let crops = workdir.join("crops");
    let cfg = preprocess::Config {
        input: inputs.photos.to_path_buf(),
        output: crops.clone(),
        crop: CROP,
        align: AlignMethod::InnerEyesBottomLip,
        scale: CROP_SCALE,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        multi: preprocess::MultiFace::Largest,
        threshold: DEFAULT_THRESHOLD,
        min_face: 24.0,
        progress,
    };
    let pre = preprocess::run(&cfg, inputs.models)?;
    log.say(format!(
        "   preprocess: {} photos, face found in {:.1} %, {} aligned {CROP} px crops",
        pre.images,
        100.0 * pre.face_found_rate,
        pre.by_status
            .get(&preprocess::Status::Ok)
            .copied()
            .unwrap_or(0),
    ));
    let frep = filter::run(&crops, 10)?;
    fsutil::write_replace(
        &workdir.join("filter.json"),
        &serde_json::to_vec_pretty(&frep)?,
    )?;
    let crops_kept = frep.keep.len();
    log.say(format!(
        "   filter: {} kept, {} duplicates, {} unreadable",
        crops_kept,
        frep.duplicates.len(),
        frep.unreadable.len()
    ));
    let data_dir = workdir.join("data");
    let scfg = split::Config {
        input: crops.clone(),
        output: data_dir.clone(),
        ratios: [0.7, 0.15, 0.15],
        seed: 42,
        mode: split::Mode::Copy,
        grouping: split::Grouping::None,
        group_desc: None,
        dry_run: false,
        filter: Some(frep),
        progress,
    };
    let (rows, _) = split::run(&scfg)?;
    let counts = split::counts(&rows);
    log.say(format!(
        "   split (70/15/15, seed 42):\n{}",
        split::table(&rows)
    ));

    let mut tcfg = training::TrainConfig::load(&shipped.join("config.toml"))?;
    tcfg.train.epochs = FINE_TUNE_EPOCHS;
    tcfg.train.lr = FINE_TUNE_LR;
    tcfg.train.warmup_epochs = 0;
    tcfg.train.batch = 32;
    tcfg.train.init_from = weights.display().to_string();
    // the shipped run's teacher file covers its own training crops, not the demo's
    tcfg.train.distill = Default::default();
    let side = tcfg.model.input as u32;
    let train = load_split(&data_dir.join("train"), None, side, progress)?;
    let val = load_split(&data_dir.join("val"), Some(&train.classes), side, progress)?;
    let run = workdir.join("run");
    let t = Instant::now();
    let history = training::train(&tcfg, &train, &val, &run, false, progress)?;
    let train_seconds = t.elapsed().as_secs_f64();
    let last = history.last().context("no epoch finished")?;
    log.say(format!(
            "   fine-tune from {}: {} epochs on {} crops in {:.0} s, validation accuracy {:.1} %; curves in {}",
            weights.display(),
            history.len(),
            train.len(),
            train_seconds,
            100.0 * last.val_acc,
            run.join("history.png").display()
        ),
    );

    let model_dir = workdir.join("model");
    let info = export::export(
        &run,
        &train,
        &model_dir,
        AlignMethod::InnerEyesBottomLip,
        CROP_SCALE,
        export::Ranges::Mse,
    )?;
    log.say(format!(
        "   export: {} MACs, {} weight bytes, arena {} bytes -> {}",
        info.macs,
        info.weight_bytes,
        info.arena_bytes,
        model_dir.display()
    ));
    let test = load_split(&data_dir.join("test"), Some(&info.classes), side, progress)?;
    let outs = [
        run_float(&run, &test)?,
        engines::run_onnx(&model_dir, &test)?,
        engines::run_int8_tract(&model_dir, &test)?,
        engines::run_int8_core(&model_dir, &test)?,
    ];
    let metrics: Vec<eval::Metrics> = outs.iter().map(|o| eval::metrics(o, &test, &[])).collect();
    let mismatches = eval::agreement(&outs[2], &outs[3])
        .int8_mismatches
        .context("int8 outputs missing")?;
    let shipped_same = eval::metrics(&engines::run_int8_core(shipped, &test)?, &test, &[]).accuracy;
    log.say(format!(
        "   eval on the sample's {} test crops:\n{}",
        test.len(),
        eval::table(&metrics)
    ));
    log.say(format!(
        "   int8 core vs int8 tract: {mismatches} crops with different logits"
    ));
    let eval_dir = workdir.join("eval");
    std::fs::create_dir_all(&eval_dir)?;
    let core = metrics.last().context("no metrics")?;
    confusion_and_roc(
        &eval_dir.join("eval-int8-core.png"),
        &test.classes,
        &core.confusion,
        &core.roc,
        core.roc_auc.unwrap_or(f64::NAN),
        &format!("demo fine-tune, int8 core: accuracy {:.3}", core.accuracy),
    )?;
    let smoke_run = core.accuracy < shipped_same;
    log.say(format!(
            "   fine-tuned int8 {:.1} % against the shipped model's {:.1} % on the same {} crops{}",
            100.0 * core.accuracy,
            100.0 * shipped_same,
            test.len(),
            if smoke_run {
                ": a few minutes of training on a few hundred photos is a smoke run of the pipeline, not a better model"
            } else {
                " (a difference this small on so few crops is within chance)"
            }
        ),
    );
    Ok(TrainingReport {
        photos: pre.images,
        face_found_rate: pre.face_found_rate,
        crops_kept,
        split: counts.into_iter().map(|((s, c), n)| (s, c, n)).collect(),
        init_from: weights.to_path_buf(),
        epochs: history.len(),
        train_seconds,
        test_crops: test.len(),
        test_accuracy: metrics
            .iter()
            .map(|m| {
                (
                    serde_json::to_string(&m.engine)
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string(),
                    m.accuracy,
                )
            })
            .collect(),
        int8_core_accuracy_ci95: core.accuracy_ci95,
        shipped_accuracy_same_crops: shipped_same,
        int8_core_vs_tract_mismatches: mismatches,
        smoke_run,
    })
}
