//! The landmark model file: flat, versioned, little-endian, checked once, read in place.
//!
//! ```text
//! header (32 bytes: the shared [`crate::container`] header, then these fields)
//!   0  magic "FGER"       4  version u16 = 1     6  header_len u16 = 32
//!   8  payload_len u32   12  payload CRC-32 u32
//!  16  landmarks u16     18  cascades u16       20  trees per cascade u16   22 depth u8, 0 u8
//!  24  features per cascade u16   26  0 u16     28  0 u32
//! payload
//!   initial shape   2 x landmarks f32 (x0, y0, x1, y1, ...), in the unit face box
//!   per cascade:
//!     anchors       features x u16 landmark index, zero-padded to 4 bytes
//!     deltas        features x (dx f32, dy f32)
//!     splits        trees x (2^depth - 1) x (idx1 u16, idx2 u16, threshold f32)
//!     leaves        trees x 2^depth x 2 x landmarks f32
//! ```

use crate::container::{check_header, u16_at, u32_at};
use crate::nn::format::FormatError;

pub use crate::container::HEADER_LEN;

pub const MAGIC: [u8; 4] = *b"FGER";
pub const VERSION: u16 = 1;
/// Limits keep the runtime's stack buffers fixed (dlib's 68- and 194-point models fit).
pub const MAX_LANDMARKS: usize = 256;
pub const MAX_FEATURES: usize = 1024;
pub const MAX_DEPTH: u8 = 12;
pub const MAX_CASCADES: usize = 64;

/// Why a landmark model was rejected, or a prediction could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErtError {
    /// The shared [`crate::container`] header is damaged: one of the header variants of
    /// [`FormatError`] (`TooShort` to `ChecksumMismatch`), as the int8 model file reports them.
    Header(FormatError),
    /// A count is zero or above its limit.
    BadCount(&'static str),
    /// The payload length does not follow from the counts.
    BadLayout,
    /// A landmark or feature index is out of range.
    BadIndex,
    /// A value is NaN or infinite.
    NotFinite,
    /// The output slice does not hold one point per landmark.
    OutputLength { expected: usize, given: usize },
    /// The face box is empty or inverted.
    BadRect,
}

impl core::fmt::Display for ErtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Header(FormatError::BadMagic) => {
                write!(f, "not a facegender landmark model (bad magic)")
            }
            Self::Header(FormatError::UnsupportedVersion(v)) => {
                write!(f, "unsupported landmark format version {v}")
            }
            Self::Header(e) => e.fmt(f),
            Self::BadCount(what) => write!(f, "bad {what} count"),
            Self::BadLayout => write!(f, "payload length does not follow from the counts"),
            Self::BadIndex => write!(f, "landmark or feature index out of range"),
            Self::NotFinite => write!(f, "model holds a NaN or infinite value"),
            Self::OutputLength { expected, given } => {
                write!(
                    f,
                    "output holds {given} points, the model predicts {expected}"
                )
            }
            Self::BadRect => write!(f, "face box is empty or inverted"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ErtError {}

/// Sizes that fix the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub landmarks: usize,
    pub cascades: usize,
    pub trees: usize,
    pub depth: u8,
    pub features: usize,
}

impl Dims {
    pub const fn splits(&self) -> usize {
        (1 << self.depth) - 1
    }

    pub const fn leaves(&self) -> usize {
        1 << self.depth
    }

    pub const fn anchors_len(&self) -> usize {
        (2 * self.features).next_multiple_of(4)
    }

    /// Bytes of one cascade (u64: cannot overflow for counts within the limits).
    pub const fn cascade_len(&self) -> u64 {
        let f = self.features as u64;
        let t = self.trees as u64;
        self.anchors_len() as u64
            + 8 * f
            + 8 * t * self.splits() as u64
            + 4 * t * self.leaves() as u64 * 2 * self.landmarks as u64
    }

