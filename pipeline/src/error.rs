//! The pipeline's errors, typed, so that a caller (the CLI, a Python binding) can tell a photo
//! that cannot be read from a model file that is missing, a model the core refuses, or input the
//! pipeline cannot work with. Each keeps the message and the cause chain the CLI prints.

use std::fmt::Display;
use std::path::PathBuf;

use crate::decode::DecodeError;

/// What went wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A photo that cannot be read as an image: empty, truncated, too large, not an image.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A model file that is missing or damaged (the message names the file and the fix).
    #[error(transparent)]
    ModelFile(#[from] ModelFileError),
    /// The core refused model bytes or an input (a face too close to the edge to align, ...).
    #[error(transparent)]
    Core(Box<dyn std::error::Error + Send + Sync>),
    /// tract could not load or run a model.
    #[error(transparent)]
    Tract(Box<dyn std::error::Error + Send + Sync>),
    /// A file or folder that cannot be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A JSON file (a report, `model.json`) that is not what it should be.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An ONNX file that cannot be decoded.
    #[error(transparent)]
    Onnx(#[from] prost::DecodeError),
    /// A CSV file (labels, groups, a manifest) that cannot be read.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// An image that cannot be encoded or drawn.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// Any other failure, with its own message and causes (a TOML config, an ELF file...).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// Input or settings the pipeline cannot work with, said in words.
    #[error("{0}")]
    Invalid(String),
    /// What was being done, around the error that stopped it.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// What to run to get a missing or damaged model file back.
pub const SETUP_HINT: &str = "run scripts/setup (it fetches and checks every model file)";

/// A model file that is missing or not the expected bytes.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("model file {path} is missing: {SETUP_HINT}")]
    Missing { path: PathBuf },
    #[error("model file {path} is corrupt ({reason}): {SETUP_HINT}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Any error as [`Error::Other`], for the crates built on the pipeline.
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Box::new(e))
    }
}

/// The pipeline's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<anyhow::Error> for Error {
    /// tract reports its errors through anyhow.
    fn from(e: anyhow::Error) -> Self {
        Error::Tract(e.into())
    }
}

macro_rules! from_core {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Core(Box::new(e))
            }
        })*
    };
}

from_core!(
    facegender_core::align::AlignError,
    facegender_core::chain::ChainError,
    facegender_core::detect::DetectError,
    facegender_core::ert::format::ErtError,
    facegender_core::ert::dlib::DlibError,
    facegender_descriptor::Error,
    facegender_descriptor::chip::ChipError,
    facegender_core::image::ImageError,
    facegender_core::nn::format::FormatError,
    facegender_core::nn::model::RunError,
    facegender_core::nn::write::WriteError,
    std::num::TryFromIntError,
    tempfile::PersistError,
);

/// Adds what was being done to an error, as anyhow's `Context` does.
pub trait Context<T> {
    fn context(self, context: impl Display) -> Result<T>;
    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.to_string(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().to_string(),
            source: Box::new(e.into()),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(context.to_string()))
    }

    fn with_context<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(context().to_string()))
    }
}

/// An [`Error::Invalid`] from a format string.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)+) => {
        $crate::Error::Invalid(format!($($arg)+))
    };
}

/// Returns an [`Error::Invalid`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::invalid!($($arg)+))
    };
}

/// Returns an [`Error::Invalid`] unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::invalid!($($arg)+));
        }
    };
}
