//! Command-line arguments (clap), parsed into raw values; each command in `cmd/` validates them
//! into its library's config. The libraries know nothing of clap: the settings that are a
//! choice among names (`--align`, `--detector`, `--ranges`, `--engines`, `--backends`) are
//! listed here, at the end, and parsed into the libraries' own enums by their serde names.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use facegender_export::classifier::Ranges;
use facegender_pipeline::align::AlignMethod;
use facegender_pipeline::detect::{DEFAULT_THRESHOLD, Variant};
use facegender_pipeline::eval::Engine;
use facegender_pipeline::model_dir;
use facegender_train::training::Backend;

mod device;
pub use device::*;

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

/// The options every command shares, resolved (see `model_dir` for the search order).
pub struct Global {
    pub models: PathBuf,
    pub dlib: PathBuf,
    /// Draw progress bars (not under `-q`).
    pub progress: bool,
}

impl Cli {
    pub fn global(&self) -> Global {
        Global {
            models: model_dir::models_dir(self.models.as_deref()),
            dlib: model_dir::dlib_model_path(self.landmarks.as_deref()),
            progress: !self.quiet,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Detect, landmark, align and crop every face photo in class sub-folders.
    #[command(
        after_help = "Examples:\n  facegender preprocess --input photos/ --output crops/\n  facegender preprocess --input photos/ --output crops/ --crop 64 --align similarity --jobs 2\n\nRe-running the same command resumes: finished images are skipped."
    )]
    Preprocess(PreprocessArgs),
    /// Count images per class, find duplicates and unreadable files; drop classes that are too small.
    #[command(
        after_help = "Examples:\n  facegender filter --input crops/\n  facegender filter --input crops/ --min-images 10 --report crops-filter.json"
    )]
    Filter(FilterArgs),
    /// Split a labelled folder into train/, val/ and test/, stratified, seeded, resumable.
    #[command(
        after_help = "Examples:\n  facegender split --input crops/ --output data/ --dry-run\n  facegender split --input crops/ --output data/ --ratios 0.8,0.1,0.1 --seed 42 --link\n  facegender split --input crops/ --output data/ --move --group-by '^(\\d+)_'\n  facegender split --input crops/ --output data/ --rollback\n\nA killed run is finished by running the same command again; --move can be undone with --rollback."
    )]
    Split(SplitArgs),
    /// Write augmented copies of images (and a contact sheet) to see what training sees.
    #[command(
        after_help = "Example:\n  facegender augment --input crops/ --output aug/ --per-image 4 --seed 1 --grid sheet.png"
    )]
    Augment(AugmentArgs),
    /// Run the host chain on labelled photos and cache, per photo, dlib's face-recognition
    /// descriptor and the student's logits (what train-host and teacher-logits --host read).
    #[command(
        after_help = "Examples:\n  facegender describe --input ../shared/data/fairface-train --input ../shared/data/fairface-train-extra --out data/descriptors\n  facegender describe --input photos/ --out data/descriptors --student models/gender\n\nRe-running the same command resumes: photos already in the cache are skipped."
    )]
    Describe(DescribeArgs),
    /// Train the host-grade classifier's head on cached descriptors and choose how it is combined
    /// with the student, on the split of the student's model; evaluate on its test photos.
    #[command(
        after_help = "Examples:\n  facegender train-host --descriptors data/descriptors --out models/gender-host\n  facegender train-host --descriptors data/descriptors --out models/gender-host --labels ../shared/data/fairface-train/labels.csv --labels ../shared/data/fairface-train-extra/labels.csv"
    )]
    TrainHost(TrainHostArgs),
    /// Train the classifier (burn, CPU) on a split folder holding train/ and val/.
    #[command(
        after_help = "Examples:\n  facegender train --data data/ --out runs/gender\n  facegender train --data data/ --out runs/gender --config configs/gender.toml\n  facegender train --data data/ --out runs/gender --resume\n  facegender train --data data/ --out runs/gender-more --config configs/gender.toml --init-from runs/gender\n  facegender train --data data/ --out runs/cmp --compare-backends 5\n  facegender train --data data/ --out runs/cmp --config configs/gender.toml --compare-backends 100 --backends flex"
    )]
    Train(TrainArgs),
    /// Write a run's float logits for every crop of a split: the teacher file `train.distill`
    /// reads (a larger network trained elsewhere writes the same CSV).
    #[command(
        after_help = "Examples:\n  facegender teacher-logits --run runs/teacher --data data/split64-all/train --out teacher.csv --mirror\n  facegender teacher-logits --host models/gender-host --descriptors data/descriptors --out teacher.csv\n\nThen, in the student's config:\n  [train.distill]\n  logits = \"teacher.csv\"\n  weight = 0.5\n  temperature = 2.0"
    )]
    TeacherLogits(TeacherLogitsArgs),
    /// Quantise a trained run to int8 and write float ONNX, int8 ONNX and the core model file.
    #[command(
        after_help = "Example:\n  facegender export --run runs/gender --calibration data/train --out models/gender"
    )]
    Export(ExportArgs),
    /// Evaluate a model on a labelled folder: float, ONNX, int8 (tract) and int8 (core) side by side.
    #[command(
        after_help = "Examples:\n  facegender eval --model models/gender --data data/test\n  facegender eval --model models/gender --run runs/gender --data data/test --labels ../shared/data/fairface-train/labels.csv --labels ../shared/data/fairface-train-extra/labels.csv --out eval/\n  facegender eval --model models/gender --data data/test --engines int8-core --mirror"
    )]
    Eval(EvalArgs),
    /// Find every face in photos and label it: the host-grade classifier (int8 student and dlib's
    /// face-recognition descriptor), or the int8 student alone, on the host or the device chain.
    #[command(
        after_help = "Examples:\n  facegender predict photo.jpg\n  facegender predict photo.jpg --model models/gender\n  facegender predict photos/ --json > faces.jsonl\n  facegender predict group.jpg --annotate out/\n  facegender predict photos/ --mirror\n\nExit status: 0 when every input was read, 3 when some could not be, 1 on other errors."
    )]
    Predict(PredictArgs),
    /// Time every stage (decode, detect, landmarks, align, classify with core and tract) and the
    /// whole chain on one and on all threads.
    #[command(
        after_help = "Example:\n  facegender bench --input samples/fairface --limit 200 --json bench.json"
    )]
    Bench(BenchArgs),
    /// The product on the bundled held-out photos: the shipped model through predict (accuracy,
    /// contact sheet), the device chain and the firmware in QEMU, then preprocess, filter, split,
    /// a short fine-tune, export and eval on every engine; a summary in WORKDIR/demo.json.
    #[command(
        after_help = "Examples:\n  facegender demo            (what scripts/demo runs; everything in out/demo)\n  facegender demo --workdir /tmp/demo\n  facegender demo --sample photos/ --no-scenes   (your own labelled photos)"
    )]
    Demo(DemoArgs),
    /// Build the firmware for a model, boot it in QEMU, compare with the host and print its size.
    #[command(
        after_help = "Examples:\n  facegender firmware --model models/gender\n  facegender firmware --model models/gender --crops-from data/test\n  facegender firmware --chain\n  facegender firmware --chain --frames-from test-photos/ --frames-per-class 1"
    )]
    Firmware(FirmwareArgs),
    /// Quantise BlazeFace (front, 128 px) to the core's int8 format for the device chain.
    #[command(
        after_help = "Example:\n  facegender quantize-detector --calibration ../shared/data/fairface-train --images 256 --out models/blazeface-int8"
    )]
    QuantizeDetector(QuantizeDetectorArgs),
    /// Compare the int8 detector (core) with the float one (tract) on photos.
    #[command(
        after_help = "Example:\n  facegender eval-detector --input ../shared/data/fairface-train --limit 2000"
    )]
    EvalDetector(EvalDetectorArgs),
    /// Fit where BlazeFace's keypoints fall in the classifier's training crops (device alignment).
    #[command(
        after_help = "Example:\n  facegender fit-keypoint-template --report crops/preprocess-report.json --photos photos/ --out models/gender/device-chain.json"
    )]
    FitKeypointTemplate(FitTemplateArgs),
    /// Accuracy of the host chain (dlib landmarks) and the device chain (int8 detector,
    /// keypoint alignment) on labelled photos, side by side.
    #[command(after_help = "Example:\n  facegender eval-chain --input test-photos/ --limit 1000")]
    EvalChain(EvalChainArgs),
    /// Fit the map from BlazeFace boxes to dlib boxes on dlib's reference outputs, and measure
    /// landmarks through the whole chain.
    #[command(
        after_help = "Example:\n  facegender fit-dlib-box --reference ../shared/reference/dlib-68/fairface-train-2000.json"
    )]
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
    #[arg(long, value_parser = align(), default_value = "inner-eyes-bottom-lip")]
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
    #[arg(long, value_parser = detector(), default_value = "front")]
    pub detector: Variant,
    /// Detector score threshold.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
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
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f32,
    #[arg(long, value_parser = detector(), default_value = "front")]
    pub detector: Variant,
}

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Folder with one sub-folder per class.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Classes with fewer readable, distinct images are dropped.
    #[arg(long, default_value_t = 10)]
    pub min_images: usize,
    /// Where to write the JSON report (read by `split --filter`).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Folder with one sub-folder per class.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where train/, val/, test/, manifest.csv and split.json go.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Train, validation and test shares.
    #[arg(long, default_value = "0.8,0.1,0.1")]
    pub ratios: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Copy files (the default).
    #[arg(long, group = "mode")]
    pub copy: bool,
    /// Move files (resumable; undo with --rollback).
    #[arg(long, group = "mode")]
    pub r#move: bool,
    /// Hard-link files (no extra space; same file system).
    #[arg(long, group = "mode")]
    pub link: bool,
    /// Keep images whose file names give the same regex match (first capture group) together.
    #[arg(long, conflicts_with = "groups")]
    pub group_by: Option<String>,
    /// CSV of `path,group` lines keeping each group in one split.
    #[arg(long)]
    pub groups: Option<PathBuf>,
    /// Use only the images a `filter --report` kept.
    #[arg(long)]
    pub filter: Option<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Undo a --move split: put every file back where it came from.
    #[arg(long, conflicts_with_all = ["dry_run", "copy", "link"])]
    pub rollback: bool,
}

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// Folder of images (searched recursively).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Where the augmented copies go (same relative paths, `_augN.png`).
    #[arg(long, short)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub per_image: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write a contact sheet (originals and their augmentations) to this PNG.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Rows in the contact sheet.
    #[arg(long, default_value_t = 8)]
    pub grid_rows: usize,
    /// Process at most this many images.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with train/ and val/ (each with one sub-folder per class), as `split` writes it.
    #[arg(long, short)]
    pub data: PathBuf,
    /// Run folder: config, history, checkpoints.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Training config (TOML with [model], [train], [augment]); defaults otherwise.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Override train.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override train.limit (use at most this many training images).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Override train.init_from: start from another run's weights (its best.bpk, or the run
    /// folder) with a fresh schedule.
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Override train.labels: labels.csv files (FairFace's `path,gender,age_group,race`) for
    /// train.oversample's groups; repeatable.
    #[arg(long)]
    pub labels: Vec<PathBuf>,
    /// Instead of training, time this many bare steps (tensors in, forward, backward, optimizer
    /// step; no augmentation, validation or checkpoints) on each of --backends and print the
    /// losses: the rate the whole epochs of a run are measured against.
    #[arg(long)]
    pub compare_backends: Option<usize>,
    /// The backends --compare-backends times (ndarray is about 25x slower than flex).
    #[arg(
        long,
        value_parser = backend(),
        value_delimiter = ',',
        default_value = "flex,ndarray",
        requires = "compare_backends"
    )]
    pub backends: Vec<Backend>,
}

