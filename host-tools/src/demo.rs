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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;
use serde::Serialize;

use facegender_export::classifier as export;
use facegender_pipeline::align::AlignMethod;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::dataset::crops::load_split;
use facegender_pipeline::dataset::{self, filter, split};
use facegender_pipeline::detect::DEFAULT_THRESHOLD;
use facegender_pipeline::eval::chart::confusion_and_roc;
use facegender_pipeline::eval::{self, engines};
use facegender_pipeline::model_dir::{self};
use facegender_pipeline::predict::{self, DeviceModels, ImageResult};
use facegender_pipeline::preprocess::{self, Models};
use facegender_pipeline::sheet::{self, Cell};
use facegender_pipeline::{decode, fsutil, progress};
use facegender_qemu::parity;
use facegender_train::inference::run_float;
use facegender_train::training;

/// Crop side and framing of the shipped model (the demo trains the same way).
pub const CROP: u32 = 64;
pub const CROP_SCALE: f64 = 0.75;
/// The fine-tune: a few epochs at a tenth of the shipped run's peak learning rate.
const FINE_TUNE_EPOCHS: usize = 3;
const FINE_TUNE_LR: f64 = 2e-4;
/// Photos per class on the contact sheet (the scenes follow them).
const SHEET_PER_CLASS: usize = 12;
/// The contact sheet and where the demo writes it (the README shows a copy).
pub const CONTACT_SHEET: &str = "contact-sheet.jpg";

/// What the demo runs on.
pub struct Inputs<'a> {
    /// The shipped models (`models/`: `gender/` with `weights.bpk`, `blazeface-int8/`).
    pub models_dir: &'a Path,
    /// The host chain's detector and landmarks.
    pub models: &'a Models<'a>,
    /// Labelled photos, one folder per class.
    pub photos: &'a Path,
    /// Photos with several faces or none, described by their `scenes.csv`.
    pub scenes: Option<&'a Path>,
    pub workdir: &'a Path,
    pub progress: bool,
    /// The photos are known to be outside the shipped model's training split (the bundled
    /// sample is checked against `models/gender/split.csv`); said so in the output.
    pub held_out: bool,
}

/// Accuracy of one chain on the labelled photos, scored as `eval-chain` scores them: the label
/// of each photo's largest face against its folder; a photo without a face counts as wrong.
#[derive(Clone, Debug, Serialize)]
pub struct ChainScore {
    pub photos: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub accuracy_ci95: (f64, f64),
    /// Photos in which at least one face was found.
    pub face_found: usize,
    pub scenes: Option<ScenesScore>,
    /// Predictions, one JSON object per photo.
    pub predictions: PathBuf,
}

/// The scenes: faces found against faces there, and the labelled faces labelled right.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenesScore {
    pub photos: usize,
    pub faces_expected: usize,
    pub faces_found: usize,
    /// Photos where the number of faces found is the number there.
    pub photos_with_the_right_count: usize,
    pub labelled_faces: usize,
    pub labelled_faces_right: usize,
}

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

/// One scene of `scenes.csv`: its file, the faces in it, and the labelled ones with a point
/// inside each.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    pub file: String,
    pub faces: usize,
    pub labelled: Vec<(String, [f32; 2])>,
}

/// Reads `scenes.csv` (`file,faces,labelled,sources`; `labelled` is `label@x:y ...`).
pub fn read_scenes(path: &Path) -> anyhow::Result<Vec<Scene>> {
    let mut r = csv::Reader::from_path(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), i + 2))?;
        let bad = || format!("{} row {}: {:?}", path.display(), i + 2, row);
        let file = row.get(0).with_context(bad)?.to_string();
        let faces = row.get(1).with_context(bad)?.parse().with_context(bad)?;
        let mut labelled = Vec::new();
        for l in row.get(2).unwrap_or("").split_whitespace() {
            let (label, at) = l.split_once('@').with_context(bad)?;
            let (x, y) = at.split_once(':').with_context(bad)?;
            labelled.push((
                label.to_string(),
                [x.parse().with_context(bad)?, y.parse().with_context(bad)?],
            ));
        }
        anyhow::ensure!(labelled.len() <= faces, "{}: more labels than faces", bad());
        out.push(Scene {
            file,
            faces,
            labelled,
        });
    }
    Ok(out)
}

