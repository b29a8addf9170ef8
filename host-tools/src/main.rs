//! The `facegender` binary: parse, dispatch, report errors with their causes.
//!
//! Thin glue over the library crates: `facegender-pipeline` (the chain, datasets, metrics),
//! `facegender-train` (burn), `facegender-export` (int8 models) and `facegender-qemu` (the
//! firmware against the host). Each command group is one file under `cmd/`; the arguments are
//! `args.rs`; what a command prints goes through `output.rs`.

mod args;
mod bench;
mod cmd;
mod demo;
mod output;

use std::process::ExitCode;

use clap::Parser;
use facegender_pipeline::model_dir;

use args::{Cli, Command};
use cmd::{data, device, predict, train};
use output::{EXIT_SOME_FAILED, Partial};

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

fn run(cli: Cli) -> anyhow::Result<()> {
    let models_dir = model_dir::models_dir(cli.models.as_deref());
    let dlib = model_dir::dlib_model_path(cli.landmarks.as_deref());
    let (models, progress) = (models_dir.as_path(), !cli.quiet);
    match cli.command {
        Command::Preprocess(a) => data::preprocess(a, models, &dlib, progress),
        Command::FitDlibBox(a) => data::fit_dlib_box(a, models, &dlib),
        Command::Filter(a) => data::filter(a),
        Command::Split(a) => data::split(a, progress),
        Command::Augment(a) => data::augment(a),
        Command::Train(a) => train::train(a, progress),
        Command::TeacherLogits(a) => train::teacher_logits(a, progress),
        Command::Export(a) => train::export(a, progress),
        Command::Eval(a) => train::eval(a, progress),
        Command::Predict(a) => predict::predict(a, models, &dlib, progress),
        Command::Bench(a) => predict::bench(a, models, &dlib),
        Command::Demo(a) => predict::demo(a, models, &dlib, progress),
        Command::Firmware(a) => device::firmware(a, models),
        Command::QuantizeDetector(a) => device::quantize_detector(a, models),
        Command::EvalDetector(a) => device::eval_detector(a, models),
        Command::FitKeypointTemplate(a) => device::fit_template(a),
        Command::EvalChain(a) => device::eval_chain(a, models, &dlib, progress),
    }
}
