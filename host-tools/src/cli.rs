//! Command-line arguments (clap), parsed into raw values; `main.rs` validates them into each
//! command's config.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::align::AlignMethod;
use crate::detect::Variant;

#[derive(Parser, Debug)]
#[command(
    name = "facegender",
    version,
    about = "Gender classification from face photos, from labelled folders to a Cortex-M",
    long_about = "Gender classification from face photos: detect faces (BlazeFace), find 68 \
landmarks (dlib's model, reimplemented exactly), align and crop, curate and split a dataset, \
train a small CNN, export it as int8, evaluate it, and run it on the host or a microcontroller.",
    after_help = "Examples:\n  facegender demo\n  facegender preprocess --input photos/ --output crops/\n  facegender predict group.jpg --annotate out/"
)]
pub struct Cli {
    /// Folder holding blazeface/ and the shipped classifier (default: ./models or the source tree's).
    #[arg(long, global = true, env = "FACEGENDER_MODELS")]
    pub models: Option<PathBuf>,
    /// dlib's shape_predictor_68_face_landmarks.dat (default: Debian's libdlib-data location).
    #[arg(long, global = true, env = "FACEGENDER_DLIB_MODEL")]
    pub landmarks: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Detect, landmark, align and crop every face photo in class sub-folders.
    #[command(after_help = "Examples:\n  facegender preprocess --input photos/ --output crops/\n  facegender preprocess --input photos/ --output crops/ --crop 64 --align similarity --jobs 2\n\nRe-running the same command resumes: finished images are skipped.")]
    Preprocess(PreprocessArgs),
    /// Fit the map from BlazeFace boxes to dlib boxes on dlib's reference outputs, and measure
    /// landmarks through the whole chain.
    #[command(after_help = "Example:\n  facegender fit-dlib-box --reference ../shared/reference/dlib-68/fairface-train-2000.json")]
    FitDlibBox(FitDlibBoxArgs),
}

#[derive(Args, Debug)]
pub struct PreprocessArgs {
    /// Folder with one sub-folder of photos per class (e.g. male/, female/).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where crops go, under the same class sub-folders.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Crop side in pixels.
    #[arg(long, default_value_t = 112)]
    pub crop: u32,
    /// Alignment method.
    #[arg(long, value_enum, default_value_t = AlignMethod::InnerEyesBottomLip)]
    pub align: AlignMethod,
    /// Shrink the aligned face about the crop centre (1.0 = openface's framing).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Crop only the largest face of a photo (the default).
    #[arg(long, conflicts_with = "skip_multi")]
    pub largest_face: bool,
    /// Skip photos with more than one face.
    #[arg(long)]
    pub skip_multi: bool,
    /// BlazeFace model: front (128 px input) or back (256 px, finds smaller faces).
    #[arg(long, value_enum, default_value_t = Variant::Front)]
    pub detector: Variant,
    /// Detector score threshold.
    #[arg(long, default_value_t = crate::detect::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Skip faces narrower than this many pixels.
    #[arg(long, default_value_t = 24.0)]
    pub min_face: f32,
}

#[derive(Args, Debug)]
pub struct FitDlibBoxArgs {
    /// A dlib reference file (reference/dlib-68/fairface-train-2000.json).
    #[arg(long)]
    pub reference: PathBuf,
    /// The folder image paths in the reference file are relative to (default: two levels above it).
    #[arg(long)]
    pub shared: Option<PathBuf>,
    #[arg(long, default_value_t = crate::detect::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    #[arg(long, value_enum, default_value_t = Variant::Front)]
    pub detector: Variant,
}