    pub const fn payload_len(&self) -> u64 {
        8 * self.landmarks as u64 + self.cascades as u64 * self.cascade_len()
    }
}

/// A validated landmark model borrowing the file bytes.
#[derive(Clone, Copy, Debug)]
pub struct ShapePredictor<'a> {
    payload: &'a [u8],
    dims: Dims,
}

/// One cascade's sections, as byte slices of the payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cascade<'a> {
    pub anchors: &'a [u8],
    pub deltas: &'a [u8],
    pub splits: &'a [u8],
    pub leaves: &'a [u8],
}

impl<'a> ShapePredictor<'a> {
    /// Checks `bytes` completely (lengths, checksum, indices, finiteness).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ErtError> {
        let payload = check_header!(bytes, MAGIC, VERSION, ErtError::Header);
        let dims = Dims {
            landmarks: u16_at(bytes, 16) as usize,
            cascades: u16_at(bytes, 18) as usize,
            trees: u16_at(bytes, 20) as usize,
            depth: bytes[22],
            features: u16_at(bytes, 24) as usize,
        };
        if bytes[23] != 0 || u16_at(bytes, 26) != 0 || u32_at(bytes, 28) != 0 {
            return Err(ErtError::BadLayout);
        }
        let limits = [
            (dims.landmarks, MAX_LANDMARKS, "landmark"),
            (dims.cascades, MAX_CASCADES, "cascade"),
            (dims.trees, u16::MAX as usize, "tree"),
            (dims.depth as usize, MAX_DEPTH as usize, "depth"),
            (dims.features, MAX_FEATURES, "feature"),
        ];
        for (n, max, what) in limits {
            if n == 0 || n > max {
                return Err(ErtError::BadCount(what));
            }
        }
        if dims.payload_len() != payload.len() as u64 {
            return Err(ErtError::BadLayout);
        }
        let model = Self { payload, dims };
        model.validate()?;
        Ok(model)
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }

    pub fn landmark_count(&self) -> usize {
        self.dims.landmarks
    }

    pub(crate) fn initial_shape(&self) -> &'a [u8] {
        &self.payload[..8 * self.dims.landmarks]
    }

    pub(crate) fn cascade(&self, c: usize) -> Cascade<'a> {
        let d = &self.dims;
        let start = 8 * d.landmarks + c * d.cascade_len() as usize;
        let (a, f, t) = (d.anchors_len(), d.features, d.trees);
        let s = &self.payload[start..start + d.cascade_len() as usize];
        let (anchors, rest) = s.split_at(a);
        let (deltas, rest) = rest.split_at(8 * f);
        let (splits, leaves) = rest.split_at(8 * t * d.splits());
        Cascade {
            anchors,
            deltas,
            splits,
            leaves,
        }
    }

    fn validate(&self) -> Result<(), ErtError> {
        let finite = |bytes: &[u8]| {
            bytes
                .chunks_exact(4)
                .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
        };
        if !finite(self.initial_shape()) {
            return Err(ErtError::NotFinite);
        }
        let d = self.dims;
        for c in 0..d.cascades {
            let k = self.cascade(c);
            for i in 0..d.features {
                if u16_at(k.anchors, 2 * i) as usize >= d.landmarks {
                    return Err(ErtError::BadIndex);
                }
            }
            if k.anchors[2 * d.features..].iter().any(|&b| b != 0) {
                return Err(ErtError::BadLayout);
            }
            for s in k.splits.chunks_exact(8) {
                let (i1, i2) = (u16_at(s, 0) as usize, u16_at(s, 2) as usize);
                if i1 >= d.features || i2 >= d.features {
                    return Err(ErtError::BadIndex);
                }
                if !finite(&s[4..8]) {
                    return Err(ErtError::NotFinite);
                }
            }
            if !finite(k.deltas) || !finite(k.leaves) {
                return Err(ErtError::NotFinite);
            }
        }
        Ok(())
    }
}
