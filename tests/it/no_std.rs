//! `facegender-core` must build for a Cortex-M with no standard library and no allocator.

use crate::support::{cargo, run, stderr};

#[test]
fn core_builds_for_thumbv7em_without_std() {
    for features in ["", "defmt"] {
        let mut c = cargo();
        c.args([
            "build",
            "-p",
            "facegender-core",
            "--target",
            "thumbv7em-none-eabihf",
        ]);
        if !features.is_empty() {
            c.args(["--features", features]);
        }
        // A target folder of its own: no contention with the running test build.
        c.env(
            "CARGO_TARGET_DIR",
            crate::support::root().join("target/thumbv7em-check"),
        );
        let o = run(c);
        assert!(o.status.success(), "features [{features}]:\n{}", stderr(&o));
    }
}
