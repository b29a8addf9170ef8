//! `facegender preprocess` on real photos plus a corpus of bad inputs: every file gets the right
//! status, the batch completes, the good crops are written, and a second run resumes.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage};
use serde_json::Value;

use crate::support::{run_facegender, sample_photos, stderr, stdout};

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut v = Vec::new();
    img.write_to(&mut Cursor::new(&mut v), ImageFormat::Png)
        .unwrap();
    v
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut v = Vec::new();
    DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut Cursor::new(&mut v), ImageFormat::Jpeg)
        .unwrap();
    v
}

/// A JPEG carrying an EXIF orientation tag (APP1 segment right after SOI).
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // TIFF, little endian: header, IFD with one entry (0x0112 Orientation, SHORT, 1 value)
    let mut tiff = b"II*\x00\x08\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG header declaring a 100000 x 100000 image (the pixels never come).
fn huge_png() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    v
}

fn cmyk_jpeg(rgb: &RgbImage) -> Vec<u8> {
    let mut cmyk = Vec::with_capacity(rgb.len() / 3 * 4);
    for p in rgb.pixels() {
        cmyk.extend_from_slice(&[255 - p[0], 255 - p[1], 255 - p[2], 0]);
    }
    let img = turbojpeg::Image {
        pixels: cmyk.as_slice(),
        width: rgb.width() as usize,
        pitch: rgb.width() as usize * 4,
        height: rgb.height() as usize,
        format: turbojpeg::PixelFormat::CMYK,
    };
    turbojpeg::compress(img, 90, turbojpeg::Subsamp::None)
        .unwrap()
        .to_vec()
}

fn entries(report: &Value) -> Vec<&Value> {
    report["entries"].as_array().unwrap().iter().collect()
}

fn status_of<'a>(report: &'a Value, name: &str) -> &'a str {
    entries(report)
        .into_iter()
        .find(|e| e["path"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing from the report"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn bad_inputs_get_statuses_and_the_batch_completes_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    let photos = sample_photos("female", 4);
    let cls = input.join("female");
    fs::create_dir_all(&cls).unwrap();
    for p in &photos {
        fs::copy(p, cls.join(p.file_name().unwrap())).unwrap();
    }
    let face = image::open(&photos[0]).unwrap().to_rgb8();
    let good_jpeg = fs::read(&photos[0]).unwrap();
    fs::write(cls.join("empty.jpg"), b"").unwrap();
    fs::write(cls.join("truncated.jpg"), &good_jpeg[..good_jpeg.len() / 3]).unwrap();
    fs::write(cls.join("text.jpg"), b"this is not an image\n").unwrap();
    fs::write(
        cls.join("one-pixel.png"),
        png(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
            1,
            1,
            Rgb([9, 9, 9]),
        ))),
    )
    .unwrap();
    fs::write(cls.join("huge.png"), huge_png()).unwrap();
    let face16: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(face.width(), face.height(), |x, y| {
            Rgb(face.get_pixel(x, y).0.map(|v| v as u16 * 257))
        });
    fs::write(
        cls.join("sixteen-bit.png"),
        png(&DynamicImage::ImageRgb16(face16)),
    )
    .unwrap();
    fs::write(cls.join("cmyk.jpg"), cmyk_jpeg(&face)).unwrap();
    // stored turned 90 degrees anticlockwise; EXIF orientation 6 says "rotate 90 clockwise"
    let turned = image::imageops::rotate270(&face);
    fs::write(
        cls.join("exif-rotated.jpg"),
        with_exif_orientation(&jpeg(&turned), 6),
    )
    .unwrap();
    let preprocess = || {
        run_facegender(&[
            &"preprocess",
            &"-q",
            &"--input",
            &input,
            &"--output",
            &output,
        ])
    };
    let o = preprocess();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value =
        serde_json::from_slice(&fs::read(output.join("preprocess-report.json")).unwrap()).unwrap();
    for bad in ["empty.jpg", "truncated.jpg", "text.jpg", "huge.png"] {
        assert_eq!(status_of(&report, bad), "unreadable", "{bad}");
    }
    let reason = |name: &str| {
        entries(&report)
            .into_iter()
            .find(|e| e["path"] == name)
            .unwrap()["reason"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        reason("huge.png").starts_with("too_large"),
        "{}",
        reason("huge.png")
    );
    assert!(reason("empty.jpg").starts_with("empty_file"));
    assert!(reason("text.jpg").starts_with("not_an_image"));
    assert_eq!(status_of(&report, "one-pixel.png"), "no_face");
    for good in ["sixteen-bit.png", "cmyk.jpg", "exif-rotated.jpg"] {
        assert_eq!(status_of(&report, good), "ok", "{good}: {}", reason(good));
    }
    for p in &photos {
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(status_of(&report, name), "ok");
        let crop = output
            .join("female")
            .join(Path::new(name).with_extension("png"));
        assert_eq!(
            image::open(&crop).unwrap().to_rgb8().dimensions(),
            (112, 112)
        );
    }
    // the crop of the EXIF-rotated photo is the upright face: close to the plain photo's crop
    let a = image::open(output.join("female/exif-rotated.png"))
        .unwrap()
        .to_rgb8();
    let first = Path::new(photos[0].file_name().unwrap()).with_extension("png");
    let b = image::open(output.join("female").join(first))
        .unwrap()
        .to_rgb8();
    let mad = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64;
    assert!(
        mad < 12.0,
        "EXIF-rotated crop differs from the upright one by {mad}"
    );

    // Second run: nothing left to do, nothing rewritten.
    let before = fs::metadata(output.join("female/cmyk.png"))
        .unwrap()
        .modified()
        .unwrap();
    let o = preprocess();
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("(0 now, 12 from an earlier run)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        fs::metadata(output.join("female/cmyk.png"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
}

#[test]
fn missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (nope, out) = (dir.path().join("nope"), dir.path().join("out"));
    let o = run_facegender(&[&"preprocess", &"--input", &nope, &"--output", &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}
