//! The host-grade classifier's commands: `describe` (the descriptor cache) and `train-host`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use facegender_descriptor::{FaceNet, MODEL_FILE};
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::dataset::{evenly_spaced, sha256_file};
use facegender_pipeline::detect::Variant;
use facegender_pipeline::fsutil;
use facegender_pipeline::host::cache::{self, CacheInfo, Describe};
use facegender_pipeline::host::{HOST_FILE, is_host_model};
use facegender_pipeline::model_dir::{self, CORE_MODEL};
use facegender_pipeline::preprocess::HostModels;
use facegender_train::host as train_host_lib;

use crate::args::{DescribeArgs, Global, TrainHostArgs};
use crate::output::out;

/// Where dlib's ResNet lives in a models folder.
pub fn resnet_path(models_dir: &Path) -> PathBuf {
    models_dir.join("dlib-resnet").join(MODEL_FILE)
}

fn load_resnet(models_dir: &Path) -> anyhow::Result<(FaceNet, String)> {
    let path = resnet_path(models_dir);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run scripts/setup (it fetches dlib's face-recognition ResNet)",
        path.display()
    );
    let sha = sha256_file(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((FaceNet::load(&path)?, sha))
}

pub fn describe(a: DescribeArgs, g: &Global) -> anyhow::Result<()> {
    let models_dir = g.models.as_path();
    let student_dir = a
        .student
        .clone()
        .unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = model_dir::read_classifier(&student_dir)?;
    let classes = info.classes.clone();
    let student = Classifier::new(&bytes, info)?;
    let (net, resnet_sha256) = load_resnet(models_dir)?;
    let host = HostModels::load(models_dir, &g.dlib, Variant::Front)?;
    let m = host.models()?;
    let mut inputs = cache::photo_keys(&a.input)?;
    if let Some(n) = a.limit {
        inputs = evenly_spaced(&inputs, n);
    }
    let d = Describe {
        models: &m,
        student: &student,
        net: &net,
        info: CacheInfo {
            classes,
            student_sha256: sha256_file(&student_dir.join(CORE_MODEL))?,
            resnet_sha256,
        },
    };
    let s = cache::describe_all(&d, &inputs, &a.out, g.progress)?;
    out(&format!(
        "{} photos: {} already cached, {} described, {} without a face, {} unreadable -> {}",
        s.photos,
        s.already_cached,
        s.described,
        s.no_face,
        s.unreadable,
        a.out.join(cache::ROWS).display()
    ));
    Ok(())
}

pub fn train_host(a: TrainHostArgs, g: &Global) -> anyhow::Result<()> {
    let models_dir = g.models.as_path();
    let student_dir = a
        .student
        .clone()
        .unwrap_or_else(|| models_dir.join("gender"));
    anyhow::ensure!(
        a.force || !is_host_model(&a.out),
        "{} already holds a host model; pass --force to replace it",
        a.out.display()
    );
    let cfg = train_host_lib::Config {
        descriptors: a.descriptors.clone(),
        split: a
            .split
            .clone()
            .unwrap_or_else(|| student_dir.join("split.csv")),
        labels: a.labels.clone(),
        seed: a.seed,
    };
    let (head, weights, info, report) = train_host_lib::train_host(&cfg, |m| {
        if g.progress {
            eprintln!("{m}");
        }
    })?;
    let student_sha = sha256_file(&student_dir.join(CORE_MODEL))?;
    anyhow::ensure!(
        student_sha == info.student_sha256,
        "the cache's student logits come from another model than {}; describe again into a new folder",
        student_dir.display()
    );
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let relative = |p: &Path| relative_to(&a.out, p);
    let host = train_host_lib::host_info(
        &info,
        head,
        weights,
        relative(&student_dir)?,
        relative(&resnet_path(models_dir))?,
        &report,
    );
    fsutil::write_replace(&a.out.join(HOST_FILE), &serde_json::to_vec_pretty(&host)?)?;
    fsutil::write_replace(
        &a.out.join("eval.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    for c in &report.candidates {
        out(&format!(
            "head {:<9} best epoch {:>2}: validation loss {:.4}, accuracy {:.2}%",
            c.kind,
            c.best_epoch,
            c.val_loss,
            100.0 * c.val_accuracy
        ));
    }
    out(&format!(
        "chosen: {} head; weights head {:.2}, student {:.2}\n\nvalidation\n{}\ntest\n{}",
        report.chosen_head,
        weights.head,
        weights.student,
        train_host_lib::table(&report.val),
        train_host_lib::table(&report.test)
    ));
    out(&format!("-> {}", a.out.join(HOST_FILE).display()));
    Ok(())
}

/// `target` as a path relative to the folder `from` (both made absolute first).
fn relative_to(from: &Path, target: &Path) -> anyhow::Result<PathBuf> {
    let abs = |p: &Path| -> anyhow::Result<PathBuf> {
        Ok(std::path::absolute(p)?.components().collect::<PathBuf>())
    };
    let (from, target) = (abs(from)?, abs(target)?);
    let common = from
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    for c in target.components().skip(common) {
        rel.push(c);
    }
    Ok(rel)
}
