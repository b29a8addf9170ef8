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

use args::{Cli, Command};
use cmd::{data, device, host, predict, train};
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
    let g = cli.global();
    match cli.command {
        Command::Preprocess(a) => data::preprocess(a, &g),
        Command::FitDlibBox(a) => data::fit_dlib_box(a, &g),
        Command::Filter(a) => data::filter(a, &g),
        Command::Split(a) => data::split(a, &g),
        Command::Augment(a) => data::augment(a, &g),
        Command::Describe(a) => host::describe(a, &g),
        Command::TrainHost(a) => host::train_host(a, &g),
        Command::Train(a) => train::train(a, &g),
        Command::TeacherLogits(a) => train::teacher_logits(a, &g),
        Command::Export(a) => train::export(a, &g),
        Command::Eval(a) => train::eval(a, &g),
        Command::Predict(a) => predict::predict(a, &g),
        Command::Bench(a) => predict::bench(a, &g),
        Command::Demo(a) => predict::demo(a, &g),
        Command::Firmware(a) => device::firmware(a, &g),
        Command::QuantizeDetector(a) => device::quantize_detector(a, &g),
        Command::EvalDetector(a) => device::eval_detector(a, &g),
        Command::FitKeypointTemplate(a) => device::fit_template(a, &g),
        Command::EvalChain(a) => device::eval_chain(a, &g),
    }
}
