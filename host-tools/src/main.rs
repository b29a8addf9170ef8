//! The `facegender` binary: parse, validate, dispatch, report errors with their causes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use facegender::cli::{
    AugmentArgs, BenchArgs, Cli, Command, DemoArgs, EvalArgs, EvalChainArgs, EvalDetectorArgs,
    ExportArgs, FilterArgs, FirmwareArgs, FitDlibBoxArgs, FitTemplateArgs, PredictArgs,
    PreprocessArgs, QuantizeDetectorArgs, SplitArgs, TeacherLogitsArgs, TrainArgs,
};
use facegender::dataset::{filter, split};
use facegender::detect::BlazeFace;
use facegender::landmarks::{BoxMap, LandmarkModel};
use facegender::{augment, fsutil, models, preprocess, reference};

/// Set once stdout's reader has gone (`| head`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a line to stdout. After the reader has gone (`| head`) lines are dropped quietly and the
/// command carries on, so the files it writes after printing (eval.json, reports) are not lost.
fn out(s: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    if STDOUT_CLOSED.load(Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{s}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Relaxed);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Partial>().is_some() => {
            eprintln!("warning: {e}");
            ExitCode::from(EXIT_SOME_FAILED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Exit status when some inputs could not be read (the rest were processed).
const EXIT_SOME_FAILED: u8 = 3;

/// An error that carries its own exit status.
#[derive(Debug)]
struct Partial(String);
impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Partial {}

fn run(cli: Cli) -> anyhow::Result<()> {
    let models_dir = models::models_dir(cli.models.as_deref());
    let dlib_path = models::dlib_model_path(cli.landmarks.as_deref());
    match cli.command {
        Command::Preprocess(a) => preprocess_cmd(a, &models_dir, &dlib_path, !cli.quiet),
        Command::FitDlibBox(a) => fit_dlib_box(a, &models_dir, &dlib_path),
        Command::Filter(a) => filter_cmd(a),
        Command::Split(a) => split_cmd(a, !cli.quiet),
        Command::Augment(a) => augment_cmd(a),
        Command::Train(a) => train_cmd(a, !cli.quiet),
        Command::TeacherLogits(a) => teacher_logits_cmd(a, !cli.quiet),
        Command::Export(a) => export_cmd(a, !cli.quiet),
        Command::Eval(a) => eval_cmd(a, !cli.quiet),
        Command::Predict(a) => predict_cmd(a, &models_dir, &dlib_path, !cli.quiet),
        Command::Bench(a) => bench_cmd(a, &models_dir, &dlib_path),
        Command::Demo(a) => demo_cmd(a, &models_dir, &dlib_path, !cli.quiet),
        Command::Firmware(a) => firmware_cmd(a, &models_dir),
        Command::QuantizeDetector(a) => quantize_detector_cmd(a, &models_dir),
        Command::EvalDetector(a) => eval_detector_cmd(a, &models_dir),
        Command::FitKeypointTemplate(a) => fit_template_cmd(a),
        Command::EvalChain(a) => eval_chain_cmd(a, &models_dir, &dlib_path, !cli.quiet),
    }
}

fn preprocess_cmd(
    a: PreprocessArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
    progress: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (8..=1024).contains(&a.crop),
        "--crop must be between 8 and 1024 pixels"
    );
    anyhow::ensure!(a.scale > 0.0 && a.scale <= 4.0, "--scale must be in (0, 4]");
    anyhow::ensure!(
        (0.0..1.0).contains(&a.threshold),
        "--threshold must be in [0, 1)"
    );
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
    let cfg = preprocess::Config {
        input: a.input,
        output: a.output,
        crop: a.crop,
        align: a.align,
        scale: a.scale,
        jobs,
        multi: if a.skip_multi {
            preprocess::MultiFace::Skip
        } else {
            preprocess::MultiFace::Largest
        },
        threshold: a.threshold,
        min_face: a.min_face,
        progress,
    };
    let detector = BlazeFace::load(models_dir, a.detector)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models {
        detector: &detector,
        landmarks: &sp,
        box_map: BoxMap::FITTED,
    };
    let report = preprocess::run(&cfg, &m)?;
    out(&preprocess::summary(&report));
    Ok(())
}

fn fit_dlib_box(
    a: FitDlibBoxArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
) -> anyhow::Result<()> {
    let shared = match a.shared {
        Some(s) => s,
        None => a
            .reference
            .ancestors()
            .nth(3)
            .context("cannot infer --shared from --reference")?
            .to_path_buf(),
    };
    let faces = reference::load(&a.reference, &shared)?;
    let detector = BlazeFace::load(models_dir, a.detector)?;
    let detections = reference::detect_all(&detector, &faces, a.threshold)?;
    let pairs: Vec<_> = faces
        .iter()
        .zip(&detections)
        .filter_map(|(f, d)| d.map(|d| (d, f.rect)))
        .collect();
    let fitted = facegender::landmarks::fit_box_map(&pairs);
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    out(&format!(
        "{} reference faces, detector matched {}",
        faces.len(),
        pairs.len()
    ));
    out(&format!("fitted box map: {:?}", fitted.sides));
    for (name, map) in [("fitted", fitted), ("shipped", BoxMap::FITTED)] {
        let e = reference::chain_error(&sp, &faces, &detections, &map)?;
        out(&format!(
            "{name}: landmark error / inter-ocular distance: mean {:.4}, median {:.4}, worst {:.4} over {} faces",
            e.mean_nme, e.median_nme, e.worst_nme, e.detected
        ));
    }
    Ok(())
}

fn filter_cmd(a: FilterArgs) -> anyhow::Result<()> {
    let report = filter::run(&a.input, a.min_images)?;
    out(&filter::table(&report));
    if let Some(path) = a.report {
        fsutil::write_replace(&path, &serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        out(&format!("report: {}", path.display()));
    }
    Ok(())
}

fn parse_ratios(s: &str) -> anyhow::Result<[f64; 3]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--ratios {s:?}: expected three numbers like 0.8,0.1,0.1"))?;
    anyhow::ensure!(
        v.len() == 3,
        "--ratios needs three numbers (train, val, test), got {}",
        v.len()
    );
    anyhow::ensure!(
        v.iter().all(|r| r.is_finite() && *r >= 0.0),
        "--ratios must not be negative"
    );
    let sum: f64 = v.iter().sum();
    anyhow::ensure!(
        (sum - 1.0).abs() < 1e-6,
        "--ratios must add up to 1 (they add up to {sum})"
    );
    Ok([v[0], v[1], v[2]])
}

fn split_cmd(a: SplitArgs, progress: bool) -> anyhow::Result<()> {
    if a.rollback {
        let n = split::rollback(&a.output, &a.input, progress)?;
        out(&format!(
            "rolled back: {n} files moved back to {}",
            a.input.display()
        ));
        return Ok(());
    }
    let ratios = parse_ratios(&a.ratios)?;
    let (grouping, group_desc) = match (&a.group_by, &a.groups) {
        (Some(re), _) => (
            split::Grouping::Regex(
                regex::Regex::new(re).with_context(|| format!("--group-by {re:?}"))?,
            ),
            Some(format!("regex {re}")),
        ),
        (None, Some(f)) => (
            split::Grouping::Map(split::read_groups(f)?),
            Some(format!("file {}", f.display())),
        ),
        (None, None) => (split::Grouping::None, None),
    };
    let filter = match &a.filter {
        Some(p) => Some(
            serde_json::from_slice::<filter::Report>(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a filter report", p.display()))?,
        ),
        None => None,
    };
    let mode = if a.r#move {
        split::Mode::Move
    } else if a.link {
        split::Mode::Link
    } else {
        split::Mode::Copy
    };
    let cfg = split::Config {
        input: a.input,
        output: a.output,
        ratios,
        seed: a.seed,
        mode,
        grouping,
        group_desc,
        dry_run: a.dry_run,
        filter,
        progress,
    };
    let (rows, outcome) = split::run(&cfg)?;
    out(&split::table(&rows));
    if cfg.dry_run {
        out(&format!(
            "dry run: {} files would be {:?}d into {}; nothing was changed",
            rows.len(),
            mode,
            cfg.output.display()
        )
        .to_lowercase());
        for r in rows.iter().take(10) {
            out(&format!("  {} -> {}", r.source, r.path));
        }
    } else {
        out(&format!(
            "{:?}: {} files done now, {} were already done{}; manifest: {}",
            mode,
            outcome.done_now,
            outcome.already_done,
            if outcome.resumed { " (resumed)" } else { "" },
            cfg.output.join("manifest.csv").display()
        ));
    }
    Ok(())
}

fn augment_cmd(a: AugmentArgs) -> anyhow::Result<()> {
    use image::ImageEncoder;
    use rayon::prelude::*;
    anyhow::ensure!(a.input.is_dir(), "{} is not a folder", a.input.display());
    let mut files = fsutil::image_files(&a.input)?;
    if let Some(n) = a.limit {
        files.truncate(n);
    }
    anyhow::ensure!(!files.is_empty(), "no images in {}", a.input.display());
    let aug = augment::Augment::default();
    let results: Vec<(image::RgbImage, Vec<image::RgbImage>)> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let img = facegender::decode::decode_file(f, &Default::default())
                .with_context(|| f.display().to_string())?;
            let rel = f.strip_prefix(&a.input).unwrap_or(f);
            let mut augs = Vec::with_capacity(a.per_image);
            for k in 0..a.per_image {
                let seed = a
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((i * a.per_image + k) as u64);
                let out_img = aug.apply(&img, seed);
                let stem = rel.with_extension("");
                let dst = a.output.join(format!("{}_aug{k}.png", stem.display()));
                let mut png = Vec::new();
                image::codecs::png::PngEncoder::new(&mut png).write_image(
                    out_img.as_raw(),
                    out_img.width(),
                    out_img.height(),
                    image::ExtendedColorType::Rgb8,
                )?;
                if !fsutil::write_new(&dst, &png)? {
                    eprintln!("warning: {} exists; left as it is", dst.display());
                }
                augs.push(out_img);
            }
            Ok((img, augs))
        })
        .collect::<anyhow::Result<_>>()?;
    out(&format!(
        "wrote {} augmented images to {}",
        files.len() * a.per_image,
        a.output.display()
    ));
    if let Some(grid) = a.grid {
        let rows: Vec<_> = results.into_iter().take(a.grid_rows).collect();
        let sheet = augment::contact_sheet(&rows, 96);
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png).write_image(
            sheet.as_raw(),
            sheet.width(),
            sheet.height(),
            image::ExtendedColorType::Rgb8,
        )?;
        fsutil::write_replace(&grid, &png)
            .with_context(|| format!("writing {}", grid.display()))?;
        out(&format!("contact sheet: {}", grid.display()));
    }
    Ok(())
}

