//! The photo commands: `predict`, `bench` and `demo`.

use std::path::Path;

use anyhow::Context;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::detect::Variant;
use facegender_pipeline::host::{HostModel, is_host_model};
use facegender_pipeline::model_dir::{self};
use facegender_pipeline::predict::{self, Photo};
use facegender_pipeline::predictor::{Options, Predictor};
use facegender_pipeline::preprocess::HostModels;
use facegender_pipeline::{fsutil, progress};
use indicatif::ParallelProgressIterator;
use rayon::prelude::*;

use crate::args::{BenchArgs, DemoArgs, Global, PredictArgs};
use crate::output::{Partial, out};
use crate::{bench, demo};

pub fn predict(a: PredictArgs, g: &Global) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.min_probability),
        "--min-probability must be in [0, 1]"
    );
    let options = Options {
        models_dir: g.models.clone(),
        dlib: g.dlib.clone(),
        model: a.model.clone(),
        device_chain: a.device_chain,
        detector: a.detector,
        config: predict::Config {
            threshold: a.threshold,
            min_face: a.min_face,
            min_probability: a.min_probability,
            mirror: a.mirror,
        },
    };
    let predictor = Predictor::load(&options)?;
    let session = predictor.session()?;
    let inputs = predict::expand_inputs(&a.inputs)?;
    if let Some(dir) = &a.annotate {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = progress::bar(inputs.len(), g.progress && inputs.len() > 1);
    let results: Vec<predict::ImageResult> = inputs
        .par_iter()
        .progress_with(bar.clone())
        .map(|p| session.predict(Photo::Path(p), a.annotate.as_deref()))
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

pub fn bench(a: BenchArgs, g: &Global) -> anyhow::Result<()> {
    let (models_dir, dlib) = (g.models.as_path(), g.dlib.as_path());
    let model_dir = a.model.clone().unwrap_or_else(|| models_dir.join("gender"));
    let (info, bytes) = model_dir::read_classifier(&model_dir)?;
    let classifier = Classifier::new(&bytes, info)?;
    let host = HostModels::load(models_dir, dlib, Variant::Front)?;
    let m = host.models()?;
    let mut files =
        fsutil::image_files(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    files.truncate(a.limit);
    anyhow::ensure!(!files.is_empty(), "no images in {}", a.input.display());
    let host_dir = a
        .host
        .clone()
        .unwrap_or_else(|| models_dir.join("gender-host"));
    let host_model = if is_host_model(&host_dir) {
        Some(HostModel::load(&host_dir)?)
    } else {
        None
    };
    let report = bench::run(
        &m,
        &classifier,
        host_model.as_ref(),
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

pub fn demo(a: DemoArgs, g: &Global) -> anyhow::Result<()> {
    let (models_dir, dlib, progress) = (g.models.as_path(), g.dlib.as_path(), g.progress);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let held_out = a.sample.is_none();
    let photos = a.sample.unwrap_or_else(|| samples.join("fairface"));
    let scenes = match a.scenes {
        Some(p) => Some(p),
        None if a.no_scenes => None,
        None => Some(samples.join("scenes")),
    };
    let host = HostModels::load(models_dir, dlib, Variant::Front)?;
    let m = host.models()?;
    let inputs = demo::Inputs {
        models_dir,
        models: &m,
        photos: &photos,
        scenes: scenes.as_deref(),
        workdir: &a.workdir,
        progress,
        held_out,
    };
    let (report, _) = demo::run(&inputs)?;
    out(&format!("4. Summary\n{}", demo::summary(&report)));
    Ok(())
}
