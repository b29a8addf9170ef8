//! The command line: every command documents itself with examples, and bad arguments are usage
//! errors (exit 2), not panics.

use crate::support::{facegender, run, stderr, stdout};

const COMMANDS: [&str; 13] = [
    "preprocess",
    "filter",
    "split",
    "augment",
    "train",
    "export",
    "eval",
    "predict",
    "bench",
    "demo",
    "firmware",
    "fit-dlib-box",
    "help",
];

#[test]
fn every_command_has_help_with_examples() {
    for cmd in COMMANDS.iter().filter(|c| **c != "help") {
        let mut c = facegender();
        c.args([cmd, "--help"]);
        let o = run(c);
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("Example"),
            "{cmd} --help has no example"
        );
    }
}

#[test]
fn unknown_flags_are_usage_errors() {
    let mut c = facegender();
    c.args(["split", "--no-such-flag"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn a_missing_model_file_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("blazeface")).unwrap();
    let mut c = facegender();
    c.arg("--models")
        .arg(&models)
        .args(["preprocess", "--input"])
        .arg(crate::support::root().join("samples/fairface"))
        .arg("--output")
        .arg(dir.path().join("out"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("face_detection_front_128x128_barracuda.onnx") && e.contains("scripts/setup"),
        "{e}"
    );
    // a damaged file: same message, with the checksum
    std::fs::write(
        models.join("blazeface/face_detection_front_128x128_barracuda.onnx"),
        b"garbage",
    )
    .unwrap();
    let mut c = facegender();
    c.arg("--models")
        .arg(&models)
        .args(["preprocess", "--input"])
        .arg(crate::support::root().join("samples/fairface"))
        .arg("--output")
        .arg(dir.path().join("out"));
    let e = stderr(&run(c));
    assert!(
        e.contains("corrupt") && e.contains("sha256") && e.contains("scripts/setup"),
        "{e}"
    );
}
