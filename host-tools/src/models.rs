//! Where model files live, and checking them before use.
//!
//! The models directory is, in order: `--models DIR`, `$FACEGENDER_MODELS`, `./models` if it
//! exists, then `models/` of the source tree the binary was built from. dlib's landmark model is
//! `--landmarks FILE`, `$FACEGENDER_DLIB_MODEL`, or Debian's `libdlib-data` location.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What to run to get a missing or damaged model file back.
pub const SETUP_HINT: &str = "run scripts/setup (it fetches and checks every model file)";

pub const DLIB_DEFAULT: &str = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

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
