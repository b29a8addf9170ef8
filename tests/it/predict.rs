//! `facegender predict --json` on fixture photos: one face, two faces, no face, a corrupt file.

use std::fs;

use image::{Rgb, RgbImage};
use serde_json::Value;

use crate::support::{facegender, run, sample_photos, stderr, stdout};

#[test]
fn predict_json_reports_every_face_and_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let male = sample_photos("male", 4);
    let female = sample_photos("female", 4);
    // one face each, labels known
    fs::copy(&male[1], d.join("one-male.jpg")).unwrap();
    fs::copy(&female[1], d.join("one-female.jpg")).unwrap();
    // two faces: two photos side by side
    let (a, b) = (
        image::open(&male[2]).unwrap().to_rgb8(),
        image::open(&female[2]).unwrap().to_rgb8(),
    );
    let mut two = RgbImage::from_pixel(
        a.width() + b.width() + 40,
        a.height().max(b.height()),
        Rgb([200, 200, 200]),
    );
    image::imageops::replace(&mut two, &a, 0, 0);
    image::imageops::replace(&mut two, &b, (a.width() + 40) as i64, 0);
    two.save(d.join("two.png")).unwrap();
    // no face: a smooth gradient
    RgbImage::from_fn(200, 150, |x, y| Rgb([x as u8, y as u8, 128]))
        .save(d.join("none.png"))
        .unwrap();
    // corrupt
    let bytes = fs::read(&male[3]).unwrap();
    fs::write(d.join("corrupt.jpg"), &bytes[..bytes.len() / 4]).unwrap();

    let mut c = facegender();
    c.args(["predict", "-q", "--json"])
        .arg(d)
        .arg("--annotate")
        .arg(d.join("annotated"));
    let o = run(c);
    assert_eq!(
        o.status.code(),
        Some(3),
        "one input is corrupt: exit 3\n{}",
        stderr(&o)
    );
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert_eq!(lines.len(), 5);
    let by = |name: &str| {
        lines
            .iter()
            .find(|l| l["image"].as_str().unwrap().ends_with(name))
            .unwrap()
    };
    for (name, label) in [("one-male.jpg", "male"), ("one-female.jpg", "female")] {
        let r = by(name);
        assert_eq!(r["status"], "ok");
        let faces = r["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{name}");
        let f = &faces[0];
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
        assert!(f["score"].as_f64().unwrap() > 0.5);
        assert_eq!(f["status"], "ok");
        assert_eq!(f["label"], label, "{name}: {f}");
        assert!(f["probability"].as_f64().unwrap() >= 0.6);
        assert_eq!(f["logits"].as_array().unwrap().len(), 2);
    }
    let two = by("two.png");
    assert_eq!(two["faces"].as_array().unwrap().len(), 2, "{two}");
    let xs: Vec<f64> = two["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["box"][0].as_f64().unwrap())
        .collect();
    assert!(
        xs.iter().any(|&x| x < 100.0) && xs.iter().any(|&x| x > 200.0),
        "one face per side: {xs:?}"
    );
    assert_eq!(by("none.png")["status"], "no_face");
    assert_eq!(by("none.png")["faces"].as_array().unwrap().len(), 0);
    assert_eq!(by("corrupt.jpg")["status"], "unreadable");
    assert!(
        by("corrupt.jpg")["error"]
            .as_str()
            .unwrap()
            .contains("corrupt")
    );
    assert!(d.join("annotated/two.png").exists());
}

#[test]
fn predict_without_inputs_is_a_usage_error() {
    let mut c = facegender();
    c.arg("predict");
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
}

/// The face's `probability` is the top class's softmax probability over `logits`.
fn assert_top_probability(face: &Value, logits: &[f32]) {
    let best = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|x| (x - best).exp()).sum();
    let prob = face["probability"].as_f64().unwrap() as f32;
    assert!((prob - 1.0 / sum).abs() < 1e-5, "{prob} vs {}", 1.0 / sum);
}

#[test]
fn mirroring_averages_the_crop_and_its_mirror_image() {
    let photos: Vec<_> = sample_photos("male", 2)
        .into_iter()
        .chain(sample_photos("female", 2))
        .collect();
    let student = crate::support::root().join("models/gender");
    let faces = |extra: &[&str]| -> Vec<Value> {
        let mut c = facegender();
        c.args([
            "predict",
            "-q",
            "--json",
            "--min-probability",
            "0",
            "--model",
        ])
        .arg(&student)
        .args(extra)
        .args(&photos);
        let o = run(c);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["faces"][0].clone())
            .collect()
    };
    let (plain, mirrored) = (faces(&[]), faces(&["--mirror"]));
    let info: Value = serde_json::from_slice(
        &fs::read(crate::support::root().join("models/gender/model.json")).unwrap(),
    )
    .unwrap();
    let (scale, zp) = (
        info["logits"]["scale"].as_f64().unwrap() as f32,
        info["logits"]["zero_point"].as_i64().unwrap() as f32,
    );
    assert_eq!(plain.len(), 4);
    for (p, m) in plain.iter().zip(&mirrored) {
        let l = |v: &Value| -> Vec<f32> {
            v["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as f32)
                .collect()
        };
        let (lp, lm) = (l(p), l(m));
        // the first pass is the plain run's; the second is the mirror image's
        assert_eq!(lm.len(), 2 * lp.len(), "{m}");
        assert_eq!(lm[..lp.len()], lp[..]);
        // the probability is the softmax of the two passes' mean dequantised logits
        let mean: Vec<f32> = (0..lp.len())
            .map(|k| ((lm[k] - zp) * scale + (lm[k + lp.len()] - zp) * scale) / 2.0)
            .collect();
        assert_top_probability(m, &mean);
    }

    // The host model (predict's default) combines the head's logits with that same mean.
    let host: Value = serde_json::from_slice(
        &fs::read(crate::support::root().join("models/gender-host/host.json")).unwrap(),
    )
    .unwrap();
    let (wh, ws) = (
        host["weights"]["head"].as_f64().unwrap() as f32,
        host["weights"]["student"].as_f64().unwrap() as f32,
    );
    let mut c = facegender();
    c.args([
        "predict",
        "-q",
        "--json",
        "--min-probability",
        "0",
        "--mirror",
    ])
    .args(&photos);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    for (line, m) in stdout(&o).lines().zip(&mirrored) {
        let f = &serde_json::from_str::<Value>(line).unwrap()["faces"][0];
        assert_eq!(
            f["logits"], m["logits"],
            "the student's passes are the same"
        );
        let floats = |v: &Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let (head, combined) = (floats(&f["head_logits"]), floats(&f["combined_logits"]));
        let l: Vec<f32> = floats(&f["logits"]);
        for k in 0..2 {
            let mean = ((l[k] - zp) * scale + (l[k + 2] - zp) * scale) / 2.0;
            assert!(
                (combined[k] - (wh * head[k] + ws * mean)).abs() < 1e-4,
                "{f}"
            );
        }
        assert_top_probability(f, &combined);
    }
}

#[test]
fn mirroring_is_refused_on_the_device_chain() {
    let mut c = facegender();
    c.args(["predict", "--mirror", "--device-chain"])
        .args(sample_photos("male", 1));
    let o = run(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
