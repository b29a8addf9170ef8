//! facegender-descriptor: dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`,
//! the network behind `face_recognition`) in Rust, with no dlib at run time.
//!
//! - [`network`]: the architecture, and the weights read from dlib's own file (typed errors
//!   naming the byte of any fault).
//! - [`chip`]: dlib's 150 px face chip from the 68 landmarks.
//! - [`graph`]: the network as ONNX, optimised and run by tract (the engine in use).
//! - [`reference`]: the same network in plain loops: the check on tract, timed beside it.
//!
//! [`FaceNet`] ties them: a photo and a face's landmarks in, the 128-D descriptor out.

pub mod chip;
pub mod graph;
pub mod network;
pub mod reference;

use std::path::Path;

use facegender_core::dlib::DlibError;
use facegender_core::image::RgbView;

pub use network::{CHIP_SIZE, DESCRIPTOR_LEN};

/// A face descriptor.
pub type Descriptor = [f32; DESCRIPTOR_LEN];

/// The model file's name in a models folder.
pub const MODEL_FILE: &str = "dlib_face_recognition_resnet_model_v1.dat";

/// What can go wrong loading or running the network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dlib(#[from] DlibError),
    #[error(transparent)]
    Chip(#[from] chip::ChipError),
    #[error("face-recognition network in tract: {0:#}")]
    Tract(anyhow::Error),
}

/// The face-recognition network, loaded and ready (share it across threads).
pub struct FaceNet {
    net: graph::TractNet,
    /// The network as read, for the reference engine.
    pub network: network::Network,
}

impl FaceNet {
    /// Reads dlib's file from `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Reads dlib's file from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let network = network::Network::parse(bytes)?;
        Ok(Self {
            net: graph::TractNet::new(&network).map_err(Error::Tract)?,
            network,
        })
    }

    /// The descriptor of a 150 x 150 RGB chip (dlib's `compute_face_descriptor(chip)`).
    pub fn describe_chip(&self, chip_rgb: &[u8]) -> Result<Descriptor, Error> {
        self.net.describe(chip_rgb).map_err(Error::Tract)
    }

    /// The chip and descriptor of the face with these 68 landmarks (dlib's
    /// `compute_face_descriptor(img, shape)`).
    pub fn describe(
        &self,
        img: &RgbView<'_>,
        landmarks: &[[f64; 2]],
    ) -> Result<(Vec<u8>, Descriptor), Error> {
        let chip = face_chip(img, landmarks)?;
        let d = self.describe_chip(&chip)?;
        Ok((chip, d))
    }
}

/// dlib's 150 px chip (padding 0.25) of the face with these 68 landmarks, packed RGB.
pub fn face_chip(img: &RgbView<'_>, landmarks: &[[f64; 2]]) -> Result<Vec<u8>, chip::ChipError> {
    let d = chip::details(landmarks, CHIP_SIZE, chip::PADDING)?;
    let mut out = vec![0u8; CHIP_SIZE * CHIP_SIZE * 3];
    chip::extract(img, &d, &mut out)?;
    Ok(out)
}
