//! Arguments of the microcontroller's commands: `firmware`, `quantize-detector`,
//! `eval-detector`, `fit-keypoint-template` and `eval-chain`.

use std::path::PathBuf;

use clap::Args;
use facegender_pipeline::detect::DEFAULT_THRESHOLD;

#[derive(Args, Debug)]
pub struct FirmwareArgs {
    /// Exported model folder with firmware-crops/ (default: the shipped models/gender).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// First (re)write MODEL/firmware-crops from this labelled folder of aligned crops (e.g. a
    /// split's test/), taking the first `--per-class` of each class.
    #[arg(long)]
    pub crops_from: Option<PathBuf>,
    /// Crops per class for `--crops-from`.
    #[arg(long, default_value_t = 3)]
    pub per_class: usize,
    /// Run the whole device chain instead (`full_chain`: int8 BlazeFace, keypoint alignment,
    /// classifier) on MODEL/firmware-frames and compare every face with `predict --device-chain`.
    #[arg(long)]
    pub chain: bool,
    /// With `--chain`: first (re)write MODEL/firmware-frames from this labelled photo folder.
    #[arg(long, requires = "chain")]
    pub frames_from: Option<PathBuf>,
    /// Frames per class for `--frames-from` (each 224x224 photo is 147 KB of flash).
    #[arg(long, default_value_t = 1)]
    pub frames_per_class: usize,
}

#[derive(Args, Debug)]
pub struct QuantizeDetectorArgs {
    /// Photos for calibration (searched recursively).
    #[arg(long)]
    pub calibration: PathBuf,
    /// Calibration photos used (spread over the folder).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    #[arg(long, default_value = "models/blazeface-int8")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalDetectorArgs {
    /// Photos (searched recursively).
    #[arg(long, short)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// The int8 detector folder.
    #[arg(long, default_value = "models/blazeface-int8")]
    pub detector: PathBuf,
    /// The float model's score threshold.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// The int8 model's score threshold (default: the one calibrated in its model.json).
    #[arg(long)]
    pub int8_threshold: Option<f32>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct FitTemplateArgs {
    /// preprocess-report.json of the classifier's training crops.
    #[arg(long)]
    pub report: PathBuf,
    /// The photo folder that preprocess read.
    #[arg(long)]
    pub photos: PathBuf,
    #[arg(long, default_value = "models/blazeface-int8")]
    pub detector: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    #[arg(long, default_value = "models/gender/device-chain.json")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalChainArgs {
    /// Labelled photos (one sub-folder per class).
    #[arg(long, short)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Exported model folder (default: the shipped models/gender).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, default_value = "models/blazeface-int8")]
    pub detector: PathBuf,
    #[arg(long)]
    pub json: Option<PathBuf>,
}
