//! Decoding photos into RGB8, safely.
//!
//! JPEG goes through libjpeg-turbo (the decoder dlib and Pillow use, so landmarks computed on our
//! pixels equal dlib's); PNG, WebP, BMP and GIF (first frame) through the `image` crate. EXIF
//! orientation is applied; grey, grey+alpha, RGBA, 16-bit and CMYK inputs become RGB8 (alpha is
//! dropped). Declared dimensions are checked against [`Limits`] before any pixel buffer is
//! allocated, so a hostile header cannot exhaust memory.

use std::borrow::Cow;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// Largest inputs accepted.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // 64 MP covers any phone or DSLR photo; 256 MiB of file is far beyond any of them.
        Self {
            max_file_bytes: 256 << 20,
            max_pixels: 64_000_000,
            max_side: 30_000,
        }
    }
}

/// Why a file could not be decoded. The variant names are the statuses written to reports.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    #[error("file is empty")]
    Empty,
    #[error("not an image in a supported format (jpeg, png, webp, bmp, gif)")]
    UnknownFormat,
    #[error(
        "image of {width}x{height} exceeds the limit of {max_pixels} pixels or {max_side} per side"
    )]
    TooLarge {
        width: u64,
        height: u64,
        max_pixels: u64,
        max_side: u32,
    },
    #[error("file larger than {0} bytes")]
    FileTooLarge(u64),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

impl DecodeError {
    /// Short machine-readable reason for reports.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io(_) => "io_error",
            Self::Empty => "empty_file",
            Self::UnknownFormat => "not_an_image",
            Self::TooLarge { .. } | Self::FileTooLarge(_) => "too_large",
            Self::Corrupt(_) => "corrupt",
        }
    }
}

/// Reads and decodes `path`.
pub fn decode_file(path: &Path, limits: &Limits) -> Result<RgbImage, DecodeError> {
    let len = std::fs::metadata(path)?.len();
    if len > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge(limits.max_file_bytes));
    }
    decode_bytes(&std::fs::read(path)?, limits)
}

fn check_size(width: u64, height: u64, limits: &Limits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt("zero width or height".into()));
    }
    if width * height > limits.max_pixels || width.max(height) > limits.max_side as u64 {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    Ok(())
}

/// Decodes an in-memory file.
pub fn decode_bytes(bytes: &[u8], limits: &Limits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge(limits.max_file_bytes));
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    if !matches!(
        format,
        ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::WebP
            | ImageFormat::Bmp
            | ImageFormat::Gif
    ) {
        return Err(DecodeError::UnknownFormat);
    }
    if format == ImageFormat::Jpeg {
        let info = jpeg_markers(bytes);
        // libjpeg-turbo fills a cut-off file with grey and only warns: refuse it instead.
        if !info.complete {
            return Err(DecodeError::Corrupt(
                "truncated JPEG (the data ends before the end-of-image marker)".into(),
            ));
        }
        match decode_jpeg(bytes, limits) {
            Ok(rgb) => {
                let mut image = DynamicImage::ImageRgb8(rgb);
                let orientation = info
                    .exif
                    .and_then(image::metadata::Orientation::from_exif_chunk)
                    .unwrap_or(image::metadata::Orientation::NoTransforms);
                image.apply_orientation(orientation);
                return Ok(image.to_rgb8());
            }
            Err(e @ DecodeError::Corrupt(_)) => {
                // a JPEG flavour libjpeg-turbo refuses: let `image` try before giving up
                if let Ok(rgb) = decode_with_image(bytes, format, limits) {
                    return Ok(rgb);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    if format == ImageFormat::Png
        && let Some(header) = bytes.get(12..24).filter(|h| h.starts_with(b"IHDR"))
    {
        // refuse an oversized picture from its header, before a decoder reads any further
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
        check_size(be(&header[4..8]), be(&header[8..12]), limits)?;
    }
    decode_with_image(bytes, format, limits)
}

fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
) -> Result<RgbImage, DecodeError> {
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    lim.max_alloc = Some(limits.max_pixels * 8);
    decoder
        .set_limits(lim)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

/// What [`jpeg_markers`] found in a JPEG stream.
struct JpegMarkers<'a> {
    /// The stream reaches its end-of-image marker.
    complete: bool,
    /// The EXIF block (TIFF header onwards) of the first `Exif` APP1 segment.
    exif: Option<&'a [u8]>,
}

/// Walks a JPEG's marker segments and entropy-coded scans (EXIF thumbnails live inside APP1
/// segments and are skipped whole).
fn jpeg_markers(bytes: &[u8]) -> JpegMarkers<'_> {
    let mut found = JpegMarkers {
        complete: false,
        exif: None,
    };
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return found;
    }
    let mut i = 2;
    loop {
        // next marker: 0xFF (fill bytes allowed) then the code
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&code) = bytes.get(i) else {
            return found;
        };
        i += 1;
        match code {
            0xD9 => {
                found.complete = true;
                return found;
            }
            // markers without a length
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        else {
            return found;
        };
        let Some(segment) = bytes.get(i + 2..i + len.max(2)) else {
            return found;
        };
        if code == 0xE1 && found.exif.is_none() {
            found.exif = segment.strip_prefix(b"Exif\0\0");
        }
        i += len;
        if code == 0xDA {
            // entropy-coded data: runs until a marker other than a stuffed 0xFF00 or a restart
            while i + 1 < bytes.len() {
                if bytes[i] == 0xFF
                    && bytes[i + 1] != 0x00
                    && !(0xD0..=0xD7).contains(&bytes[i + 1])
                {
                    break;
                }
                i += 1;
            }
            if i + 1 >= bytes.len() {
                return found;
            }
        }
    }
}

fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<RgbImage, DecodeError> {
    let corrupt = |e: turbojpeg::Error| DecodeError::Corrupt(e.to_string());
    let mut d = turbojpeg::Decompressor::new().map_err(corrupt)?;
    let header = d.read_header(bytes).map_err(corrupt)?;
    check_size(header.width as u64, header.height as u64, limits)?;
    // libjpeg-turbo will not turn CMYK / YCCK into RGB itself: take CMYK and convert
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let (format, channels) = if cmyk {
        (turbojpeg::PixelFormat::CMYK, 4)
    } else {
        (turbojpeg::PixelFormat::RGB, 3)
    };
    let pitch = header.width * channels;
    let mut pixels = vec![0u8; pitch * header.height];
    let out = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format,
    };
    d.decompress(bytes, out).map_err(corrupt)?;
    if cmyk {
        pixels = pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - p[3] as u32;
                [0, 1, 2].map(|i| ((255 - p[i] as u32) * k / 255) as u8)
            })
            .collect();
    }
    RgbImage::from_raw(header.width as u32, header.height as u32, pixels)
        .ok_or_else(|| DecodeError::Corrupt("buffer size".into()))
}

/// A photo for the chain: a file, an encoded file in memory, or decoded pixels. `name` is what
/// results report as its `image`.
#[derive(Clone, Copy, Debug)]
pub enum Photo<'a> {
    Path(&'a Path),
    Bytes { name: &'a Path, bytes: &'a [u8] },
    Pixels { name: &'a Path, image: &'a RgbImage },
}

impl Photo<'_> {
    /// The name the result carries.
    pub fn name(&self) -> &Path {
        match self {
            Photo::Path(p) => p,
            Photo::Bytes { name, .. } | Photo::Pixels { name, .. } => name,
        }
    }

    /// The photo's pixels, decoded within [`Limits::default`].
    pub fn decode(&self) -> Result<Cow<'_, RgbImage>, DecodeError> {
        let limits = Limits::default();
        Ok(match self {
            Photo::Path(p) => Cow::Owned(decode_file(p, &limits)?),
            Photo::Bytes { bytes, .. } => Cow::Owned(decode_bytes(bytes, &limits)?),
            Photo::Pixels { image, .. } => Cow::Borrowed(*image),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_jpeg() -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/fairface/male");
        let files = crate::fsutil::files_with_extension(&dir, "jpg").unwrap();
        std::fs::read(&files[0]).unwrap()
    }

    #[test]
    fn a_whole_jpeg_is_complete_and_a_cut_one_is_not() {
        let bytes = sample_jpeg();
        assert!(jpeg_markers(&bytes).complete);
        for cut in [bytes.len() / 4, bytes.len() / 2, bytes.len() - 2] {
            assert!(!jpeg_markers(&bytes[..cut]).complete, "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"trailer some cameras append");
        assert!(jpeg_markers(&trailing).complete);
    }

    #[test]
    fn a_truncated_jpeg_is_corrupt_not_grey() {
        let bytes = sample_jpeg();
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            decode_bytes(cut, &Limits::default()),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(decode_bytes(&bytes, &Limits::default()).is_ok());
    }
}