/// Scores a scene: (faces found, labelled faces right). A labelled face is right when the
/// smallest found box holding its point carries its label.
pub fn score_scene(s: &Scene, r: &ImageResult) -> (usize, usize) {
    let right = s
        .labelled
        .iter()
        .filter(|(label, [x, y])| {
            r.faces
                .iter()
                .filter(|f| {
                    f.bbox[0] <= *x && *x <= f.bbox[2] && f.bbox[1] <= *y && *y <= f.bbox[3]
                })
                .min_by(|a, b| area(a.bbox).total_cmp(&area(b.bbox)))
                .is_some_and(|f| f.label.as_deref() == Some(label.as_str()))
        })
        .count();
    (r.faces.len(), right)
}

fn area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

fn score(
    results: &[ImageResult],
    items: &[dataset::Item],
    scenes: Option<(&[Scene], &[ImageResult])>,
    predictions: PathBuf,
) -> anyhow::Result<ChainScore> {
    let correct = results
        .iter()
        .zip(items)
        .filter(|(r, it)| predict::main_label(r) == Some(it.class.as_str()))
        .count();
    let photos = results.len();
    let scene_results = scenes.map_or(&[][..], |(_, rs)| rs);
    let scenes = scenes.map(|(ss, rs)| {
        let mut t = ScenesScore {
            photos: ss.len(),
            ..Default::default()
        };
        for (s, r) in ss.iter().zip(rs) {
            let (found, right) = score_scene(s, r);
            t.faces_expected += s.faces;
            t.faces_found += found;
            t.photos_with_the_right_count += (found == s.faces) as usize;
            t.labelled_faces += s.labelled.len();
            t.labelled_faces_right += right;
        }
        t
    });
    let mut jsonl = Vec::new();
    for r in results.iter().chain(scene_results) {
        serde_json::to_writer(&mut jsonl, r)?;
        jsonl.push(b'\n');
    }
    fsutil::write_replace(&predictions, &jsonl)?;
    Ok(ChainScore {
        photos,
        correct,
        accuracy: correct as f64 / photos.max(1) as f64,
        accuracy_ci95: eval::wilson95(correct, photos),
        face_found: results.iter().filter(|r| !r.faces.is_empty()).count(),
        scenes,
        predictions,
    })
}

fn say(log: &mut String, s: String) {
    eprintln!("{s}");
    let _ = writeln!(log, "{s}");
}

/// One chain over every photo, in parallel, with a progress bar when `progress`.
fn predict_all(
    paths: &[&Path],
    progress: bool,
    chain: impl Fn(&Path) -> ImageResult + Sync,
) -> Vec<ImageResult> {
    let bar = progress::bar(paths.len(), progress);
    let out = paths
        .par_iter()
        .map(|p| {
            bar.inc(1);
            chain(p)
        })
        .collect();
    bar.finish_and_clear();
    out
}

