//! Camera frames to detector input, in integer arithmetic so the device and its host mirror
//! produce the same bytes: letterbox (aspect kept, centred, mid-grey padding) and area-average
//! resampling, straight into the int8 tensor the quantised detector takes (`pixel - 128`).

use crate::image::RgbView;

/// Where the frame sits inside the square detector input (all in detector pixels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Letterbox {
    /// Detector input side.
    pub size: u32,
    /// Size of the frame once scaled, and its offset.
    pub width: u32,
    pub height: u32,
    pub pad_x: u32,
    pub pad_y: u32,
    /// The frame's size.
    pub frame_width: u32,
    pub frame_height: u32,
}

impl Letterbox {
    /// The placement of a `frame_width` x `frame_height` frame in a `size` x `size` input.
    pub fn new(frame_width: u32, frame_height: u32, size: u32) -> Self {
        Self::fit(frame_width, frame_height, size, size)
    }

    /// As [`Letterbox::new`], with the frame's long side scaled to `inner` (at most `size`)
    /// instead of `size`: a margin of mid-grey all round, which helps the detector with faces
    /// that touch the frame's edges.
    pub fn fit(frame_width: u32, frame_height: u32, size: u32, inner: u32) -> Self {
        let long = frame_width.max(frame_height).max(1);
        let inner = inner.clamp(1, size.max(1));
        // round(frame * inner / long), in integers
        let scaled = |v: u32| {
            ((2 * v as u64 * inner as u64 + long as u64) / (2 * long as u64)).clamp(1, inner as u64)
                as u32
        };
        let (width, height) = (scaled(frame_width), scaled(frame_height));
        Self {
            size,
            width,
            height,
            pad_x: (size - width) / 2,
            pad_y: (size - height) / 2,
            frame_width,
            frame_height,
        }
    }

    /// Normalised detector coordinates (0..1 across the input) to frame pixels.
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        let sx = self.frame_width as f32 / self.width as f32;
        let sy = self.frame_height as f32 / self.height as f32;
        (
            (x * self.size as f32 - self.pad_x as f32) * sx,
            (y * self.size as f32 - self.pad_y as f32) * sy,
        )
    }
}

/// Why a frame could not be converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// `out` is not `size * size * 3` values.
    OutputLength,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("detector input buffer is not size x size x 3")
    }
}

/// Letterboxes `frame` into `out` (`size * size * 3` int8, HWC, `pixel - 128`; padding 0, i.e.
/// mid-grey). Each input pixel averages the block of frame pixels it covers (nearest pixel when
/// enlarging), rounding half up.
pub fn letterbox(frame: &RgbView<'_>, size: u32, out: &mut [i8]) -> Result<Letterbox, FrameError> {
    letterbox_fit(frame, size, size, out)
}

/// [`letterbox`] with the frame's long side scaled to `inner` pixels (see [`Letterbox::fit`]).
pub fn letterbox_fit(
    frame: &RgbView<'_>,
    size: u32,
    inner: u32,
    out: &mut [i8],
) -> Result<Letterbox, FrameError> {
    let n = size as usize;
    if out.len() != n * n * 3 {
        return Err(FrameError::OutputLength);
    }
    let (fw, fh) = (frame.width() as u32, frame.height() as u32);
    let lb = Letterbox::fit(fw, fh, size, inner);
    out.fill(0);
    let span = |i: u32, scaled: u32, full: u32| -> (u32, u32) {
        let a = (i as u64 * full as u64 / scaled as u64) as u32;
        let b = (((i + 1) as u64 * full as u64 / scaled as u64) as u32)
            .max(a + 1)
            .min(full);
        (a, b)
    };
    for v in 0..lb.height {
        let (y0, y1) = span(v, lb.height, fh);
        for u in 0..lb.width {
            let (x0, x1) = span(u, lb.width, fw);
            let mut acc = [0u32; 3];
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = frame.get(x as usize, y as usize);
                    for k in 0..3 {
                        acc[k] += p[k] as u32;
                    }
                }
            }
            let count = (y1 - y0) * (x1 - x0);
            let at = (((v + lb.pad_y) * size + u + lb.pad_x) * 3) as usize;
            for k in 0..3 {
                let mean = (acc[k] + count / 2) / count;
                out[at + k] = (mean as i32 - 128) as i8;
            }
        }
    }
    Ok(lb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_margin_shrinks_the_frame_about_the_centre() {
        let lb = Letterbox::fit(200, 200, 128, 80);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (80, 80, 24, 24));
        let (x, y) = lb.to_frame(0.5, 0.5);
        assert!((x - 100.0).abs() < 1e-3 && (y - 100.0).abs() < 1e-3);
        assert_eq!(
            Letterbox::fit(200, 100, 128, 500),
            Letterbox::new(200, 100, 128)
        );
    }

    #[test]
    fn a_wide_frame_is_centred_vertically() {
        let lb = Letterbox::new(320, 240, 128);
        assert_eq!((lb.width, lb.height, lb.pad_x, lb.pad_y), (128, 96, 0, 16));
        let (x, y) = lb.to_frame(0.5, 0.5);
        assert!((x - 160.0).abs() < 1e-3 && (y - 120.0).abs() < 1e-3);
    }

    #[test]
    fn uniform_frames_give_uniform_input_and_grey_padding() {
        let px = std::vec![200u8; 40 * 30 * 3];
        let view = RgbView::packed(&px, 40, 30).unwrap();
        let mut out = std::vec![0i8; 16 * 16 * 3];
        let lb = letterbox(&view, 16, &mut out).unwrap();
        assert_eq!((lb.width, lb.height), (16, 12));
        for y in 0..16 {
            for x in 0..16 {
                let inside = y >= lb.pad_y && y < lb.pad_y + lb.height;
                let v = out[((y * 16 + x) * 3) as usize];
                assert_eq!(v, if inside { 72 } else { 0 }, "({x}, {y})");
            }
        }
        assert_eq!(
            letterbox(&view, 15, &mut out),
            Err(FrameError::OutputLength)
        );
    }

    #[test]
    fn shrinking_averages_blocks() {
        // a 2x1 frame of black and white pixels into a 1x1 input: their mean
        let px = [0u8, 0, 0, 255, 255, 255];
        let view = RgbView::packed(&px, 2, 1).unwrap();
        let mut out = [0i8; 3];
        letterbox(&view, 1, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0]); // (0 + 255 + 1) / 2 = 128 -> 0
    }
}