fn set_threads(n: usize) {
    let n = if n == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n
    };
    // burn and the batch builder share rayon's global pool; it can only be sized once
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

fn teacher_logits_cmd(a: TeacherLogitsArgs, progress: bool) -> anyhow::Result<()> {
    use facegender::train::{data, inference::Trained, teacher};
    anyhow::ensure!(
        !a.out.exists(),
        "{} already exists; choose another --out or remove it",
        a.out.display()
    );
    let t = Trained::load(&a.run)?;
    let side = t.config.model.input as u32;
    let split = data::load_split(&a.data, Some(&t.classes), side, progress)?;
    let bar = if progress {
        indicatif::ProgressBar::new(split.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let logits_of = |s: &data::Split| -> anyhow::Result<Vec<f32>> {
        let idx: Vec<usize> = (0..s.len()).collect();
        let mut out = Vec::with_capacity(s.len() * t.classes.len());
        for chunk in idx.chunks(256) {
            out.extend(t.logits(s, chunk)?);
            bar.inc(chunk.len() as u64);
        }
        Ok(out)
    };
    let mut logits = logits_of(&split)?;
    if a.mirror {
        bar.set_position(0);
        let m = logits_of(&facegender::eval::mirrored(&split))?;
        for (v, w) in logits.iter_mut().zip(m) {
            *v = 0.5 * (*v + w);
        }
    }
    bar.finish_and_clear();
    teacher::write(&a.out, &t.classes, &split.names, &logits)?;
    out(&format!(
        "teacher logits of {} for {} crops{} -> {}",
        a.run.display(),
        split.len(),
        if a.mirror { ", mirror-averaged" } else { "" },
        a.out.display()
    ));
    Ok(())
}

fn train_cmd(a: TrainArgs, progress: bool) -> anyhow::Result<()> {
    use facegender::train::{data, training};
    let mut cfg = match (&a.config, a.resume) {
        (Some(p), _) => training::TrainConfig::load(p)?,
        (None, true) if a.out.join("config.toml").exists() => {
            training::TrainConfig::load(&a.out.join("config.toml"))?
        }
        _ => training::TrainConfig::default(),
    };
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(l) = a.limit {
        cfg.train.limit = l;
    }
    if let Some(p) = &a.init_from {
        let p = if p.is_dir() {
            p.join("best.bpk")
        } else {
            p.clone()
        };
        cfg.train.init_from = p.display().to_string();
    }
    if !a.labels.is_empty() {
        cfg.train.labels = a.labels.iter().map(|p| p.display().to_string()).collect();
    }
    cfg.validate()?;
    let init = std::path::Path::new(&cfg.train.init_from);
    anyhow::ensure!(
        a.resume || cfg.train.init_from.is_empty() || init.is_file(),
        "train.init_from: {} is not a file (give a run folder holding best.bpk, or a .bpk file)",
        init.display()
    );
    set_threads(cfg.train.threads);
    let side = cfg.model.input as u32;
    let mut train = data::load_split(&a.data.join("train"), None, side, progress)?;
    if cfg.train.limit > 0 && train.len() > cfg.train.limit {
        // keep an even spread over the sorted list so both classes stay
        let step = train.len() as f64 / cfg.train.limit as f64;
        let keep: Vec<usize> = (0..cfg.train.limit)
            .map(|i| (i as f64 * step) as usize)
            .collect();
        train.images = keep.iter().map(|&i| train.images[i].clone()).collect();
        train.labels = keep.iter().map(|&i| train.labels[i]).collect();
        train.names = keep.iter().map(|&i| train.names[i].clone()).collect();
        train.paths = keep.iter().map(|&i| train.paths[i].clone()).collect();
    }
    if let Some(steps) = a.compare_backends {
        // the rate a whole epoch is measured against moves with the machine: name it
        out(&format!(
            "cpu: {} ({}), {} threads",
            facegender::cpu::model(),
            facegender::cpu::features(),
            rayon::current_num_threads()
        ));
        out("backend   seconds/step   images/s   losses");
        for &b in &a.backends {
            let (secs, losses) = training::time_steps(&cfg, &train, b, steps)?;
            let l: Vec<String> = losses.iter().map(|l| format!("{l:.4}")).collect();
            out(&format!(
                "{:<9} {:>12.3} {:>10.1}   {}",
                format!("{b:?}").to_lowercase(),
                secs,
                cfg.train.batch as f64 / secs,
                l.join(" ")
            ));
        }
        return Ok(());
    }
    let val = data::load_split(&a.data.join("val"), Some(&train.classes), side, progress)?;
    out(&format!(
        "training on {} images ({:?} per class), validating on {}; {} MACs per image",
        train.len(),
        train.class_counts(),
        val.len(),
        cfg.model.macs()
    ));
    let history = training::train(&cfg, &train, &val, &a.out, a.resume, progress)?;
    if let Some(best) = history
        .iter()
        .min_by(|x, y| x.val_loss.total_cmp(&y.val_loss))
    {
        out(&format!(
            "best epoch {}: validation loss {:.4}, accuracy {:.4}; run folder {}",
            best.epoch,
            best.val_loss,
            best.val_acc,
            a.out.display()
        ));
    }
    Ok(())
}

fn export_cmd(a: ExportArgs, progress: bool) -> anyhow::Result<()> {
    use facegender::train::{data, inference};
    let trained = inference::Trained::load(&a.run)?;
    let side = trained.config.model.input as u32;
    let mut cal = data::load_split(&a.calibration, Some(&trained.classes), side, progress)?;
    if cal.len() > a.calibration_images {
        let step = cal.len() as f64 / a.calibration_images as f64;
        cal.images = (0..a.calibration_images)
            .map(|i| cal.images[(i as f64 * step) as usize].clone())
            .collect();
    }
    let info = facegender::export::export(&a.run, &cal, &a.out, a.align, a.crop_scale, a.ranges)?;
    out(&format!(
        "exported to {}: {} classes, {}x{} input, {} MACs, {} bytes of int8 weights, arena {} bytes, model file {} bytes (calibrated on {} images; {} activation scales lowered by --ranges)",
        a.out.display(),
        info.classes.len(),
        info.input,
        info.input,
        info.macs,
        info.weight_bytes,
        info.arena_bytes,
        info.model_file_bytes,
        cal.images.len(),
        info.lowered_scales
    ));
    Ok(())
}

fn eval_cmd(a: EvalArgs, progress: bool) -> anyhow::Result<()> {
    use facegender::eval::{self, Engine};
    use facegender::train::data;
    let info = eval::export_info(&a.model)?;
    let split = data::load_split(&a.data, Some(&info.classes), info.input as u32, progress)?;
    let mut engines = if a.engines.is_empty() {
        let mut e = vec![Engine::Onnx, Engine::Int8Tract, Engine::Int8Core];
        if a.run.is_some() {
            e.insert(0, Engine::Float);
        }
        e
    } else {
        a.engines.clone()
    };
    engines.sort();
    engines.dedup();
    let groups = if a.labels.is_empty() {
        Vec::new()
    } else {
        eval::groups_from_labels(&a.labels, &split)?
    };
    let run_engine = |e: &Engine, split: &data::Split| match e {
        Engine::Float => eval::run_float(
            a.run.as_deref().context("--engines float needs --run")?,
            split,
        ),
        Engine::Onnx => eval::run_onnx(&a.model, split),
        Engine::Int8Tract => eval::run_int8_tract(&a.model, split),
        Engine::Int8Core => eval::run_int8_core(&a.model, split),
    };
    let mirrored = a.mirror.then(|| eval::mirrored(&split));
    if a.mirror {
        out("test-time mirroring: each crop's logits averaged with its mirror image's");
    }
    let mut outputs = Vec::new();
    for e in &engines {
        let mut o = run_engine(e, &split)?;
        if let Some(m) = &mirrored {
            o = eval::mirror_average(o, run_engine(e, m)?)?;
        }
        outputs.push(o);
    }
    let metrics: Vec<eval::Metrics> = outputs
        .iter()
        .map(|o| eval::metrics(o, &split, &groups))
        .collect();
    out(&eval::table(&metrics));
    let mut agreements = Vec::new();
    for (i, x) in outputs.iter().enumerate() {
        for y in &outputs[i + 1..] {
            let g = eval::agreement(x, y);
            out(&format!(
                "{:?} vs {:?}: {} label disagreements, max |logit difference| {:.3e}{}",
                g.a,
                g.b,
                g.label_disagreements,
                g.max_abs_logit_diff,
                g.int8_mismatches.map_or(String::new(), |m| format!(
                    ", {m} images with different int8 logits"
                ))
            ));
            agreements.push(g);
        }
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)?;
        for m in &metrics {
            let name = serde_json::to_string(&m.engine)?
                .trim_matches('"')
                .to_string();
            facegender::plot::confusion_and_roc(
                &dir.join(format!("eval-{name}.png")),
                &split.classes,
                &m.confusion,
                &m.roc,
                m.roc_auc.unwrap_or(f64::NAN),
                &format!("{name}: accuracy {:.4} on {} images", m.accuracy, m.images),
            )?;
        }
        let json = serde_json::json!({ "data": a.data, "model": a.model, "mirror": a.mirror, "metrics": metrics, "agreement": agreements });
        fsutil::write_replace(&dir.join("eval.json"), &serde_json::to_vec_pretty(&json)?)?;
        out(&format!("charts and eval.json in {}", dir.display()));
    }
    Ok(())
}

fn predict_cmd(
    a: PredictArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
    progress: bool,
) -> anyhow::Result<()> {
    use facegender::predict;
    use indicatif::ParallelProgressIterator;
    use rayon::prelude::*;
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.min_probability),
        "--min-probability must be in [0, 1]"
    );
    let model_dir = a.model.clone().unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = predict::read_classifier(&model_dir)?;
    let classifier = predict::Classifier::new(&bytes, info)?;
    let detector = BlazeFace::load(models_dir, a.detector)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models {
        detector: &detector,
        landmarks: &sp,
        box_map: BoxMap::FITTED,
    };
    let cfg = predict::Config {
        threshold: a.threshold,
        min_face: a.min_face,
        min_probability: a.min_probability,
        mirror: a.mirror,
    };
    let device = if a.device_chain {
        let det = facegender::device::Int8Detector::load(&models_dir.join("blazeface-int8"))?;
        let chain = facegender::device::ChainInfo::load(&model_dir)?;
        Some((det, chain))
    } else {
        None
    };
    let inputs = predict::expand_inputs(&a.inputs)?;
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = if progress && inputs.len() > 1 {
        indicatif::ProgressBar::new(inputs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let results: Vec<predict::ImageResult> = inputs
        .par_iter()
        .progress_with(bar.clone())
        .map(|p| match &device {
            Some((det, chain)) => {
                predict::predict_device(det, chain, &classifier, &cfg, p, a.annotate.as_deref())
            }
            None => predict::predict_image(&m, &classifier, &cfg, p, a.annotate.as_deref()),
        })
        .collect();
    bar.finish_and_clear();
    for r in &results {
        if a.json {
            out(&serde_json::to_string(r)?);
        } else {
            for l in predict::lines(r) {
                out(&l);
            }
        }
    }
    let failed = results.iter().filter(|r| r.status == "unreadable").count();
    if failed > 0 {
        return Err(Partial(format!(
            "{failed} of {} inputs could not be read",
            results.len()
        ))
        .into());
    }
    Ok(())
}

fn bench_cmd(
    a: BenchArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
) -> anyhow::Result<()> {
    use facegender::{bench, predict};
    let model_dir = a.model.clone().unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = predict::read_classifier(&model_dir)?;
    let classifier = predict::Classifier::new(&bytes, info)?;
    let detector = BlazeFace::load(models_dir, facegender::detect::Variant::Front)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models {
        detector: &detector,
        landmarks: &sp,
        box_map: BoxMap::FITTED,
    };
    let mut files =
        fsutil::image_files(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    files.truncate(a.limit);
    anyhow::ensure!(!files.is_empty(), "no images in {}", a.input.display());
    let report = bench::run(
        &m,
        &classifier,
        &model_dir,
        &models_dir.join("blazeface-int8"),
        &files,
        a.repeats.max(1),
    )?;
    out(&bench::table(&report));
    if let Some(p) = a.json {
        fsutil::write_replace(&p, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn demo_cmd(
    a: DemoArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
    progress: bool,
) -> anyhow::Result<()> {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let held_out = a.sample.is_none();
    let photos = a.sample.unwrap_or_else(|| samples.join("fairface"));
    let scenes = match a.scenes {
        Some(p) => Some(p),
        None if a.no_scenes => None,
        None => Some(samples.join("scenes")),
    };
    let detector = BlazeFace::load(models_dir, facegender::detect::Variant::Front)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models {
        detector: &detector,
        landmarks: &sp,
        box_map: BoxMap::FITTED,
    };
    let inputs = facegender::demo::Inputs {
        models_dir,
        models: &m,
        photos: &photos,
        scenes: scenes.as_deref(),
        workdir: &a.workdir,
        progress,
        held_out,
    };
    let (report, _) = facegender::demo::run(&inputs)?;
    out(&format!(
        "4. Summary\n{}",
        facegender::demo::summary(&report)
    ));
    Ok(())
}

fn firmware_cmd(a: FirmwareArgs, models_dir: &std::path::Path) -> anyhow::Result<()> {
    use facegender::firmware;
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
        let info = facegender::eval::export_info(&model_dir)?;
        let written = facegender::device_parity::write_firmware_crops(
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
    let check = facegender::device_parity::check_crops(&model_dir)?;
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
    model_dir: &std::path::Path,
    models_dir: &std::path::Path,
    frames_from: Option<&std::path::Path>,
    per_class: usize,
) -> anyhow::Result<()> {
    use facegender::device;
    let frames_dir = model_dir.join("firmware-frames");
    if let Some(src) = frames_from {
        let n = device::write_frames(src, &frames_dir, per_class)?.len();
        out(&format!(
            "{n} frames from {} written to {}",
            src.display(),
            frames_dir.display()
        ));
    }
    let c = facegender::device_parity::check_chain(model_dir, models_dir)?;
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
                facegender::firmware::layer_table(&layers)
            ));
        }
    }
    out(&format!(
        "instructions per stage (QEMU -icount): detect {} (letterbox, detector, decoding, NMS), align {} and classify {} per face; one frame with one face {}",
        c.detect_instructions,
        c.align_instructions,
        c.classify_instructions,
        c.instructions_per_frame()
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

fn quantize_detector_cmd(
    a: QuantizeDetectorArgs,
    models_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let files =
        fsutil::image_files(&a.calibration).with_context(|| a.calibration.display().to_string())?;
    anyhow::ensure!(
        !files.is_empty(),
        "no photos in {}",
        a.calibration.display()
    );
    let step = (files.len() as f64 / a.images.max(1) as f64).max(1.0);
    let picked: Vec<_> = (0..a.images.min(files.len()))
        .map(|i| files[(i as f64 * step) as usize].clone())
        .collect();
    let info = facegender::device::quantize_detector(models_dir, &picked, &a.out)?;
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

fn eval_detector_cmd(a: EvalDetectorArgs, models_dir: &std::path::Path) -> anyhow::Result<()> {
    use facegender::device::{self, Int8Detector};
    use rayon::prelude::*;
    let float = BlazeFace::load(models_dir, facegender::detect::Variant::Front)?;
    let int8 = Int8Detector::load(&a.detector)?;
    let int8_threshold = match a.int8_threshold {
        Some(t) => t,
        None => facegender::device::DetectorInfo::load(&a.detector)?.threshold,
    };
    let mut files = fsutil::image_files(&a.input)?;
    let step = (files.len() as f64 / a.limit.max(1) as f64).max(1.0);
    files = (0..a.limit.min(files.len()))
        .map(|i| files[(i as f64 * step) as usize].clone())
        .collect();
    let per: Vec<(usize, usize, bool, bool)> = files
        .par_iter()
        .map_init(Vec::new, |arena, f| -> anyhow::Result<_> {
            let img = facegender::decode::decode_file(f, &Default::default())?;
            // the float model on the same letterboxed pixels, so only quantisation differs
            let fl = device::float_detect_same_input(&float, &img, a.threshold)?;
            // the same single input as the float model: no second try
            let q = int8.detect(&img, int8_threshold, false, arena)?;
            let matched = fl
                .iter()
                .filter(|d| {
                    q.iter()
                        .any(|e| device::iou(d.corners(), e.corners()) >= 0.5)
                })
                .count();
            Ok((fl.len(), matched, !fl.is_empty(), !q.is_empty()))
        })
        .collect::<anyhow::Result<_>>()?;
    let n = per.len() as f64;
    let float_dets: usize = per.iter().map(|p| p.0).sum();
    let matched: usize = per.iter().map(|p| p.1).sum();
    let float_found = per.iter().filter(|p| p.2).count() as f64 / n;
    let int8_found = per.iter().filter(|p| p.3).count() as f64 / n;
    let report = serde_json::json!({
        "photos": per.len(), "float_detections": float_dets, "matched_by_int8": matched,
        "matched_share": matched as f64 / float_dets.max(1) as f64,
        "float_face_found_rate": float_found, "int8_face_found_rate": int8_found,
        "float_threshold": a.threshold, "int8_threshold": int8_threshold,
    });
    out(&format!(
        "{} photos (thresholds: float {}, int8 {int8_threshold:.4}): int8 matches {matched} of {float_dets} float detections ({:.2}%, IoU >= 0.5); face found: float {:.2}%, int8 {:.2}%",
        per.len(),
        a.threshold,
        100.0 * matched as f64 / float_dets.max(1) as f64,
        100.0 * float_found,
        100.0 * int8_found
    ));
    if let Some(p) = a.json {
        fsutil::write_replace(&p, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn fit_template_cmd(a: FitTemplateArgs) -> anyhow::Result<()> {
    let det = facegender::device::Int8Detector::load(&a.detector)?;
    // the chain decides with the int8 detector's calibrated threshold
    let threshold = facegender::device::DetectorInfo::load(&a.detector)?.threshold;
    let info = facegender::device::fit_template(&a.report, &a.photos, &det, a.limit, threshold)?;
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

fn eval_chain_cmd(
    a: EvalChainArgs,
    models_dir: &std::path::Path,
    dlib: &std::path::Path,
    progress: bool,
) -> anyhow::Result<()> {
    use facegender::predict;
    use rayon::prelude::*;
    let model_dir = a.model.clone().unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = predict::read_classifier(&model_dir)?;
    let classifier = predict::Classifier::new(&bytes, info)?;
    let detector = BlazeFace::load(models_dir, facegender::detect::Variant::Front)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models {
        detector: &detector,
        landmarks: &sp,
        box_map: BoxMap::FITTED,
    };
    let det = facegender::device::Int8Detector::load(&a.detector)?;
    let chain = facegender::device::ChainInfo::load(&model_dir)?;
    let items = facegender::dataset::list(&a.input)?;
    let step = (items.len() as f64 / a.limit.max(1) as f64).max(1.0);
    let items: Vec<_> = (0..a.limit.min(items.len()))
        .map(|i| items[(i as f64 * step) as usize].clone())
        .collect();
    let cfg = predict::Config {
        threshold: facegender::detect::DEFAULT_THRESHOLD,
        min_face: 0.0,
        min_probability: 0.0,
        mirror: false,
    };
    let bar = if progress {
        indicatif::ProgressBar::new(items.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let label_of = |r: &predict::ImageResult| predict::main_label(r).map(str::to_string);
    let per: Vec<(Option<String>, Option<String>, String)> = items
        .par_iter()
        .map(|it| {
            bar.inc(1);
            let host = predict::predict_image(&m, &classifier, &cfg, &it.path, None);
            let dev = predict::predict_device(&det, &chain, &classifier, &cfg, &it.path, None);
            (label_of(&host), label_of(&dev), it.class.clone())
        })
        .collect();
    bar.finish_and_clear();
    let n = per.len() as f64;
    let correct = [0, 1].map(|k: usize| {
        per.iter()
            .filter(|p| (if k == 0 { &p.0 } else { &p.1 }).as_deref() == Some(p.2.as_str()))
            .count()
    });
    let acc = |k: usize| correct[k] as f64 / n;
    let ci = correct.map(|c| facegender::eval::wilson95(c, per.len()));
    let found = |k: usize| {
        per.iter()
            .filter(|p| (if k == 0 { &p.0 } else { &p.1 }).is_some())
            .count() as f64
            / n
    };
    let agree = per.iter().filter(|p| p.0 == p.1).count() as f64 / n;
    let report = serde_json::json!({
        "photos": per.len(),
        "host_chain": {"accuracy": acc(0), "accuracy_ci95": ci[0], "face_found": found(0)},
        "device_chain": {"accuracy": acc(1), "accuracy_ci95": ci[1], "face_found": found(1)},
        "same_label": agree,
    });
    out(&format!(
        "{} photos: host chain (float BlazeFace, dlib landmarks) accuracy {:.4} (95% CI {:.3}-{:.3}, face found {:.4}); device chain (int8 BlazeFace, keypoints) accuracy {:.4} (95% CI {:.3}-{:.3}, face found {:.4}); same label {:.4}",
        per.len(),
        acc(0),
        ci[0].0,
        ci[0].1,
        found(0),
        acc(1),
        ci[1].0,
        ci[1].1,
        found(1),
        agree
    ));
    if let Some(p) = a.json {
        fsutil::write_replace(&p, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
