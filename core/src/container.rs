//! The 32-byte header both model files start with, checked in one place.
//!
//! ```text
//!   0  magic [u8; 4]        4  version u16          6  header_len u16 = 32
//!   8  payload_len u32     12  payload CRC-32 (IEEE) u32
//!  16  16 bytes of fields of the file's own
//! payload (payload_len bytes)
//! ```
//!
//! `check_header!` validates the shared part (length, magic, version, header length, payload
//! length, checksum) and hands back the payload; `nn::format` (the int8 model)
//! and `ert::format` (the landmark model) read the rest. Also the bounds-checked little-endian
//! readers both use, and (feature `std`) `seal`, the writer's side.

pub const HEADER_LEN: usize = 32;

/// Checks the shared header of `$bytes` (a `&[u8]`) for a file of kind `$magic`, `$version`:
/// returns early with `Err($wrap(e))`, `e` the matching header variant of
/// [`crate::nn::format::FormatError`] (`TooShort`, `BadMagic`, `UnsupportedVersion`,
/// `BadHeaderLength`, `LengthMismatch` or `ChecksumMismatch`), else evaluates to the payload (the
/// bytes after the header). The file's own fields are `$bytes[16..32]`.
///
/// A macro rather than a function so that each parser keeps the checks inline, exactly as the
/// firmware's instruction counts were measured with.
macro_rules! check_header {
    ($bytes:expr, $magic:expr, $version:expr, $wrap:expr) => {{
        use $crate::container::{HEADER_LEN, u16_at, u32_at};
        use $crate::nn::format::FormatError;
        let bytes: &[u8] = $bytes;
        if bytes.len() < HEADER_LEN {
            return Err($wrap(FormatError::TooShort));
        }
        if bytes[..4] != $magic {
            return Err($wrap(FormatError::BadMagic));
        }
        let version = u16_at(bytes, 4);
        if version != $version {
            return Err($wrap(FormatError::UnsupportedVersion(version)));
        }
        let header_len = u16_at(bytes, 6);
        if header_len as usize != HEADER_LEN {
            return Err($wrap(FormatError::BadHeaderLength(header_len)));
        }
        let declared = u32_at(bytes, 8);
        let actual = u32::try_from(bytes.len() - HEADER_LEN).unwrap_or(u32::MAX);
        if declared != actual {
            return Err($wrap(FormatError::LengthMismatch { declared, actual }));
        }
        let payload = &bytes[HEADER_LEN..];
        let crc = crc32fast::hash(payload);
        let declared_crc = u32_at(bytes, 12);
        if crc != declared_crc {
            return Err($wrap(FormatError::ChecksumMismatch {
                declared: declared_crc,
                actual: crc,
            }));
        }
        payload
    }};
}
pub(crate) use check_header;

/// Whether `bytes` starts with `magic` (usable at compile time, before any header check).
pub const fn has_magic(bytes: &[u8], magic: [u8; 4]) -> bool {
    bytes.len() >= 4
        && bytes[0] == magic[0]
        && bytes[1] == magic[1]
        && bytes[2] == magic[2]
        && bytes[3] == magic[3]
}

/// The whole file: the header for `magic`, `version`, the file's own `fields` and `payload`.
#[cfg(feature = "std")]
pub fn seal(
    magic: [u8; 4],
    version: u16,
    fields: &[u8; 16],
    payload: &[u8],
) -> Result<std::vec::Vec<u8>, PayloadTooLarge> {
    let len = u32::try_from(payload.len()).map_err(|_| PayloadTooLarge)?;
    let mut bytes = std::vec::Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(fields);
    bytes.extend_from_slice(payload);
    Ok(bytes)
}

/// A payload of 4 GiB or more: its length does not fit the header.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTooLarge;

// ---- little-endian field readers (bounds-checked; validated callers never hit the default) ----

pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[x, y, z, w]) => u32::from_le_bytes([x, y, z, w]),
        _ => 0,
    }
}
