//! The model commands: `train`, `teacher-logits`, `export` and `eval`.

use std::path::Path;

use anyhow::Context;
use facegender_export::classifier;
use facegender_pipeline::classify::mirror_mean;
use facegender_pipeline::cpu;
use facegender_pipeline::dataset::crops::{Split, load_split, mirrored};
use facegender_pipeline::dataset::groups::groups_from_labels;
use facegender_pipeline::eval::chart::confusion_and_roc;
use facegender_pipeline::eval::{self, Engine, engines};
use facegender_pipeline::host::HostInfo;
use facegender_pipeline::{dataset, fsutil, model_dir, progress};
use facegender_train::inference::{Trained, run_float};
use facegender_train::{teacher, training};

use crate::args::{EvalArgs, ExportArgs, Global, TeacherLogitsArgs, TrainArgs};
use crate::output::out;

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

pub fn teacher_logits(a: TeacherLogitsArgs, g: &Global) -> anyhow::Result<()> {
    let progress = g.progress;
    anyhow::ensure!(
        !a.out.exists(),
        "{} already exists; choose another --out or remove it",
        a.out.display()
    );
    if let (Some(host), Some(descriptors)) = (&a.host, &a.descriptors) {
        return host_teacher_logits(host, descriptors, a.split.as_deref(), &a.out, a.mirror);
    }
    let (Some(run), Some(data)) = (&a.run, &a.data) else {
        anyhow::bail!("teacher-logits needs --run and --data, or --host and --descriptors");
    };
    let t = Trained::load(run)?;
    let side = t.config.model.input as u32;
    let split = load_split(data, Some(&t.classes), side, progress)?;
    let bar = progress::bar(split.len(), progress);
    let mut logits = t.all_logits(&split, |n| bar.inc(n as u64))?;
    if a.mirror {
        bar.set_position(0);
        let m = t.all_logits(&mirrored(&split), |n| bar.inc(n as u64))?;
        logits = mirror_mean(&logits, &m);
    }
    bar.finish_and_clear();
    teacher::write(&a.out, &t.classes, &split.names, &logits)?;
    out(&format!(
        "teacher logits of {} for {} crops{} -> {}",
        run.display(),
        split.len(),
        if a.mirror { ", mirror-averaged" } else { "" },
        a.out.display()
    ));
    Ok(())
}

/// The host model's combined logits for the training photos of its student's split.
fn host_teacher_logits(
    host: &Path,
    descriptors: &Path,
    split: Option<&Path>,
    out_path: &Path,
    mirror: bool,
) -> anyhow::Result<()> {
    let info = HostInfo::load(host)?;
    let split = match split {
        Some(s) => s.to_path_buf(),
        None => host.join(&info.student).join("split.csv"),
    };
    let (names, logits) =
        facegender_train::host::teacher_rows(descriptors, &split, &info, "train", mirror)?;
    teacher::write(out_path, &info.classes, &names, &logits)?;
    out(&format!(
        "teacher logits of the host model {} for {} training photos{} -> {}",
        host.display(),
        names.len(),
        if mirror {
            ", student mirror-averaged"
        } else {
            ""
        },
        out_path.display()
    ));
    Ok(())
}

pub fn train(a: TrainArgs, g: &Global) -> anyhow::Result<()> {
    let progress = g.progress;
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
    let init = Path::new(&cfg.train.init_from);
    anyhow::ensure!(
        a.resume || cfg.train.init_from.is_empty() || init.is_file(),
        "train.init_from: {} is not a file (give a run folder holding best.bpk, or a .bpk file)",
        init.display()
    );
    set_threads(cfg.train.threads);
    let side = cfg.model.input as u32;
    let mut train = load_split(&a.data.join("train"), None, side, progress)?;
    if cfg.train.limit > 0 && train.len() > cfg.train.limit {
        // keep an even spread over the sorted list so both classes stay
        train = train.select(&dataset::evenly_spaced_indices(
            train.len(),
            cfg.train.limit,
        ));
    }
    if let Some(steps) = a.compare_backends {
        // the rate a whole epoch is measured against moves with the machine: name it
        out(&format!(
            "cpu: {} ({}), {} threads",
            cpu::model(),
            cpu::features(),
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
    let val = load_split(&a.data.join("val"), Some(&train.classes), side, progress)?;
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

pub fn export(a: ExportArgs, g: &Global) -> anyhow::Result<()> {
    let progress = g.progress;
    let trained = Trained::load(&a.run)?;
    let side = trained.config.model.input as u32;
    let mut cal = load_split(&a.calibration, Some(&trained.classes), side, progress)?;
    cal.images = dataset::evenly_spaced(&cal.images, a.calibration_images);
    let info = classifier::export(&a.run, &cal, &a.out, a.align, a.crop_scale, a.ranges)?;
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

pub fn eval(a: EvalArgs, g: &Global) -> anyhow::Result<()> {
    let progress = g.progress;
    let info = model_dir::export_info(&a.model)?;
    let split = load_split(&a.data, Some(&info.classes), info.input as u32, progress)?;
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
        groups_from_labels(&a.labels, &split)?
    };
    let run_engine = |e: &Engine, split: &Split| -> anyhow::Result<eval::Outputs> {
        Ok(match e {
            Engine::Float => run_float(
                a.run.as_deref().context("--engines float needs --run")?,
                split,
            )?,
            Engine::Onnx => engines::run_onnx(&a.model, split)?,
            Engine::Int8Tract => engines::run_int8_tract(&a.model, split)?,
            Engine::Int8Core => engines::run_int8_core(&a.model, split)?,
        })
    };
    let mirrored = a.mirror.then(|| mirrored(&split));
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
            confusion_and_roc(
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
