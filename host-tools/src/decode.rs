//! Decoding photos into RGB8, safely.
//!
//! JPEG goes through libjpeg-turbo (the decoder dlib and Pillow use, so landmarks computed on our
//! pixels equal dlib's); PNG, WebP, BMP and GIF (first frame) through the `image` crate. EXIF
//! orientation is applied; grey, grey+alpha, RGBA, 16-bit and CMYK inputs become RGB8 (alpha is
//! dropped). Declared dimensions are checked against [`Limits`] before any pixel buffer is
//! allocated, so a hostile header cannot exhaust memory.

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
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_size(w as u64, h as u64, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = match format {
        ImageFormat::Jpeg => match decode_jpeg(bytes, limits) {
            Ok(rgb) => DynamicImage::ImageRgb8(rgb),
            // CMYK and other colour spaces libjpeg-turbo will not turn into RGB: `image` can.
            Err(_) => DynamicImage::from_decoder(decoder)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?,
        },
        _ => {
            let mut lim = image::Limits::default();
            lim.max_image_width = Some(limits.max_side);
            lim.max_image_height = Some(limits.max_side);
            lim.max_alloc = Some(limits.max_pixels * 8);
            decoder
                .set_limits(lim)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Corrupt(e.to_string()))?
        }
    };
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<RgbImage, DecodeError> {
    let corrupt = |e: turbojpeg::Error| DecodeError::Corrupt(e.to_string());
    let mut d = turbojpeg::Decompressor::new().map_err(corrupt)?;
    let header = d.read_header(bytes).map_err(corrupt)?;
    check_size(header.width as u64, header.height as u64, limits)?;
    let pitch = header.width * 3;
    let mut pixels = vec![0u8; pitch * header.height];
    let out = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format: turbojpeg::PixelFormat::RGB,
    };
    d.decompress(bytes, out).map_err(corrupt)?;
    RgbImage::from_raw(header.width as u32, header.height as u32, pixels)
        .ok_or_else(|| DecodeError::Corrupt("buffer size".into()))
}
