//! Model files: where they live, how they are checked before use, and what an exported model
//! folder holds (its file names, `model.json`, `device-chain.json`, the int8 detector's
//! `model.json`) with their readers. Writers (`facegender-export`) and readers share this one
//! contract.
//!
//! The models directory is, in order: `--models DIR`, `$FACEGENDER_MODELS`, `./models` if it
//! exists, then `models/` of the source tree the binary was built from. dlib's landmark model is
//! `--landmarks FILE`, `$FACEGENDER_DLIB_MODEL`, or Debian's `libdlib-data` location.

use std::path::{Path, PathBuf};

use facegender_core::chain::Template;
use facegender_core::nn::model::Model;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::align::AlignMethod;
use crate::error::Context;
pub use crate::error::{ModelFileError, SETUP_HINT};

pub const DLIB_DEFAULT: &str = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

/// Reads a model file, naming it (and the fix) in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, ModelFileError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ModelFileError::Missing {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(ModelFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a model file and checks its sha256.
pub fn read_checked(path: &Path, sha256: &str) -> Result<Vec<u8>, ModelFileError> {
    let bytes = read(path)?;
    let got = hex(&Sha256::digest(&bytes));
    if got != sha256 {
        return Err(ModelFileError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("sha256 {got}, expected {sha256}"),
        });
    }
    Ok(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The models directory (see the module docs for the search order).
pub fn models_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("FACEGENDER_MODELS") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("models");
    if local.join("blazeface").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// dlib's 68-point landmark model file.
pub fn dlib_model_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FACEGENDER_DLIB_MODEL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DLIB_DEFAULT))
}

/// What `export` writes next to the models (read by eval, predict and the firmware build).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportInfo {
    pub classes: Vec<String>,
    /// Side of the aligned crop the model takes.
    pub input: usize,
    /// How crops were aligned for training (predict aligns the same way).
    pub align: AlignMethod,
    /// The `--scale` preprocess used.
    pub crop_scale: f64,
    pub input_scaling: String,
    pub calibration_images: usize,
    pub calibration_method: String,
    /// Layer outputs whose scale `--ranges mse` set below the min/max one.
    #[serde(default)]
    pub lowered_scales: usize,
    pub macs: u64,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    pub model_file_bytes: usize,
    pub logits: QParamsInfo,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QParamsInfo {
    pub scale: f32,
    pub zero_point: i8,
}

/// File names inside an exported model folder.
pub const FLOAT_ONNX: &str = "model.onnx";

pub const INT8_ONNX: &str = "model-int8.onnx";

pub const CORE_MODEL: &str = "model.fgi8";

pub const INFO: &str = "model.json";
/// The device chain's settings, next to the classifier.
pub const DEVICE_CHAIN: &str = "device-chain.json";

/// Written next to the int8 detector (`model.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectorInfo {
    pub source: String,
    pub input: u32,
    pub calibration_images: usize,
    pub calibration_method: String,
    pub macs: u64,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    /// Score threshold for the int8 model, calibrated by `facegender_export::detector::calibrate_threshold` (files
    /// written before it have none and use the float model's 0.5).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    #[serde(default)]
    pub threshold_method: String,
    /// Logits added to each score head's biases, per anchor type (bias correction).
    #[serde(default)]
    pub score_bias_correction: [Vec<f32>; 2],
}

/// The float BlazeFace's threshold (`detect::DEFAULT_THRESHOLD`), which detector folders
/// written before calibration used.
fn default_threshold() -> f32 {
    0.5
}

impl DetectorInfo {
    pub fn load(dir: &Path) -> crate::Result<Self> {
        let p = dir.join(INFO);
        serde_json::from_slice(&read(&p)?).with_context(|| format!("reading {}", p.display()))
    }
}

/// The chain's settings next to the classifier (`device-chain.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainInfo {
    pub template_side: u32,
    /// right eye, left eye, nose, mouth, in crop pixels
    pub template: [[f64; 2]; 4],
    pub fitted_on: usize,
    pub threshold: f32,
    pub nms_iou: f32,
}

impl ChainInfo {
    pub fn template(&self) -> Template {
        Template {
            side: self.template_side,
            points: self.template,
        }
    }

    pub fn load(model_dir: &Path) -> crate::Result<Self> {
        let p = model_dir.join(DEVICE_CHAIN);
        serde_json::from_slice(&std::fs::read(&p).with_context(|| {
            format!(
                "{} (make it with facegender fit-keypoint-template)",
                p.display()
            )
        })?)
        .with_context(|| format!("reading {}", p.display()))
    }
}

/// Loads an export folder's info.
pub fn export_info(model_dir: &Path) -> crate::Result<ExportInfo> {
    let p = model_dir.join(INFO);
    serde_json::from_slice(
        &std::fs::read(&p)
            .with_context(|| format!("{} is not an exported model folder", model_dir.display()))?,
    )
    .with_context(|| format!("reading {}", p.display()))
}

/// An exported model folder's `model.json` and core model bytes, for [`crate::classify::Classifier::new`].
pub fn read_classifier(model_dir: &Path) -> crate::Result<(ExportInfo, Vec<u8>)> {
    let info = export_info(model_dir)?;
    let path = model_dir.join(CORE_MODEL);
    let bytes = read(&path)?;
    Model::parse(&bytes).map_err(|e| crate::invalid!("{}: {e}", path.display()))?;
    Ok((info, bytes))
}
