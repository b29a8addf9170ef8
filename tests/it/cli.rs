//! The command line: every command documents itself with examples, and bad arguments are usage
//! errors (exit 2), not panics.

use crate::support::{facegender, root, run, run_facegender, stderr, stdout};

/// The commands `facegender --help` lists (so a new command is checked without editing this).
fn commands() -> Vec<String> {
    let mut c = facegender();
    c.arg("--help");
    let help = stdout(&run(c));
    let listed = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .expect("--help lists the commands");
    listed
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_has_help_with_examples() {
    let cmds = commands();
    assert!(
        ["preprocess", "train", "teacher-logits", "eval-chain"]
            .iter()
            .all(|c| cmds.iter().any(|x| x == c)),
        "{cmds:?}"
    );
    for cmd in &cmds {
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
fn a_reader_that_stops_early_does_not_cost_the_written_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("filter.json");
    let mut c = facegender();
    c.args(["filter", "--input"])
        .arg(crate::support::root().join("samples/fairface"))
        .arg("--report")
        .arg(&report)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("start facegender filter");
    // close the pipe's reading end before the command prints anything, as `| head -0` would
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report was written")).unwrap();
    assert!(json.is_object(), "{json}");
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
    let (samples, out) = (root().join("samples/fairface"), dir.path().join("out"));
    let preprocess = || {
        let args: [&dyn AsRef<std::ffi::OsStr>; 7] = [
            &"--models",
            &models,
            &"preprocess",
            &"--input",
            &samples,
            &"--output",
            &out,
        ];
        run_facegender(&args)
    };
    let o = preprocess();
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
    let e = stderr(&preprocess());
    assert!(
        e.contains("corrupt") && e.contains("sha256") && e.contains("scripts/setup"),
        "{e}"
    );
}
