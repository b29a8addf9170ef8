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

/// The `facegender` binary built for this test run.
pub fn facegender() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegender"));
    c.current_dir(root());
    c
}

/// Runs a command, returning its output; panics with stderr if it could not start.
pub fn run(mut c: Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
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
