//! Helpers shared by the integration tests: paths, temp dirs, running the CLI.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` next to the repository.
pub fn shared() -> PathBuf {
    root().join("../shared")
}

/// The `facegender` binary of this build. `host-tools` has an integration test of its own, so
/// `cargo test --workspace` always builds the binary next to this test executable's folder.
pub fn facegender() -> Command {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("facegender");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with cargo test --workspace",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.current_dir(root());
    c
}

/// Runs the `facegender` binary with `args`, strings and paths alike.
pub fn run_facegender(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = facegender();
    c.args(args.iter().map(|a| a.as_ref()));
    run(c)
}

/// Runs a command, returning its output; panics with stderr if it could not start.
pub fn run(mut c: Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Cargo, as the test run was started with.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// The first `n` bundled sample photos of a class, sorted.
pub fn sample_photos(class: &str, n: usize) -> Vec<PathBuf> {
    let dir = root().join("samples/fairface").join(class);
    let mut v = facegender_pipeline::fsutil::files_with_extension(&dir, "jpg").unwrap();
    v.truncate(n);
    v
}
