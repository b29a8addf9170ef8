//! Contact sheets of annotated photos: thumbnails on a grid, each framed green when its label is
//! right, red when wrong, grey when there is nothing to score, with a caption under it.

use image::{Rgb, RgbImage, imageops};

/// One thumbnail of a sheet.
pub struct Cell {
    pub image: RgbImage,
    pub caption: String,
    /// Whether the prediction was right; `None`: not scored.
    pub right: Option<bool>,
}

const FRAME: u32 = 3;
const CAPTION: u32 = 16;
const GAP: u32 = 4;

/// The cells on a grid of `cols` columns, each photo fitted into `side` x `side` pixels.
pub fn grid(cells: &[Cell], cols: usize, side: u32) -> crate::Result<RgbImage> {
    use plotters::prelude::*;
    let cols = cols.clamp(1, cells.len().max(1)) as u32;
    let rows = cells.len().div_ceil(cols as usize).max(1) as u32;
    let (cw, ch) = (side + 2 * FRAME, side + 2 * FRAME + CAPTION);
    let (w, h) = (GAP + cols * (cw + GAP), GAP + rows * (ch + GAP));
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let origin = |i: usize| {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        (GAP + c * (cw + GAP), GAP + r * (ch + GAP))
    };
    for (i, cell) in cells.iter().enumerate() {
        let (x, y) = origin(i);
        let frame = match cell.right {
            Some(true) => Rgb([40, 170, 70]),
            Some(false) => Rgb([220, 40, 40]),
            None => Rgb([170, 170, 170]),
        };
        imageops::replace(
            &mut sheet,
            &RgbImage::from_pixel(side + 2 * FRAME, side + 2 * FRAME, frame),
            x as i64,
            y as i64,
        );
        let (iw, ih) = cell.image.dimensions();
        let scale = side as f64 / iw.max(ih).max(1) as f64;
        let (tw, th) = (
            ((iw as f64 * scale).round() as u32).clamp(1, side),
            ((ih as f64 * scale).round() as u32).clamp(1, side),
        );
        let thumb = imageops::resize(&cell.image, tw, th, imageops::FilterType::Triangle);
        let mut square = RgbImage::from_pixel(side, side, Rgb([255, 255, 255]));
        imageops::replace(
            &mut square,
            &thumb,
            ((side - tw) / 2) as i64,
            ((side - th) / 2) as i64,
        );
        imageops::replace(&mut sheet, &square, (x + FRAME) as i64, (y + FRAME) as i64);
    }
    let mut buf = sheet.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for (i, cell) in cells.iter().enumerate() {
            let (x, y) = origin(i);
            root.draw(&Text::new(
                cell.caption.clone(),
                (x as i32 + 2, (y + side + 2 * FRAME + 2) as i32),
                ("sans-serif", 12).into_font().color(&BLACK),
            ))
            .map_err(|e| crate::invalid!("{e:?}"))?;
        }
        root.present().map_err(|e| crate::invalid!("{e:?}"))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| crate::invalid!("buffer size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_has_one_framed_cell_per_photo_in_reading_order() {
        let cells: Vec<Cell> = [Some(true), Some(false), None]
            .into_iter()
            .map(|right| Cell {
                image: RgbImage::from_pixel(30, 20, Rgb([0, 0, 0])),
                caption: String::new(),
                right,
            })
            .collect();
        let s = grid(&cells, 2, 40).unwrap();
        let (cw, ch) = (40 + 2 * FRAME, 40 + 2 * FRAME + CAPTION);
        assert_eq!(s.dimensions(), (GAP + 2 * (cw + GAP), GAP + 2 * (ch + GAP)));
        // the frames: green, red, then grey on the second row
        assert_eq!(s.get_pixel(GAP, GAP), &Rgb([40, 170, 70]));
        assert_eq!(s.get_pixel(2 * GAP + cw, GAP), &Rgb([220, 40, 40]));
        assert_eq!(s.get_pixel(GAP, 2 * GAP + ch), &Rgb([170, 170, 170]));
        // a 30x20 photo fills the width of its 40 px square and is centred in height
        let (x0, y0) = (GAP + FRAME, GAP + FRAME);
        assert_eq!(s.get_pixel(x0 + 20, y0 + 20), &Rgb([0, 0, 0]));
        assert_eq!(s.get_pixel(x0 + 20, y0 + 2), &Rgb([255, 255, 255]));
    }
}
