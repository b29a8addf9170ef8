//! `facegender demo`, as a newcomer runs it: the shipped model on the held-out sample, the device
//! chain, the firmware in QEMU, and a fine-tune that lands well above chance.

use crate::support::{facegender, run, stderr, stdout};

#[test]
fn the_demo_shows_the_shipped_model_the_device_and_a_fine_tune_that_learns() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let mut c = facegender();
    c.args(["-q", "demo", "--workdir"]).arg(&work);
    let o = run(c);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("demo finished in"), "{}", stdout(&o));

    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("demo.json")).unwrap()).unwrap();
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    // the shipped model on 300 photos it never saw (the card: 86.8 % on 3,986 test crops)
    assert_eq!(
        r["held_out"], true,
        "the bundled sample is the held-out one"
    );
    let (host, dev) = (&r["host_chain"], &r["device_chain"]);
    assert_eq!(host["photos"], 300);
    assert!(f(&host["accuracy"]) >= 0.8, "{host}");
    let ci = host["accuracy_ci95"].as_array().unwrap();
    assert!(f(&ci[0]) < f(&host["accuracy"]) && f(&host["accuracy"]) < f(&ci[1]));
    // the device chain: as accurate as the host chain, within the sample's noise
    assert!(
        (f(&dev["accuracy"]) - f(&host["accuracy"])).abs() <= 0.03,
        "{dev}"
    );
    let scenes = &host["scenes"];
    assert_eq!(scenes["faces_found"], scenes["faces_expected"], "{scenes}");
    // the firmware equals the host on every embedded frame
    assert!(r["qemu"]["total"].as_u64().unwrap() >= 2);
    assert_eq!(r["qemu"]["equal"], r["qemu"]["total"]);
    // the fine-tune: every engine well above chance, core and tract bit-exact
    let t = &r["training"];
    assert_eq!(t["int8_core_vs_tract_mismatches"], 0);
    for e in t["test_accuracy"].as_array().unwrap() {
        assert!(f(&e[1]) >= 0.7, "{e}");
    }
    for a in [
        "contact-sheet.jpg",
        "predict-host.jsonl",
        "model/model.fgi8",
    ] {
        assert!(work.join(a).is_file(), "{a} missing");
    }
    let sheet = image::open(work.join("contact-sheet.jpg")).unwrap();
    assert!(sheet.width() > 500 && sheet.height() > 500);
}
