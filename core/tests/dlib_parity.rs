//! Landmarks and crops against what dlib 19.24 itself produced on FairFace photos
//! (`../shared/reference/dlib-68`), using dlib's own model file from Debian's `libdlib-data`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegender_core::align::{self, INNER_EYES_AND_BOTTOM_LIP};
use facegender_core::ert::{Point, Rect, ShapePredictor, dlib};
use facegender_core::image::{GrayView, RgbView, rgb_to_intensity};
use serde_json::Value;

const DLIB_MODEL: &str = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The converted model bytes, built once per test binary from dlib's file.
fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let raw = std::fs::read(DLIB_MODEL).unwrap_or_else(|e| {
            panic!("{DLIB_MODEL}: {e}; run scripts/setup to install libdlib-data")
        });
        dlib::parse(&raw)
            .expect("dlib model parses")
            .to_bytes()
            .expect("converts")
    })
}

fn reference(name: &str) -> Value {
    let p = shared().join("reference/dlib-68").join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

struct Face {
    image: PathBuf,
    rect: Rect,
    landmarks: Vec<Point>,
}

fn faces(json: &Value, image_key: &str) -> Vec<Face> {
    json["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|im| !im["faces"].as_array().unwrap().is_empty())
        .map(|im| {
            // dlib's "largest face": the first with the largest (inclusive) area
            let faces = im["faces"].as_array().unwrap();
            let area = |f: &Value| {
                (f["right"].as_i64().unwrap() - f["left"].as_i64().unwrap() + 1)
                    * (f["bottom"].as_i64().unwrap() - f["top"].as_i64().unwrap() + 1)
            };
            let best = faces
                .iter()
                .fold(&faces[0], |b, f| if area(f) > area(b) { f } else { b });
            let g = |k: &str| best[k].as_i64().unwrap() as i32;
            // paths in the reference files are relative to shared/
            let image = shared().join(im[image_key].as_str().unwrap());
            Face {
                image,
                rect: Rect {
                    left: g("left"),
                    top: g("top"),
                    right: g("right"),
                    bottom: g("bottom"),
                },
                landmarks: im["largest_face_landmarks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| Point {
                        x: p[0].as_i64().unwrap() as i32,
                        y: p[1].as_i64().unwrap() as i32,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// JPEG through libjpeg-turbo (what dlib and Pillow use), everything else through `image`.
fn rgb(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "jpg") {
        let img = turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGB).unwrap();
        assert_eq!(img.pitch, 3 * img.width);
        return image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels).unwrap();
    }
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

fn predict(sp: &ShapePredictor, img: &image::RgbImage, rect: Rect) -> Vec<Point> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let view = RgbView::packed(img.as_raw(), w, h).unwrap();
    let mut grey = vec![0u8; w * h];
    assert!(rgb_to_intensity(&view, &mut grey));
    let grey = GrayView::new(&grey, w, h, w).unwrap();
    let mut out = vec![Point::default(); 68];
    sp.predict(&grey, rect, &mut out).unwrap();
    out
}

/// Predicts the faces of reference file `name` (images under `image_key`), which must hold
/// `count` faces: (points equal, points total, largest distance in pixels).
fn compare(name: &str, image_key: &str, count: usize) -> (usize, usize, f64) {
    let sp = ShapePredictor::parse(model_bytes()).unwrap();
    let faces = faces(&reference(name), image_key);
    assert_eq!(faces.len(), count);
    let (mut equal, mut total, mut worst) = (0, 0, 0f64);
    for f in &faces {
        let got = predict(&sp, &rgb(&f.image), f.rect);
        for (g, w) in got.iter().zip(&f.landmarks) {
            total += 1;
            equal += (g == w) as usize;
            worst = worst.max((((g.x - w.x).pow(2) + (g.y - w.y).pow(2)) as f64).sqrt());
        }
    }
    (equal, total, worst)
}

#[test]
fn landmarks_equal_dlib_on_the_pixels_dlib_decoded() {
    let (equal, total, worst) = compare("decoded-200.json", "decoded_png", 200);
    // Same pixels in, so the same landmarks out, every one.
    assert_eq!(
        (equal, worst),
        (total, 0.0),
        "{equal}/{total} equal, worst {worst} px"
    );
}

#[test]
fn landmarks_match_dlib_on_all_748_reference_faces() {
    let (equal, total, worst) = compare("fairface-train-2000.json", "image", 748);
    let share = equal as f64 / total as f64;
    eprintln!(
        "landmark parity: {equal}/{total} points equal ({:.4}%), worst {worst:.3} px",
        100.0 * share
    );
    assert!(share >= 0.995, "{equal}/{total} equal");
    assert!(worst <= 1.0 + 1e-9, "a point is {worst} px from dlib's");
}

#[test]
fn crops_equal_dlib_openface_crops() {
    let json = reference("fairface-train-300.json");
    let mut checked = 0;
    for im in json["images"].as_array().unwrap() {
        let (Some(lm), Some(name)) = (
            im["largest_face_landmarks"].as_array(),
            im["aligned_crop"].as_str(),
        ) else {
            continue;
        };
        let crop_path = shared().join(name);
        let want = rgb(&crop_path);
        let img = rgb(&shared().join(im["image"].as_str().unwrap()));
        let pts: Vec<[f64; 2]> = lm
            .iter()
            .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
            .collect();
        let a = align::three_point(&pts, INNER_EYES_AND_BOTTOM_LIP, 112, 1.0).unwrap();
        let view =
            RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let mut got = vec![0u8; 112 * 112 * 3];
        align::warp_rgb(&view, &a, 112, &mut got).unwrap();
        for ch in 0..3 {
            let mad: f64 = got
                .iter()
                .zip(want.as_raw())
                .skip(ch)
                .step_by(3)
                .map(|(&g, &w)| (g as f64 - w as f64).abs())
                .sum::<f64>()
                / (112.0 * 112.0);
            assert!(mad <= 1.0, "{name} channel {ch}: mean abs diff {mad}");
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} reference crops found");
}
