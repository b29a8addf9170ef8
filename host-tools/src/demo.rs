//! `facegender demo`: the whole product on the bundled sample, in a few minutes.
//!
//! preprocess -> filter -> split -> short training -> export -> eval (float, ONNX, int8 tract,
//! int8 core) -> the firmware in QEMU, checked against the host. A short training on a few
//! hundred photos is not a real model; when its test accuracy is below [`MEANINGFUL`], the QEMU
//! step uses the shipped model instead, and says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use facegender_core::nn::Model;
use serde::Serialize;

use crate::align::AlignMethod;
use crate::dataset::{filter, split};
use crate::eval;
use crate::export;
use crate::firmware;
use crate::fsutil;
use crate::preprocess::{self, Models};
use crate::train::{data, training};

/// Test accuracy below which the demo's own model is not worth flashing.
pub const MEANINGFUL: f64 = 0.75;
/// Crop side and framing of the shipped model (the demo trains the same way).
pub const CROP: u32 = 64;
pub const CROP_SCALE: f64 = 0.75;
/// Firmware test crops written per class.
const FIRMWARE_CROPS_PER_CLASS: usize = 3;

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub workdir: PathBuf,
    pub photos: usize,
    pub crops: usize,
    pub face_found_rate: f64,
    pub split: Vec<(String, String, usize)>,
    pub epochs: usize,
    pub test_accuracy: Vec<(String, f64)>,
    pub int8_core_vs_tract_mismatches: Option<usize>,
    pub firmware_model: PathBuf,
    pub firmware_used_shipped_model: bool,
    pub firmware_crops_matching_host: (usize, usize),
    pub firmware_instructions_per_inference: Option<u64>,
    pub seconds: f64,
}

/// Writes raw `side x side x 3` crops for the firmware build, `n` per class, from `split`.
pub fn write_firmware_crops(
    split_dir: &Path,
    dest: &Path,
    side: u32,
    n: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dest)?;
    for old in std::fs::read_dir(dest)?.flatten() {
        if old.path().extension().is_some_and(|e| e == "rgb") {
            std::fs::remove_file(old.path())?;
        }
    }
    let items = crate::dataset::list(split_dir)?;
    let mut written = Vec::new();
    let mut per_class = std::collections::BTreeMap::<String, usize>::new();
    for it in items {
        let c = per_class.entry(it.class.clone()).or_insert(0);
        if *c >= n {
            continue;
        }
        let img = crate::decode::decode_file(&it.path, &Default::default())?;
        let img = if img.dimensions() == (side, side) {
            img
        } else {
            image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle)
        };
        let stem = Path::new(&it.rel)
            .file_stem()
            .map_or("crop".into(), |s| s.to_string_lossy().into_owned());
        let path = dest.join(format!("{:02}-{}-{stem}.rgb", written.len(), it.class));
        fsutil::write_replace(&path, img.as_raw())?;
        written.push(path);
        *c += 1;
    }
    Ok(written)
}

/// Builds the classifier firmware for `model_dir`, boots it in QEMU, and compares every crop's
/// label and int8 logits with the core on the host. Returns (matching, total, instructions).
pub fn firmware_check(model_dir: &Path) -> anyhow::Result<(usize, usize, Option<u64>, String)> {
    let elf = firmware::build("classify", model_dir, &[])?;
    let log = firmware::run_qemu(&elf, Duration::from_secs(300))?;
    let lines = firmware::parse_crops(&log);
    let bytes = crate::models::read(&model_dir.join(export::CORE_MODEL))?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = eval::export_info(model_dir)?;
    let mut arena = vec![0u8; model.arena_len()];
    let mut matching = 0;
    for l in &lines {
        let raw = std::fs::read(
            model_dir
                .join("firmware-crops")
                .join(format!("{}.rgb", l.crop)),
        )?;
        let input: Vec<i8> = raw.iter().map(|&p| (p as i16 - 128) as i8).collect();
        let out = model
            .run(&mut arena, &input)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let host = out.get(0).context("no output")?;
        let best = (0..host.len()).fold(0, |b, k| if host[k] > host[b] { k } else { b });
        if host == &l.logits[..] && info.classes.get(best) == Some(&l.label) {
            matching += 1;
        }
    }
    Ok((
        matching,
        lines.len(),
        lines.first().map(|l| l.instructions),
        log,
    ))
}

