//! dlib's face-recognition ResNet in Rust against dlib 20.0.1's own output on 100 FairFace photos
//! (`../shared/reference/dlib-resnet/`): the chip from dlib's 68 landmarks, the descriptor of
//! dlib's chip, and the descriptor from the photo.

use facegender_core::image::RgbView;
use facegender_descriptor::{DESCRIPTOR_LEN, FaceNet, MODEL_FILE, face_chip};
use facegender_pipeline::decode::{Limits, decode_file};
use serde_json::Value;

use crate::support::{root, shared};

fn reference() -> Value {
    let dir = shared().join("reference/dlib-resnet");
    let text =
        std::fs::read_to_string(dir.join("fairface-train-100.json")).expect("reference JSON");
    serde_json::from_str(&text).expect("reference JSON parses")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn points(v: &Value) -> Vec<[f64; 2]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn net() -> FaceNet {
    FaceNet::load(&root().join("models/dlib-resnet").join(MODEL_FILE)).expect("run scripts/setup")
}

#[test]
fn chips_and_descriptors_equal_dlibs() {
    let r = reference();
    let net = net();
    let dir = shared().join("reference/dlib-resnet");
    let faces = r["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 100);
    let (mut chip_px_differ, mut worst_chip, mut worst_photo) = (0usize, 0f32, 0f32);
    let (mut byte_sum, mut luma_sum, mut luma_max) = (0u64, 0f64, 0f64);
    for f in faces {
        let photo = shared()
            .join("data/fairface-train")
            .join(f["photo"].as_str().unwrap());
        let img = decode_file(&photo, &Limits::default()).unwrap();
        let view =
            RgbView::packed(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let want_chip = image::open(dir.join(f["chip"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();

        let chip = face_chip(&view, &points(&f["landmarks68"])).unwrap();
        for (a, b) in chip.chunks_exact(3).zip(want_chip.as_raw().chunks_exact(3)) {
            let luma = |p: &[u8]| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            let dy = (luma(a) - luma(b)).abs();
            luma_sum += dy;
            luma_max = luma_max.max(dy);
            for k in 0..3 {
                byte_sum += (a[k] as i64 - b[k] as i64).unsigned_abs();
            }
            chip_px_differ += usize::from(a != b);
        }
        let d = net.describe_chip(want_chip.as_raw()).unwrap();
        assert_eq!(d.len(), DESCRIPTOR_LEN);
        worst_chip = worst_chip.max(max_diff(&d, &floats(&f["descriptor_from_chip"])));
        let (_, d68) = net.describe(&view, &points(&f["landmarks68"])).unwrap();
        worst_photo = worst_photo.max(max_diff(&d68, &floats(&f["descriptor_68"])));
    }
    let px = (100 * 150 * 150) as f64;
    let (byte_mean, luma_mean) = (byte_sum as f64 / (3.0 * px), luma_sum / px);
    eprintln!(
        "chips: {chip_px_differ} of {px} pixels differ; mean |diff| per byte {byte_mean:.3}, luma mean |diff| {luma_mean:.3}, max {luma_max:.2}; \
         descriptor max |diff|: from dlib's chip {worst_chip:.2e}, from the photo {worst_photo:.2e}"
    );
    // The network is dlib's: from dlib's own chip, the descriptor agrees to float rounding.
    assert!(
        worst_chip <= 1e-4,
        "descriptor from dlib's chip differs by {worst_chip}"
    );
    // The chip's geometry is dlib's; the pixels differ only through the JPEG decoders' chroma
    // (dlib 20.0.1's wheel decodes 4:2:0 chroma with IJG libjpeg's DCT-scaled upsampling, we with
    // libjpeg-turbo's): luma agrees to about the rounding of the three channels (0.12 on
    // average). Shifting the chip a quarter pixel raises the mean byte difference on the first
    // face from 0.21 to 0.93; that is what these bounds catch.
    assert!(
        luma_mean < 0.2,
        "chip luma differs from dlib's by {luma_mean} on average"
    );
    assert!(
        byte_mean < 0.4,
        "chip bytes differ from dlib's by {byte_mean} on average"
    );
    // What the decoders' chroma difference leaves in the descriptor from the photo.
    assert!(
        worst_photo <= 1e-2,
        "descriptor from the photo differs by {worst_photo}"
    );
}

#[test]
fn a_damaged_model_file_is_an_error_not_a_panic() {
    let bytes = std::fs::read(root().join("models/dlib-resnet").join(MODEL_FILE)).unwrap();
    // Cut short anywhere, flip a byte in the headers, or give another dlib file: always an error.
    for cut in [
        0,
        1,
        10,
        100,
        1000,
        100_000,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        assert!(FaceNet::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for at in [0, 3, 5, 29, 60, 300] {
        let mut b = bytes.clone();
        b[at] ^= 0x5a;
        assert!(FaceNet::from_bytes(&b).is_err(), "flipped byte {at}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let e = FaceNet::from_bytes(&longer).err().expect("trailing byte");
    assert!(e.to_string().contains("trailing bytes"), "{e}");
    let landmarks = std::fs::read("/usr/share/dlib/shape_predictor_68_face_landmarks.dat");
    if let Ok(other) = landmarks {
        let e = FaceNet::from_bytes(&other)
            .err()
            .expect("a shape predictor is not a ResNet");
        assert!(
            e.to_string()
                .starts_with("dlib face-recognition network, byte "),
            "{e}"
        );
    }
}

#[test]
fn a_face_three_times_larger_gets_nearly_the_same_descriptor() {
    // dlib samples faces over twice the chip's size from its image pyramid: a photo scaled up
    // 3x (landmarks with it) takes that path and must land close to the original's descriptor.
    let r = reference();
    let net = net();
    let mut worst = 0f32;
    for f in r["faces"].as_array().unwrap().iter().take(10) {
        let photo = shared()
            .join("data/fairface-train")
            .join(f["photo"].as_str().unwrap());
        let img = decode_file(&photo, &Limits::default()).unwrap();
        let big = image::imageops::resize(
            &img,
            img.width() * 3,
            img.height() * 3,
            image::imageops::FilterType::Triangle,
        );
        let view =
            RgbView::packed(big.as_raw(), big.width() as usize, big.height() as usize).unwrap();
        let landmarks: Vec<[f64; 2]> = points(&f["landmarks68"])
            .iter()
            .map(|p| [3.0 * p[0] + 1.0, 3.0 * p[1] + 1.0])
            .collect();
        let (_, d) = net.describe(&view, &landmarks).unwrap();
        let want = floats(&f["descriptor_68"]);
        let dist = d
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt();
        worst = worst.max(dist);
    }
    eprintln!("3x photos: largest descriptor distance to dlib's at 1x: {worst:.4}");
    // dlib's own threshold for "same person" is 0.6; the same face resampled sits far below it
    // (0.106 measured: the 3x photo is a smoothed copy, not the original pixels)
    assert!(worst < 0.15, "descriptor distance {worst}");
}

#[test]
fn the_plain_loop_engine_agrees_with_tract_and_dlib() {
    let r = reference();
    let net = net();
    let dir = shared().join("reference/dlib-resnet");
    let mut worst = 0f32;
    for f in r["faces"].as_array().unwrap().iter().take(3) {
        let chip = image::open(dir.join(f["chip"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let plain =
            facegender_descriptor::reference::describe(&net.network, chip.as_raw()).unwrap();
        worst = worst.max(max_diff(&plain, &floats(&f["descriptor_from_chip"])));
        worst = worst.max(max_diff(&plain, &net.describe_chip(chip.as_raw()).unwrap()));
    }
    assert!(worst <= 1e-4, "plain loops differ by {worst}");
}
