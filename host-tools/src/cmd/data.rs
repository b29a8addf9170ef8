//! The data commands: `preprocess`, `fit-dlib-box`, `filter`, `split` and `augment`.

use anyhow::Context;
use facegender_pipeline::dataset::{filter, split};
use facegender_pipeline::detect::BlazeFace;
use facegender_pipeline::landmarks::{BoxMap, LandmarkModel};
use facegender_pipeline::preprocess::{self, HostModels};
use facegender_pipeline::{augment, decode, fsutil, landmarks, reference};

use crate::args::{AugmentArgs, FilterArgs, FitDlibBoxArgs, Global, PreprocessArgs, SplitArgs};
use crate::output::out;

pub fn preprocess(a: PreprocessArgs, g: &Global) -> anyhow::Result<()> {
    let (models_dir, dlib, progress) = (g.models.as_path(), g.dlib.as_path(), g.progress);
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
    let host = HostModels::load(models_dir, dlib, a.detector)?;
    let m = host.models()?;
    let report = preprocess::run(&cfg, &m)?;
    out(&preprocess::summary(&report));
    Ok(())
}

pub fn fit_dlib_box(a: FitDlibBoxArgs, g: &Global) -> anyhow::Result<()> {
    let (models_dir, dlib) = (g.models.as_path(), g.dlib.as_path());
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
    let fitted = landmarks::fit_box_map(&pairs);
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

pub fn filter(a: FilterArgs, _: &Global) -> anyhow::Result<()> {
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

pub fn split(a: SplitArgs, g: &Global) -> anyhow::Result<()> {
    let progress = g.progress;
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

pub fn augment(a: AugmentArgs, _: &Global) -> anyhow::Result<()> {
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
            let img = decode::decode_file(f, &Default::default())
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
                if !fsutil::write_new(&dst, &fsutil::png(&out_img)?)? {
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
        fsutil::write_replace(&grid, &fsutil::png(&sheet)?)
            .with_context(|| format!("writing {}", grid.display()))?;
        out(&format!("contact sheet: {}", grid.display()));
    }
    Ok(())
}
