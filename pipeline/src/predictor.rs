//! The whole `predict` chain as one owned value: every model loaded once, then any number of
//! photos labelled through it, from any thread. The CLI's `predict` and the Python package are
//! both thin glue over [`Predictor`], so they give the same answers.
//!
//! ```no_run
//! # fn main() -> facegender_pipeline::Result<()> {
//! use facegender_pipeline::predict::Photo;
//! use facegender_pipeline::predictor::{Options, Predictor};
//! let p = Predictor::load(&Options::new("models".into(), "shape_predictor_68_face_landmarks.dat".into()))?;
//! let session = p.session()?;
//! let result = session.predict(Photo::Path("photo.jpg".as_ref()), None);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::classify::Classifier;
use crate::detect::{DEFAULT_THRESHOLD, Variant};
use crate::host::{HOST_FILE, HostInfo, HostModel, is_host_model};
use crate::model_dir::{self, ExportInfo};
use crate::predict::{self, Config, DeviceModels, ImageResult, Photo};
use crate::preprocess::{CropSettings, Entry, HostModels, Models};

/// What to load and how to label; the CLI's `predict` flags.
#[derive(Clone, Debug)]
pub struct Options {
    /// The models folder (`models/`): BlazeFace, the int8 detector, the classifiers.
    pub models_dir: PathBuf,
    /// dlib's 68-point landmark model file.
    pub dlib: PathBuf,
    /// The classifier folder: a host model or an exported student (default: [`default_model`]).
    pub model: Option<PathBuf>,
    /// Run the microcontroller's chain (int8 detector, keypoint alignment, the student alone).
    pub device_chain: bool,
    pub detector: Variant,
    pub config: Config,
}

impl Options {
    /// `predict`'s defaults.
    pub fn new(models_dir: PathBuf, dlib: PathBuf) -> Self {
        Self {
            models_dir,
            dlib,
            model: None,
            device_chain: false,
            detector: Variant::Front,
            config: Config::default(),
        }
    }
}

impl Default for Config {
    /// `predict`'s defaults: the detector's threshold, faces from 32 px, labels from p = 0.6.
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            min_face: 32.0,
            min_probability: 0.6,
            mirror: false,
        }
    }
}

/// `predict`'s model: the host-grade classifier (models/gender-host) where it is installed, for
/// 2.5 points more on the test split at three quarters of the student chain's speed (see its
/// model card); else the student (models/gender).
pub fn default_model(models_dir: &Path) -> PathBuf {
    let host = models_dir.join("gender-host");
    if is_host_model(&host) {
        host
    } else {
        models_dir.join("gender")
    }
}

/// The chain's models, loaded once.
pub struct Predictor {
    options: Options,
    host: HostModels,
    info: ExportInfo,
    classifier: Vec<u8>,
    host_model: Option<HostModel>,
    device: Option<DeviceModels>,
    model_dir: PathBuf,
    fingerprint: String,
}

impl Predictor {
    /// Loads every model `options` needs; a missing or damaged file is an error naming it.
    pub fn load(options: &Options) -> crate::Result<Self> {
        let o = options;
        crate::ensure!(
            (0.0..=1.0).contains(&o.config.min_probability),
            "min_probability must be in [0, 1]"
        );
        crate::ensure!(
            !(o.device_chain && o.config.mirror),
            "mirroring is for the host chain: the device chain does what the firmware does"
        );
        let chosen = o
            .model
            .clone()
            .unwrap_or_else(|| default_model(&o.models_dir));
        let is_host = is_host_model(&chosen);
        // A host model folder names its student; the device chain runs the student alone.
        let host_model = if is_host && !o.device_chain {
            Some(HostModel::load(&chosen)?)
        } else {
            None
        };
        let model_dir = if is_host {
            HostInfo::student_of(&chosen)?
        } else {
            chosen.clone()
        };
        let (info, classifier) = model_dir::read_classifier(&model_dir)?;
        let host = HostModels::load(&o.models_dir, &o.dlib, o.detector)?;
        let device = if o.device_chain {
            let detector_dir = o.models_dir.join("blazeface-int8");
            Some(DeviceModels::load(&detector_dir, &model_dir)?)
        } else {
            None
        };
        let mut h = Sha256::new();
        h.update(Sha256::digest(&classifier));
        if host_model.is_some() {
            h.update(Sha256::digest(std::fs::read(chosen.join(HOST_FILE))?));
        }
        Ok(Self {
            options: o.clone(),
            host,
            info,
            classifier,
            host_model,
            device,
            model_dir,
            fingerprint: model_dir::hex(&h.finalize()),
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The classes, in the order of the logits.
    pub fn classes(&self) -> &[String] {
        &self.info.classes
    }

    /// The student's folder (the classifier the device chain runs).
    pub fn student_dir(&self) -> &Path {
        &self.model_dir
    }

    /// Whether labels come from the host-grade classifier (head and combined logits too).
    pub fn is_host_model(&self) -> bool {
        self.host_model.is_some()
    }

    /// The sha256 of what decides a label: the student's int8 model, and `host.json` for a host
    /// model (which pins the ResNet by its own sha256). A job's outputs record it, so that parts
    /// made by different models are never mixed.
    pub fn model_sha256(&self) -> &str {
        &self.fingerprint
    }

    /// The models, lent out for a batch of photos (cheap: views over the loaded bytes).
    pub fn session(&self) -> crate::Result<Session<'_>> {
        Ok(Session {
            p: self,
            models: self.host.models()?,
            classifier: Classifier::new(&self.classifier, self.info.clone())?,
        })
    }
}

/// A [`Predictor`]'s models ready to run; shared by every thread of a batch.
pub struct Session<'a> {
    p: &'a Predictor,
    models: Models<'a>,
    classifier: Classifier<'a>,
}

impl Session<'_> {
    /// Labels every face of one photo (never fails: an unreadable photo is a result with status
    /// `unreadable`); with `annotate`, also writes the annotated photo there.
    pub fn predict(&self, photo: Photo<'_>, annotate: Option<&Path>) -> ImageResult {
        let cfg = &self.p.options.config;
        match &self.p.device {
            Some(d) => predict::predict_device(d, &self.classifier, cfg, photo, annotate),
            None => predict::predict_image(
                &self.models,
                &self.classifier,
                self.p.host_model.as_ref(),
                cfg,
                photo,
                annotate,
            ),
        }
    }

    /// `preprocess`'s aligned crop of the photo's largest face (the host chain's detector and
    /// landmarks, whatever the chain), and its report entry (status, box, landmarks).
    pub fn crop(&self, photo: Photo<'_>, s: &CropSettings) -> (Option<image::RgbImage>, Entry) {
        crate::preprocess::crop_photo(&self.models, s, photo)
    }
}