#[derive(Args, Debug)]
pub struct TeacherLogitsArgs {
    /// The teacher: a training run folder (config.toml, classes.json, best.bpk).
    #[arg(long, required_unless_present = "host", conflicts_with = "host")]
    pub run: Option<PathBuf>,
    /// Crops, one sub-folder per class (the student's training split).
    #[arg(long, required_unless_present = "host")]
    pub data: Option<PathBuf>,
    /// The teacher: a host model folder (models/gender-host), its logits combined from a
    /// describe cache (--descriptors) for the training photos of the student's split.
    #[arg(long, requires = "descriptors")]
    pub host: Option<PathBuf>,
    /// The describe cache the host teacher reads.
    #[arg(long)]
    pub descriptors: Option<PathBuf>,
    /// The host teacher's photo split, `photo,split` (default: its student's split.csv).
    #[arg(long, requires = "host")]
    pub split: Option<PathBuf>,
    /// The CSV to write (`name,<classes...>`); an existing file is refused.
    #[arg(long)]
    pub out: PathBuf,
    /// Average each crop's logits with its mirror image's (softer, usually better targets).
    #[arg(long)]
    pub mirror: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A training run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Labelled images whose activations set the int8 ranges (e.g. data/train).
    #[arg(long)]
    pub calibration: PathBuf,
    /// At most this many calibration images (spread over the folder).
    #[arg(long, default_value_t = 512)]
    pub calibration_images: usize,
    /// Output folder (model.onnx, model-int8.onnx, model.fgi8, model.json).
    #[arg(long)]
    pub out: PathBuf,
    /// The alignment the training crops were made with (recorded for predict).
    #[arg(long, value_parser = align(), default_value = "inner-eyes-bottom-lip")]
    pub align: AlignMethod,
    /// The `preprocess --scale` the training crops were made with.
    #[arg(long, default_value_t = 1.0)]
    pub crop_scale: f64,
    /// How activation ranges are chosen from the calibration images.
    #[arg(long, value_parser = ranges(), default_value = "mse")]
    pub ranges: Ranges,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// An exported model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Also evaluate the float model of this training run.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Labelled folder (one sub-folder per class).
    #[arg(long, short)]
    pub data: PathBuf,
    /// Engines to run (default: all available).
    #[arg(long, value_parser = engine(), value_delimiter = ',')]
    pub engines: Vec<Engine>,
    /// labels.csv with extra attributes (FairFace: age_group, race) for per-group accuracy;
    /// repeat it for crops from several photo folders.
    #[arg(long)]
    pub labels: Vec<PathBuf>,
    /// Folder for eval.json and the PNG charts.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Test-time mirroring: average each crop's logits with its mirror image's (two passes).
    #[arg(long)]
    pub mirror: bool,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Photos or folders (searched recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model folder: a host model (the student combined with dlib's face-recognition descriptor;
    /// default: models/gender-host) or an exported student alone (models/gender). The device
    /// chain always runs the student.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// One JSON object per photo on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write each photo with boxes, landmarks and labels drawn into this folder.
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    #[arg(long, value_parser = detector(), default_value = "front")]
    pub detector: Variant,
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// Faces narrower than this (pixels) are reported too_small, not classified.
    #[arg(long, default_value_t = 32.0)]
    pub min_face: f32,
    /// Faces whose top class probability is lower are reported uncertain, without a label.
    #[arg(long, default_value_t = 0.6)]
    pub min_probability: f32,
    /// Run the microcontroller's int8 chain (int8 BlazeFace, keypoint alignment) through the core
    /// instead of the host chain (float BlazeFace, dlib landmarks).
    #[arg(long)]
    pub device_chain: bool,
    /// Average each face's logits with its mirror image's: twice the classification, 0.7 points
    /// more accurate on FairFace validation (see the model card). Host chain only.
    #[arg(long, conflicts_with = "device_chain")]
    pub mirror: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Folders of labelled photos, one sub-folder per class (repeat for several).
    #[arg(long, short, required = true)]
    pub input: Vec<PathBuf>,
    /// Cache folder (descriptors.csv and describe.json).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The student's model folder (default: the shipped models/gender).
    #[arg(long)]
    pub student: Option<PathBuf>,
    /// Only the first N photos (evenly spread over the listing), for a quick look.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct TrainHostArgs {
    /// A describe cache folder.
    #[arg(long)]
    pub descriptors: PathBuf,
    /// The photos' split, `photo,split` (default: the student's split.csv).
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// The student's model folder (default: the shipped models/gender).
    #[arg(long)]
    pub student: Option<PathBuf>,
    /// Host model folder to write (host.json, eval.json).
    #[arg(long, short)]
    pub out: PathBuf,
    /// FairFace-style labels.csv files for per-group tables (repeat).
    #[arg(long)]
    pub labels: Vec<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Replace an existing host.json.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Folder of photos (searched recursively).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Use the first N photos.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Exported model folder (default: the shipped models/gender).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Host model folder whose descriptor and chain are benchmarked too (default:
    /// models/gender-host when it is there).
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Repetitions for the classifier head-to-head.
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Labelled photos to run on, one folder per class (default: the bundled samples/fairface,
    /// 300 photos from the shipped model's held-out test split).
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// Photos with several faces or none, with their scenes.csv (default: samples/scenes).
    #[arg(long, conflicts_with = "no_scenes")]
    pub scenes: Option<PathBuf>,
    /// Skip the scenes.
    #[arg(long)]
    pub no_scenes: bool,
    /// Where every artifact goes (an earlier demo there is replaced; any other folder is refused).
    #[arg(long, default_value = "out/demo")]
    pub workdir: PathBuf,
}

/// A parser for one of a library's enums: clap offers `values` (name, help) and serde turns the
/// chosen name into the enum, so a name here that the library does not know fails in the tests.
fn choice<T>(values: &[(&'static str, &'static str)]) -> impl TypedValueParser<Value = T>
where
    T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let values = values
        .iter()
        .map(|&(name, help)| PossibleValue::new(name).help(help));
    PossibleValuesParser::new(values).try_map(|name| serde_json::from_value(name.into()))
}

fn align() -> impl TypedValueParser<Value = AlignMethod> {
    choice(&[
        (
            "inner-eyes-bottom-lip",
            "openface: landmarks 39, 42, 57 (inner eye corners, bottom lip) onto the template",
        ),
        (
            "outer-eyes-nose",
            "openface: landmarks 36, 45, 33 (outer eye corners, nose tip) onto the template",
        ),
        (
            "similarity",
            "Least-squares similarity over all 68 landmarks (no shear; steadier on turned faces)",
        ),
    ])
}

fn detector() -> impl TypedValueParser<Value = Variant> {
    choice(&[
        (
            "front",
            "Front-camera model, 128x128 input: faces larger than about a fifth of the photo",
        ),
        (
            "back",
            "Back-camera model, 256x256 input: also finds smaller faces, about 4x slower",
        ),
    ])
}

fn ranges() -> impl TypedValueParser<Value = Ranges> {
    choice(&[
        (
            "min-max",
            "Minimum and maximum of each layer's output, scale rounded up to a power of two",
        ),
        (
            "mse",
            "As min-max, then each ReLU output's power-of-two scale that gives the least squared error (rounding plus clipping) over the calibration images",
        ),
    ])
}

fn engine() -> impl TypedValueParser<Value = Engine> {
    choice(&[
        ("float", "The float model in burn (needs --run)"),
        ("onnx", "The float ONNX through tract"),
        ("int8-tract", "The int8 ONNX through tract"),
        ("int8-core", "The int8 model file through facegender-core"),
    ])
}

fn backend() -> impl TypedValueParser<Value = Backend> {
    choice(&[
        ("flex", "burn-flex: pure-Rust CPU backend (SIMD, rayon)"),
        ("ndarray", "burn-ndarray (deprecated in burn 0.22)"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every name the parser offers; returns how many there were.
    fn parse_every_name<T>(p: impl TypedValueParser<Value = T>) -> usize {
        let (cmd, arg) = (clap::Command::new("t"), clap::Arg::new("x"));
        let names: Vec<_> = p.possible_values().into_iter().flatten().collect();
        for v in &names {
            let r = p.parse_ref(&cmd, Some(&arg), std::ffi::OsStr::new(v.get_name()));
            assert!(r.is_ok(), "{}: {:?}", v.get_name(), r.err());
        }
        names.len()
    }

    /// Every name offered for a choice parses into the library's enum (a renamed variant
    /// would otherwise only fail when a user picks it).
    #[test]
    fn every_offered_choice_parses() {
        assert_eq!(parse_every_name(align()), 3);
        assert_eq!(parse_every_name(detector()), 2);
        assert_eq!(parse_every_name(ranges()), 2);
        assert_eq!(parse_every_name(engine()), 4);
        assert_eq!(parse_every_name(backend()), 2);
    }
}