/// Runs the demo in `workdir` (created; an earlier demo there is replaced).
pub fn run(
    models_dir: &Path,
    m: &Models<'_>,
    sample: &Path,
    workdir: &Path,
    progress: bool,
) -> anyhow::Result<(DemoReport, String)> {
    let started = Instant::now();
    let mut log = String::new();
    let mut say = |s: String| {
        eprintln!("demo: {s}");
        let _ = writeln!(log, "{s}");
    };
    if workdir.exists() {
        std::fs::remove_dir_all(workdir)
            .with_context(|| format!("clearing {}", workdir.display()))?;
    }
    std::fs::create_dir_all(workdir)?;

    // 1. preprocess
    let crops = workdir.join("crops");
    let cfg = preprocess::Config {
        input: sample.to_path_buf(),
        output: crops.clone(),
        crop: CROP,
        align: AlignMethod::InnerEyesBottomLip,
        scale: CROP_SCALE,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        multi: preprocess::MultiFace::Largest,
        threshold: crate::detect::DEFAULT_THRESHOLD,
        min_face: 24.0,
        progress,
    };
    let pre = preprocess::run(&cfg, m)?;
    say(format!(
        "preprocess: {} photos, face found in {:.1}%, {} crops ({:.0} photos/s)",
        pre.images,
        100.0 * pre.face_found_rate,
        pre.by_status
            .get(&preprocess::Status::Ok)
            .copied()
            .unwrap_or(0),
        pre.images_per_second
    ));

    // 2. filter, 3. split
    let frep = filter::run(&crops, 10)?;
    fsutil::write_replace(
        &workdir.join("filter.json"),
        &serde_json::to_vec_pretty(&frep)?,
    )?;
    say(format!(
        "filter: {} kept, {} duplicates, {} unreadable",
        frep.keep.len(),
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
    say(format!(
        "split (70/15/15, seed 42):\n{}",
        split::table(&rows)
    ));

    // 4. a short training
    let mut tcfg = training::TrainConfig::default();
    tcfg.model.input = CROP as usize;
    tcfg.train.epochs = 4;
    tcfg.train.batch = 32;
    tcfg.train.patience = 10;
    let train = data::load_split(&data_dir.join("train"), None, CROP, progress)?;
    let val = data::load_split(&data_dir.join("val"), Some(&train.classes), CROP, progress)?;
    let run = workdir.join("run");
    let history = training::train(&tcfg, &train, &val, &run, false, progress)?;
    let last = history.last().context("no epoch finished")?;
    say(format!(
        "train: {} epochs on {} crops, last validation accuracy {:.3}; curves in {}",
        history.len(),
        train.len(),
        last.val_acc,
        run.join("history.png").display()
    ));

    // 5. export
    let model_dir = workdir.join("model");
    let info = export::export(
        &run,
        &train,
        &model_dir,
        AlignMethod::InnerEyesBottomLip,
        CROP_SCALE,
        export::Ranges::Mse,
    )?;
    say(format!(
        "export: {} MACs, {} weight bytes, arena {} bytes -> {}",
        info.macs,
        info.weight_bytes,
        info.arena_bytes,
        model_dir.display()
    ));

    // 6. eval, all engines
    let test = data::load_split(&data_dir.join("test"), Some(&info.classes), CROP, progress)?;
    let outs = [
        eval::run_float(&run, &test)?,
        eval::run_onnx(&model_dir, &test)?,
        eval::run_int8_tract(&model_dir, &test)?,
        eval::run_int8_core(&model_dir, &test)?,
    ];
    let metrics: Vec<eval::Metrics> = outs.iter().map(|o| eval::metrics(o, &test, &[])).collect();
    let mismatches = eval::agreement(&outs[2], &outs[3]).int8_mismatches;
    say(format!(
        "eval on {} test crops:\n{}",
        test.len(),
        eval::table(&metrics)
    ));
    say(format!(
        "int8 core vs int8 tract: {} images with different logits",
        mismatches.unwrap_or(0)
    ));
    let eval_dir = workdir.join("eval");
    std::fs::create_dir_all(&eval_dir)?;
    let core = metrics.last().context("no metrics")?;
    crate::plot::confusion_and_roc(
        &eval_dir.join("eval-int8-core.png"),
        &test.classes,
        &core.confusion,
        &core.roc,
        core.roc_auc.unwrap_or(f64::NAN),
        &format!("demo model, int8 core: accuracy {:.3}", core.accuracy),
    )?;

    // 7. firmware in QEMU
    let own_good = core.accuracy >= MEANINGFUL;
    let fw_model = if own_good {
        model_dir.clone()
    } else {
        models_dir.join("gender")
    };
    if own_good {
        write_firmware_crops(
            &data_dir.join("test"),
            &fw_model.join("firmware-crops"),
            info.input as u32,
            FIRMWARE_CROPS_PER_CLASS,
        )?;
        say(format!(
            "firmware: the demo model reached {:.3} test accuracy; flashing it",
            core.accuracy
        ));
    } else {
        say(format!(
            "firmware: the demo model reached only {:.3} test accuracy (below {MEANINGFUL}); using the shipped model {} for the QEMU step",
            core.accuracy,
            fw_model.display()
        ));
    }
    let (ok, total, instr, _) = firmware_check(&fw_model)?;
    say(format!(
        "firmware in QEMU (Cortex-M4F, mps2-an386): {ok}/{total} crops give the host's label and int8 logits, {} instructions per inference",
        instr.map_or("?".into(), |i| i.to_string())
    ));
    anyhow::ensure!(
        total > 0 && ok == total,
        "firmware and host disagree on {} of {total} crops",
        total - ok
    );

    let report = DemoReport {
        workdir: workdir.to_path_buf(),
        photos: pre.images,
        crops: pre
            .by_status
            .get(&preprocess::Status::Ok)
            .copied()
            .unwrap_or(0),
        face_found_rate: pre.face_found_rate,
        split: counts.into_iter().map(|((s, c), n)| (s, c, n)).collect(),
        epochs: history.len(),
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
        int8_core_vs_tract_mismatches: mismatches,
        firmware_model: fw_model,
        firmware_used_shipped_model: !own_good,
        firmware_crops_matching_host: (ok, total),
        firmware_instructions_per_inference: instr,
        seconds: started.elapsed().as_secs_f64(),
    };
    fsutil::write_replace(
        &workdir.join("demo.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok((report, log))
}

/// The closing summary.
pub fn summary(r: &DemoReport) -> String {
    let acc: Vec<String> = r
        .test_accuracy
        .iter()
        .map(|(e, a)| format!("{e} {a:.3}"))
        .collect();
    format!(
        "demo finished in {:.0} s\n\
         photos {} -> crops {} (face found in {:.1}%)\n\
         test accuracy: {}\n\
         firmware ({}): {}/{} crops equal to the host\n\
         artifacts in {}: crops/, data/ (train/val/test + manifest.csv), run/ (history.csv, history.png), model/ (model.onnx, model-int8.onnx, model.fgi8), eval/, demo.json",
        r.seconds,
        r.photos,
        r.crops,
        100.0 * r.face_found_rate,
        acc.join(", "),
        if r.firmware_used_shipped_model {
            "shipped model"
        } else {
            "demo model"
        },
        r.firmware_crops_matching_host.0,
        r.firmware_crops_matching_host.1,
        r.workdir.display()
    )
}
