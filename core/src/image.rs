//! Borrowed image views with their sizes checked once.

/// Why an image view could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ImageError {
    /// Width or height is zero.
    Empty,
    /// The stride is smaller than a row.
    Stride,
    /// The buffer is shorter than `height` rows of `stride` (the last row may be short).
    BufferTooShort { needed: usize, given: usize },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "image has no pixels"),
            Self::Stride => write!(f, "stride is smaller than a row"),
            Self::BufferTooShort { needed, given } => {
                write!(f, "image buffer has {given} bytes, {needed} needed")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ImageError {}

fn check(
    width: usize,
    height: usize,
    stride: usize,
    row: usize,
    len: usize,
) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Empty);
    }
    if stride < row {
        return Err(ImageError::Stride);
    }
    let needed = (height - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row))
        .ok_or(ImageError::BufferTooShort {
            needed: usize::MAX,
            given: len,
        })?;
    if len < needed {
        return Err(ImageError::BufferTooShort { needed, given: len });
    }
    Ok(())
}

/// An 8-bit grey image: `height` rows of `stride` bytes, `width` of them used.
#[derive(Clone, Copy, Debug)]
pub struct GrayView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
}

impl<'a> GrayView<'a> {
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Self, ImageError> {
        check(width, height, stride, width, data.len())?;
        Ok(Self {
            data,
            width,
            height,
            stride,
        })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Pixel at (x, y); both must be inside the image.
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.stride + x]
    }
}

/// How an [`RgbView`] stores a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PixelFormat {
    /// Three bytes: red, green, blue.
    Rgb888,
    /// A little-endian u16: red in bits 11-15, green 5-10, blue 0-4 (common camera output).
    Rgb565,
}

/// A colour image: `height` rows of `stride` bytes (`3 * width` or `2 * width` of them used).
#[derive(Clone, Copy, Debug)]
pub struct RgbView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
}

impl<'a> RgbView<'a> {
    /// An RGB888 image (three bytes per pixel).
    pub fn new(data: &'a [u8], w: usize, h: usize, stride: usize) -> Result<Self, ImageError> {
        Self::with_format(data, w, h, stride, PixelFormat::Rgb888)
    }

    /// An RGB565 frame (two bytes per pixel, little-endian).
    pub fn rgb565(data: &'a [u8], w: usize, h: usize, stride: usize) -> Result<Self, ImageError> {
        Self::with_format(data, w, h, stride, PixelFormat::Rgb565)
    }

    fn with_format(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self, ImageError> {
        let bytes = match format {
            PixelFormat::Rgb888 => 3,
            PixelFormat::Rgb565 => 2,
        };
        let row = width.checked_mul(bytes).ok_or(ImageError::Stride)?;
        check(width, height, stride, row, data.len())?;
        Ok(Self {
            data,
            width,
            height,
            stride,
            format,
        })
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// A tightly packed image (`stride = 3 * width`).
    pub fn packed(data: &'a [u8], width: usize, height: usize) -> Result<Self, ImageError> {
        Self::new(data, width, height, width.saturating_mul(3))
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The `w` x `h` window whose top-left pixel is (x, y), or `None` where it leaves the image
    /// or is empty (dlib's `sub_image`).
    pub fn window(&self, x: usize, y: usize, w: usize, h: usize) -> Option<Self> {
        let fits =
            |at: usize, n: usize, of: usize| n > 0 && at.checked_add(n).is_some_and(|e| e <= of);
        if !fits(x, w, self.width) || !fits(y, h, self.height) {
            return None;
        }
        let bytes = match self.format {
            PixelFormat::Rgb888 => 3,
            PixelFormat::Rgb565 => 2,
        };
        let start = y * self.stride + x * bytes;
        let end = (y + h - 1) * self.stride + (x + w) * bytes;
        Some(Self {
            data: &self.data[start..end],
            width: w,
            height: h,
            stride: self.stride,
            format: self.format,
        })
    }

    /// Pixel at (x, y) as 8-bit RGB; both must be inside the image. RGB565 channels are widened
    /// by repeating their top bits (`r5 -> r5 << 3 | r5 >> 2`).
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        match self.format {
            PixelFormat::Rgb888 => {
                let i = y * self.stride + 3 * x;
                [self.data[i], self.data[i + 1], self.data[i + 2]]
            }
            PixelFormat::Rgb565 => {
                let i = y * self.stride + 2 * x;
                let v = u16::from_le_bytes([self.data[i], self.data[i + 1]]);
                let (r, g, b) = ((v >> 11) as u8, ((v >> 5) & 0x3f) as u8, (v & 0x1f) as u8);
                [r << 3 | r >> 2, g << 2 | g >> 4, b << 3 | b >> 2]
            }
        }
    }
}

/// dlib's intensity of an RGB pixel: `(r + g + b) / 3`, truncating (what its landmark model
/// was trained and evaluated on).
#[inline]
pub fn intensity(p: [u8; 3]) -> u8 {
    ((p[0] as u16 + p[1] as u16 + p[2] as u16) / 3) as u8
}

/// Fills `out` (`width * height` bytes, packed) with the dlib intensity of every pixel of `rgb`.
/// Returns `false` (and writes nothing) if `out` has the wrong length.
pub fn rgb_to_intensity(rgb: &RgbView<'_>, out: &mut [u8]) -> bool {
    if out.len() != rgb.width * rgb.height {
        return false;
    }
    for y in 0..rgb.height {
        for x in 0..rgb.width {
            out[y * rgb.width + x] = intensity(rgb.get(x, y));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb565_widens_channels() {
        // pure red, pure green, pure blue, white
        let px: [u16; 4] = [0xf800, 0x07e0, 0x001f, 0xffff];
        let bytes: std::vec::Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        let v = RgbView::rgb565(&bytes, 4, 1, 8).unwrap();
        assert_eq!(
            [v.get(0, 0), v.get(1, 0), v.get(2, 0), v.get(3, 0)],
            [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]
        );
    }

    #[test]
    fn short_buffers_and_bad_strides_are_errors() {
        assert_eq!(
            RgbView::packed(&[0; 5], 2, 1).err(),
            Some(ImageError::BufferTooShort {
                needed: 6,
                given: 5
            })
        );
        assert_eq!(
            RgbView::new(&[0; 12], 2, 2, 5).err(),
            Some(ImageError::Stride)
        );
        assert_eq!(
            GrayView::new(&[0; 4], 0, 4, 1).err(),
            Some(ImageError::Empty)
        );
        // the last row may be short of the stride
        assert!(GrayView::new(&[0; 7], 3, 2, 4).is_ok());
    }
}
