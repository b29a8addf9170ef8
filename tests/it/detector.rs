//! The detector quantiser: BlazeFace's float ONNX to the core's int8 format, with its score heads
//! bias-corrected and its threshold calibrated, agrees with the float model.

use crate::support::{facegender, root, run, stderr, stdout};

fn eval(detector: &std::path::Path, photos: usize, json: &std::path::Path) -> serde_json::Value {
    let mut c = facegender();
    c.args(["eval-detector", "--input", "samples/fairface", "--limit"])
        .arg(photos.to_string())
        .arg("--detector")
        .arg(detector)
        .arg("--json")
        .arg(json);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[test]
fn a_freshly_quantised_detector_finds_the_float_models_faces() {
    let dir = tempfile::tempdir().unwrap();
    let det = dir.path().join("det");
    let mut c = facegender();
    c.args([
        "quantize-detector",
        "--calibration",
        "samples/fairface",
        "--images",
        "48",
    ])
    .arg("--out")
    .arg(&det);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("calibrated on 48 photos"),
        "{}",
        stdout(&o)
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(det.join("model.json")).unwrap()).unwrap();
    let t = info["threshold"].as_f64().unwrap();
    assert!((0.5..0.9).contains(&t), "calibrated threshold {t}");
    assert_eq!(
        info["score_bias_correction"][1].as_array().unwrap().len(),
        6
    );

    let r = eval(&det, 80, &dir.path().join("eval.json"));
    assert!(r["matched_share"].as_f64().unwrap() >= 0.95, "{r}");
    let gap =
        r["int8_face_found_rate"].as_f64().unwrap() - r["float_face_found_rate"].as_f64().unwrap();
    assert!(gap.abs() <= 0.05, "{r}");
}

#[test]
fn the_shipped_detector_matches_the_float_model_on_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    // all 300 bundled photos (the previous detector, without the score-head fixes, matched
    // 97.6 % of them)
    let r = eval(
        &root().join("models/blazeface-int8"),
        300,
        &dir.path().join("eval.json"),
    );
    assert_eq!(r["photos"], 300);
    assert!(r["matched_share"].as_f64().unwrap() >= 0.98, "{r}");
    let gap =
        r["int8_face_found_rate"].as_f64().unwrap() - r["float_face_found_rate"].as_f64().unwrap();
    assert!(gap.abs() <= 0.02, "{r}");
}
