//! The `facegender` binary: parse, validate, dispatch, report errors with their causes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use facegender::cli::{Cli, Command, FitDlibBoxArgs, PreprocessArgs};
use facegender::detect::BlazeFace;
use facegender::landmarks::{BoxMap, LandmarkModel};
use facegender::{models, preprocess, reference};

/// Prints a line to stdout; a closed pipe (`| head`) ends the program quietly with success.
fn out(s: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{s}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let models_dir = models::models_dir(cli.models.as_deref());
    let dlib_path = models::dlib_model_path(cli.landmarks.as_deref());
    match cli.command {
        Command::Preprocess(a) => preprocess_cmd(a, &models_dir, &dlib_path, !cli.quiet),
        Command::FitDlibBox(a) => fit_dlib_box(a, &models_dir, &dlib_path),
    }
}

fn preprocess_cmd(a: PreprocessArgs, models_dir: &std::path::Path, dlib: &std::path::Path, progress: bool) -> anyhow::Result<()> {
    anyhow::ensure!((8..=1024).contains(&a.crop), "--crop must be between 8 and 1024 pixels");
    anyhow::ensure!(a.scale > 0.0 && a.scale <= 4.0, "--scale must be in (0, 4]");
    anyhow::ensure!((0.0..1.0).contains(&a.threshold), "--threshold must be in [0, 1)");
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
    let cfg = preprocess::Config {
        input: a.input,
        output: a.output,
        crop: a.crop,
        align: a.align,
        scale: a.scale,
        jobs,
        multi: if a.skip_multi { preprocess::MultiFace::Skip } else { preprocess::MultiFace::Largest },
        threshold: a.threshold,
        min_face: a.min_face,
        progress,
    };
    let detector = BlazeFace::load(models_dir, a.detector)?;
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    let m = preprocess::Models { detector: &detector, landmarks: &sp, box_map: BoxMap::FITTED };
    let report = preprocess::run(&cfg, &m)?;
    out(&preprocess::summary(&report));
    Ok(())
}

fn fit_dlib_box(a: FitDlibBoxArgs, models_dir: &std::path::Path, dlib: &std::path::Path) -> anyhow::Result<()> {
    let shared = match a.shared {
        Some(s) => s,
        None => a.reference.ancestors().nth(3).context("cannot infer --shared from --reference")?.to_path_buf(),
    };
    let faces = reference::load(&a.reference, &shared)?;
    let detector = BlazeFace::load(models_dir, a.detector)?;
    let detections = reference::detect_all(&detector, &faces, a.threshold)?;
    let pairs: Vec<_> = faces.iter().zip(&detections).filter_map(|(f, d)| d.map(|d| (d, f.rect))).collect();
    let fitted = facegender::landmarks::fit_box_map(&pairs);
    let lm = LandmarkModel::load(dlib)?;
    let sp = lm.predictor()?;
    out(&format!("{} reference faces, detector matched {}", faces.len(), pairs.len()));
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
