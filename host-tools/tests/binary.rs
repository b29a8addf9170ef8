//! The binary starts and reports its version. (Having an integration test here also makes
//! `cargo test --workspace` build the `facegender` binary that `tests/` drives.)

#[test]
fn prints_its_version() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_facegender"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("facegender "));
}
