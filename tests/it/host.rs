//! The host-grade classifier's commands end to end on the bundled photos: describe (and its
//! resume), train-host on a split of them, predict with the host model folder, teacher logits.

use std::fs;

use serde_json::Value;

use crate::support::{facegender, root, run, stderr, stdout};

#[test]
fn describe_train_host_predict_and_teacher_logits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let photos = root().join("samples/fairface");
    let cache = d.join("cache");

    let describe = || {
        let mut c = facegender();
        c.args(["describe", "-q", "--input"])
            .arg(&photos)
            .arg("--out")
            .arg(&cache);
        let o = run(c);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let first = describe();
    assert!(
        first.starts_with("300 photos: 0 already cached, "),
        "{first}"
    );
    // a second run finds everything cached
    let again = describe();
    assert!(
        again.starts_with("300 photos: 300 already cached, 0 described"),
        "{again}"
    );

    // a split of the 300 photos: 3 of 5 train, 1 val, 1 test
    let rows = fs::read_to_string(cache.join("descriptors.csv")).unwrap();
    let mut split = String::from("photo,split\n");
    for (i, l) in rows.lines().skip(1).enumerate() {
        let part = ["train", "train", "train", "val", "test"][i % 5];
        split.push_str(&format!("{},{part}\n", l.split(',').next().unwrap()));
    }
    fs::write(d.join("split.csv"), split).unwrap();

    let host = d.join("host");
    let train_host = || {
        let mut c = facegender();
        c.args(["train-host", "-q", "--descriptors"])
            .arg(&cache)
            .arg("--split")
            .arg(d.join("split.csv"))
            .arg("--labels")
            .arg(photos.join("labels.csv"))
            .arg("--out")
            .arg(&host);
        run(c)
    };
    let o = train_host();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("combined (host model)"),
        "{}",
        stdout(&o)
    );
    let info: Value = serde_json::from_slice(&fs::read(host.join("host.json")).unwrap()).unwrap();
    assert_eq!(info["head"]["mean"].as_array().unwrap().len(), 128);
    let eval: Value = serde_json::from_slice(&fs::read(host.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["test"].as_array().unwrap().len(), 6);
    // an existing host model is never overwritten without --force
    let o = train_host();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));

    // predict with the host model: every labelled face carries the head's and the combined
    // logits, and its label is the combined logits' larger class
    let mut c = facegender();
    c.args(["predict", "-q", "--json", "--model"])
        .arg(&host)
        .arg(photos.join("male"));
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut faces = 0;
    for l in stdout(&o).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        for f in v["faces"].as_array().unwrap() {
            let combined: Vec<f64> = f["combined_logits"]
                .as_array()
                .expect("combined logits")
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(f["head_logits"].as_array().unwrap().len(), 2);
            if f["status"] == "ok" {
                let best = if combined[1] > combined[0] {
                    "male"
                } else {
                    "female"
                };
                assert_eq!(f["label"], best);
            }
            faces += 1;
        }
    }
    assert!(faces >= 150, "{faces} faces");

    let mut c = facegender();
    c.args(["teacher-logits", "--host"])
        .arg(&host)
        .arg("--descriptors")
        .arg(&cache)
        .arg("--split")
        .arg(d.join("split.csv"))
        .arg("--out")
        .arg(d.join("teacher.csv"));
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let teacher = fs::read_to_string(d.join("teacher.csv")).unwrap();
    assert!(teacher.starts_with("name,female,male\n"));
    assert!(
        teacher.lines().count() > 150,
        "{} rows",
        teacher.lines().count()
    );
}