/// Runs the demo in `inputs.workdir` (created; an earlier demo there is replaced). Returns the
/// report and everything it said.
pub fn run(inputs: &Inputs<'_>) -> anyhow::Result<(DemoReport, String)> {
    let started = Instant::now();
    let mut log = String::new();
    let mut steps = Vec::new();
    let workdir = inputs.workdir;
    let shipped = inputs.models_dir.join("gender");
    let weights = shipped.join("weights.bpk");
    anyhow::ensure!(
        weights.is_file(),
        "{} is missing: the demo fine-tunes from the shipped float weights (scripts/train-shipped writes them)",
        weights.display()
    );
    clear_workdir(workdir)?;

    // 1. the shipped model through predict
    let t = Instant::now();
    let items = dataset::list(inputs.photos)?;
    anyhow::ensure!(
        !items.is_empty(),
        "no labelled photos in {}",
        inputs.photos.display()
    );
    let scenes: Vec<Scene> = match inputs.scenes {
        Some(d) => read_scenes(&d.join("scenes.csv"))?,
        None => Vec::new(),
    };
    let scene_paths: Vec<PathBuf> = match inputs.scenes {
        Some(d) => scenes.iter().map(|s| d.join(&s.file)).collect(),
        None => Vec::new(),
    };
    let (info, bytes) = model_dir::read_classifier(&shipped)?;
    let classifier = Classifier::new(&bytes, info)?;
    // as `eval-chain` scores: every face labelled with its top class
    let cfg = predict::Config {
        threshold: DEFAULT_THRESHOLD,
        min_face: 0.0,
        min_probability: 0.0,
        mirror: false,
    };
    let paths: Vec<&Path> = items.iter().map(|it| it.path.as_path()).collect();
    let all: Vec<&Path> = paths
        .iter()
        .copied()
        .chain(scene_paths.iter().map(PathBuf::as_path))
        .collect();
    say(
        &mut log,
        format!(
            "1. The shipped model ({}) on {} {} and {} scenes",
            shipped.display(),
            items.len(),
            if inputs.held_out {
                "held-out photos (not one was in its training split)"
            } else {
                "labelled photos (yours: the model may have trained on some of them)"
            },
            scenes.len()
        ),
    );
    let host = predict_all(&all, inputs.progress, |p| {
        predict::predict_image(inputs.models, &classifier, &cfg, p, None)
    });
    let (host_photos, host_scenes) = host.split_at(items.len());
    let host_score = score(
        host_photos,
        &items,
        inputs.scenes.map(|_| (&scenes[..], host_scenes)),
        workdir.join("predict-host.jsonl"),
    )?;
    say(&mut log, chain_lines("host chain", &host_score));
    let contact_sheet = workdir.join(CONTACT_SHEET);
    write_sheet(
        &contact_sheet,
        &items,
        host_photos,
        &scenes,
        host_scenes,
        &scene_paths,
    )?;
    say(
        &mut log,
        format!(
            "   contact sheet (boxes, labels, probabilities; green frame right, red wrong): {}",
            contact_sheet.display()
        ),
    );
    steps.push((
        "shipped model, host chain".to_string(),
        t.elapsed().as_secs_f64(),
    ));

    // 2. the device chain, and the firmware in QEMU
    let t = Instant::now();
    say(
        &mut log,
        "2. The device chain (int8 BlazeFace, keypoint alignment, the int8 classifier) on the same photos"
            .to_string(),
    );
    let device = DeviceModels::load(&inputs.models_dir.join("blazeface-int8"), &shipped)?;
    let dev = predict_all(&all, inputs.progress, |p| {
        predict::predict_device(&device, &classifier, &cfg, p, None)
    });
    let (dev_photos, dev_scenes) = dev.split_at(items.len());
    let dev_score = score(
        dev_photos,
        &items,
        inputs.scenes.map(|_| (&scenes[..], dev_scenes)),
        workdir.join("predict-device.jsonl"),
    )?;
    let same_label = host_photos
        .iter()
        .zip(dev_photos)
        .filter(|(h, d)| predict::main_label(h) == predict::main_label(d))
        .count();
    say(&mut log, chain_lines("device chain", &dev_score));
    say(
        &mut log,
        format!(
            "   the two chains give the same label on {same_label} of {} photos",
            items.len()
        ),
    );
    let qemu = parity::check_chain(&shipped, inputs.models_dir)?;
    let per_frame: Vec<String> = qemu
        .detect_per_frame
        .iter()
        .map(|(name, _, detect)| {
            format!(
                "{name} {}",
                millions(detect + qemu.align_instructions + qemu.classify_instructions)
            )
        })
        .collect();
    say(
        &mut log,
        format!(
            "   firmware in QEMU (Cortex-M4F, mps2-an386), whole chain on its {} embedded frames: {}/{} faces equal to the host bit for bit (box, score, keypoints, int8 logits, label); instructions per frame with one face: {} (detection is one detector run, or two when the frame is tried again with a margin; align {}, classify {} per face); flash {} B, RAM {} B",
            qemu.frames,
            qemu.equal,
            qemu.total,
            per_frame.join(", "),
            millions(qemu.align_instructions),
            millions(qemu.classify_instructions),
            qemu.flash_bytes(),
            qemu.ram_bytes()
        ),
    );
    anyhow::ensure!(
        qemu.total > 0 && qemu.equal == qemu.total,
        "the firmware and the host disagree on {} of {} faces:\n{}",
        qemu.total - qemu.equal,
        qemu.total,
        qemu.lines.join("\n")
    );
    steps.push((
        "device chain and QEMU".to_string(),
        t.elapsed().as_secs_f64(),
    ));

    // 3. the training pipeline on the sample
    let t = Instant::now();
    say(
        &mut log,
        "3. The training pipeline on the sample: preprocess, filter, split, fine-tune, export, eval"
            .to_string(),
    );
    let training = fine_tune(inputs, &shipped, &weights, &mut log)?;
    steps.push(("training pipeline".to_string(), t.elapsed().as_secs_f64()));

    let qemu_instructions_per_frame = qemu.instructions_per_frame();
    let report = DemoReport {
        workdir: workdir.to_path_buf(),
        held_out: inputs.held_out,
        seconds: started.elapsed().as_secs_f64(),
        step_seconds: steps,
        shipped_model: shipped,
        host_chain: host_score,
        device_chain: dev_score,
        same_label,
        contact_sheet,
        qemu,
        qemu_instructions_per_frame,
        training,
    };
    fsutil::write_replace(
        &workdir.join("demo.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok((report, log))
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

fn millions(n: u64) -> String {
    format!("{:.1} M", n as f64 / 1e6)
}

fn chain_lines(name: &str, s: &ChainScore) -> String {
    let mut out = format!(
        "   {name}: accuracy {:.1} % ({} of {}; 95 % interval {:.1}-{:.1} %), a face found in {} of {} photos",
        100.0 * s.accuracy,
        s.correct,
        s.photos,
        100.0 * s.accuracy_ci95.0,
        100.0 * s.accuracy_ci95.1,
        s.face_found,
        s.photos
    );
    if let Some(t) = &s.scenes {
        let _ = write!(
            out,
            "\n   {name}, scenes: {} faces found where there are {} (right count in {} of {} photos), {} of {} labelled faces right",
            t.faces_found,
            t.faces_expected,
            t.photos_with_the_right_count,
            t.photos,
            t.labelled_faces_right,
            t.labelled_faces
        );
    }
    out
}

/// The first photos of each class and every scene, annotated, on one sheet.
fn write_sheet(
    path: &Path,
    items: &[dataset::Item],
    results: &[ImageResult],
    scenes: &[Scene],
    scene_results: &[ImageResult],
    scene_paths: &[PathBuf],
) -> anyhow::Result<()> {
    let mut per_class = std::collections::BTreeMap::<&str, usize>::new();
    let mut cells = Vec::new();
    for (it, r) in items.iter().zip(results) {
        let n = per_class.entry(it.class.as_str()).or_insert(0);
        if *n >= SHEET_PER_CLASS {
            continue;
        }
        *n += 1;
        let img = decode::decode_file(&it.path, &Default::default())?;
        let said = match predict::main_face(r) {
            Some(f) => format!(
                "{} {:.0}%",
                f.label.as_deref().unwrap_or(f.status),
                100.0 * f.probability.unwrap_or(0.0)
            ),
            None => "no face".into(),
        };
        cells.push(Cell {
            image: predict::draw(&img, r)?,
            caption: format!("{} -> {said}", it.class),
            right: Some(predict::main_label(r) == Some(it.class.as_str())),
        });
    }
    for ((s, r), p) in scenes.iter().zip(scene_results).zip(scene_paths) {
        let img = decode::decode_file(p, &Default::default())?;
        let (found, right) = score_scene(s, r);
        cells.push(Cell {
            image: predict::draw(&img, r)?,
            caption: format!("{found} of {} faces found", s.faces),
            right: Some(found == s.faces && right == s.labelled.len()),
        });
    }
    let img = sheet::grid(&cells, 6, 160)?;
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 85).encode_image(&img)?;
    Ok(fsutil::write_replace(path, &jpg)?)
}

/// Step 3: the sample through preprocess, filter and split, a short fine-tune from the shipped
/// weights, export and every engine's evaluation.
fn fine_tune(
    inputs: &Inputs<'_>,
    shipped: &Path,
    weights: &Path,
    log: &mut String,
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
    say(
        log,
        format!(
            "   preprocess: {} photos, face found in {:.1} %, {} aligned {CROP} px crops",
            pre.images,
            100.0 * pre.face_found_rate,
            pre.by_status
                .get(&preprocess::Status::Ok)
                .copied()
                .unwrap_or(0),
        ),
    );
    let frep = filter::run(&crops, 10)?;
    fsutil::write_replace(
        &workdir.join("filter.json"),
        &serde_json::to_vec_pretty(&frep)?,
    )?;
    let crops_kept = frep.keep.len();
    say(
        log,
        format!(
            "   filter: {} kept, {} duplicates, {} unreadable",
            crops_kept,
            frep.duplicates.len(),
            frep.unreadable.len()
        ),
    );
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
    say(
        log,
        format!("   split (70/15/15, seed 42):\n{}", split::table(&rows)),
    );

    let mut tcfg = training::TrainConfig::load(&shipped.join("config.toml"))?;
    tcfg.train.epochs = FINE_TUNE_EPOCHS;
    tcfg.train.lr = FINE_TUNE_LR;
    tcfg.train.warmup_epochs = 0;
    tcfg.train.batch = 32;
    tcfg.train.init_from = weights.display().to_string();
    let side = tcfg.model.input as u32;
    let train = load_split(&data_dir.join("train"), None, side, progress)?;
    let val = load_split(&data_dir.join("val"), Some(&train.classes), side, progress)?;
    let run = workdir.join("run");
    let t = Instant::now();
    let history = training::train(&tcfg, &train, &val, &run, false, progress)?;
    let train_seconds = t.elapsed().as_secs_f64();
    let last = history.last().context("no epoch finished")?;
    say(
        log,
        format!(
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
    say(
        log,
        format!(
            "   export: {} MACs, {} weight bytes, arena {} bytes -> {}",
            info.macs,
            info.weight_bytes,
            info.arena_bytes,
            model_dir.display()
        ),
    );
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
    say(
        log,
        format!(
            "   eval on the sample's {} test crops:\n{}",
            test.len(),
            eval::table(&metrics)
        ),
    );
    say(
        log,
        format!("   int8 core vs int8 tract: {mismatches} crops with different logits"),
    );
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
    say(
        log,
        format!(
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

    fn face(bbox: [f32; 4], label: &str) -> predict::FaceResult {
        predict::FaceResult {
            face: 0,
            bbox,
            score: 0.9,
            status: "ok",
            label: Some(label.into()),
            probability: Some(0.9),
            logits: None,
            keypoints: None,
            landmarks: Vec::new(),
        }
    }

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

    #[test]
    fn the_bundled_scenes_file_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/scenes");
        let s = read_scenes(&dir.join("scenes.csv")).unwrap();
        assert!(s.iter().any(|s| s.faces == 0) && s.iter().any(|s| s.faces >= 2));
        for s in &s {
            assert!(dir.join(&s.file).is_file(), "{}", s.file);
        }
        assert_eq!(
            s[0].labelled[1],
            ("male".to_string(), [272.0, 96.0]),
            "label@x:y"
        );
    }

    #[test]
    fn a_labelled_face_is_scored_by_the_smallest_box_holding_its_point() {
        let scene = Scene {
            file: String::new(),
            faces: 2,
            labelled: vec![
                ("female".into(), [50.0, 50.0]),
                ("male".into(), [150.0, 50.0]),
            ],
        };
        let r = ImageResult {
            image: PathBuf::new(),
            status: "ok",
            error: None,
            // a big false box over both, and the right small one for the first face only
            faces: vec![
                face([0.0, 0.0, 200.0, 100.0], "male"),
                face([30.0, 30.0, 70.0, 70.0], "female"),
            ],
        };
        assert_eq!(score_scene(&scene, &r), (2, 2));
        let none = ImageResult {
            faces: Vec::new(),
            ..r
        };
        assert_eq!(score_scene(&scene, &none), (0, 0));
    }
}
