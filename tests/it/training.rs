//! A smoke run of the whole training path on the bundled sample: preprocess, split, one epoch,
//! export, and evaluation on every engine, with the parity the product promises.

use std::fs;

use crate::support::{facegender, root, run, stderr, stdout};

#[test]
fn one_epoch_trains_exports_and_every_engine_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let step = |args: &[&str]| {
        let mut c = facegender();
        c.arg("-q").args(args);
        let o = run(c);
        assert!(
            o.status.success(),
            "{args:?}\n{}\n{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    };
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let sample = root().join("samples/fairface");
    step(&[
        "preprocess",
        "--input",
        &p(&sample),
        "--output",
        &p(&d.join("crops")),
        "--crop",
        "64",
        "--scale",
        "0.75",
    ]);
    step(&[
        "split",
        "--input",
        &p(&d.join("crops")),
        "--output",
        &p(&d.join("data")),
        "--ratios",
        "0.7,0.15,0.15",
    ]);
    let config = d.join("smoke.toml");
    fs::write(
        &config,
        "[model]\ninput = 64\nwidths = [8, 16, 16, 32]\n[train]\nepochs = 1\nbatch = 32\n",
    )
    .unwrap();
    // `train --data data --out OUT --config CONFIG EXTRA...`, for the runs below
    let train = |out: &str, config: &std::path::Path, extra: &[&str]| {
        let mut c = facegender();
        c.args(["-q", "train", "--data", &p(&d.join("data")), "--out"])
            .arg(d.join(out))
            .args(["--config", &p(config)])
            .args(extra);
        run(c)
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
        stdout(&o)
    };
    let out = ok(train("run", &config, &[]));
    assert!(out.contains("best epoch 1"), "{out}");
    // bare steps, the rate an epoch is measured against, named with the machine they ran on
    let bare = ok(train(
        "bare",
        &config,
        &["--compare-backends", "2", "--backends", "flex"],
    ));
    let lines: Vec<&str> = bare.lines().collect();
    assert!(
        lines[0].starts_with("cpu: ") && lines[0].ends_with(" threads"),
        "{bare}"
    );
    let flex: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(flex[0], "flex", "{bare}");
    assert!(flex[1].parse::<f64>().unwrap() > 0.0, "{bare}");
    assert_eq!(
        flex.len(),
        3 + 3,
        "a warm-up step and two timed ones, three losses: {bare}"
    );
    assert!(!d.join("bare").exists(), "timing steps writes no run");
    for f in [
        "config.toml",
        "history.csv",
        "history.png",
        "best.bpk",
        "last/state.json",
    ] {
        assert!(d.join("run").join(f).exists(), "{f} missing");
    }
    let out = step(&[
        "export",
        "--run",
        &p(&d.join("run")),
        "--calibration",
        &p(&d.join("data/train")),
        "--out",
        &p(&d.join("model")),
        "--crop-scale",
        "0.75",
    ]);
    assert!(out.contains("exported"), "{out}");
    let out = step(&[
        "eval",
        "--model",
        &p(&d.join("model")),
        "--run",
        &p(&d.join("run")),
        "--data",
        &p(&d.join("data/test")),
        "--out",
        &p(&d.join("eval")),
    ]);
    // int8: the core and tract give identical logits on every test crop
    let line = out
        .lines()
        .find(|l| l.starts_with("Int8Tract vs Int8Core"))
        .expect(&out);
    assert!(
        line.contains(", 0 images with different int8 logits"),
        "{line}"
    );
    // float: burn and the exported ONNX agree within 1e-4 on the logits
    let line = out
        .lines()
        .find(|l| l.starts_with("Float vs Onnx"))
        .expect(&out);
    let diff: f64 = line
        .split("difference| ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(diff < 1e-4, "{line}");
    assert!(d.join("eval/eval.json").exists() && d.join("eval/eval-int8-core.png").exists());
    // test-time mirroring: the core and tract still agree on every int8 logit of both passes
    let out = step(&[
        "eval",
        "--model",
        &p(&d.join("model")),
        "--data",
        &p(&d.join("data/test")),
        "--engines",
        "int8-tract,int8-core",
        "--mirror",
    ]);
    assert!(out.contains("test-time mirroring"), "{out}");
    assert!(
        out.contains("Int8Tract vs Int8Core: 0 label disagreements, max |logit difference| 0.000e0, 0 images with different int8 logits"),
        "{out}"
    );

    // a run killed while writing epoch 2's checkpoint resumes from epoch 1's complete set
    assert!(d.join("run/last/model-1.bpk").exists());
    fs::write(d.join("run/last/model-2.bpk"), b"half-written").unwrap();
    let o = train("run", &config, &["--resume", "--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming after epoch 1"),
        "{}",
        stderr(&o)
    );
    let left: Vec<String> = fs::read_dir(d.join("run/last"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bpk"))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|n| n.ends_with("-2.bpk")), "{left:?}");

    // a warm restart from that run's weights, recorded in the new run's config
    let o = train("warm", &config, &["--init-from", &p(&d.join("run"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("starting from the weights in"),
        "{}",
        stderr(&o)
    );
    let saved = fs::read_to_string(d.join("warm/config.toml")).unwrap();
    assert!(
        saved.contains("init_from") && saved.contains("best.bpk"),
        "{saved}"
    );
    // weights of another shape are refused with the reason, not loaded half-way
    let other = d.join("other.toml");
    fs::write(
        &other,
        "[model]\ninput = 64\nwidths = [8, 16, 16, 64]\n[train]\nepochs = 1\nbatch = 32\n",
    )
    .unwrap();
    let o = train("mismatch", &other, &["--init-from", &p(&d.join("run"))]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("loading --init-from"), "{}", stderr(&o));

    // age-aware sampling: children's crops enter the epoch three times, classes stay balanced
    let children = d.join("children.toml");
    fs::write(
        &children,
        "[model]\ninput = 64\nwidths = [8, 16, 16, 32]\n[train]\nepochs = 1\nbatch = 32\n\
         [train.oversample]\n\"age_group=3-9\" = 3\n",
    )
    .unwrap();
    let o = train("unlabelled", &children, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("train.oversample needs train.labels"),
        "{}",
        stderr(&o)
    );
    let labels = p(&root().join("samples/fairface/labels.csv"));
    let o = train("children", &children, &["--labels", &labels]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.starts_with("oversampling age_group=3-9 x3 ("))
        .unwrap_or_else(|| panic!("{}", stderr(&o)))
        .to_string();
    let count = |after: &str| -> usize {
        line.split(after)
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (kids, with, without) = (count("x3 ("), count("an epoch is "), count("(from "));
    assert!(kids > 0 && with > without, "{line}");
    let saved = fs::read_to_string(d.join("children/config.toml")).unwrap();
    assert!(
        saved.contains("labels.csv") && saved.contains("age_group=3-9"),
        "{saved}"
    );

    // distillation: the first run as a teacher, its logits through the documented CSV
    let logits = d.join("teacher.csv");
    let teacher = |extra: &[&str]| {
        let mut c = facegender();
        c.args(["-q", "teacher-logits", "--run", &p(&d.join("run"))])
            .args(["--data", &p(&d.join("data/train")), "--out", &p(&logits)])
            .args(extra);
        run(c)
    };
    let o = teacher(&["--mirror"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = fs::read_to_string(&logits).unwrap();
    let train_crops = fs::read_dir(d.join("data/train/female")).unwrap().count()
        + fs::read_dir(d.join("data/train/male")).unwrap().count();
    assert!(csv.starts_with("name,female,male\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + train_crops);
    // an existing file is never overwritten
    let o = teacher(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&logits).unwrap(), csv);
    let distilled = d.join("distilled.toml");
    fs::write(
        &distilled,
        format!(
            "[model]\ninput = 64\nwidths = [8, 16, 16, 32]\n[train]\nepochs = 1\nbatch = 32\n\
             [train.distill]\nlogits = {:?}\nweight = 0.7\n",
            p(&logits)
        ),
    )
    .unwrap();
    let o = train("distilled", &distilled, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("distilling from") && stderr(&o).contains("weight 0.7, temperature 2"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn resume_without_a_checkpoint_and_reuse_of_a_run_folder_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = facegender();
    c.args(["train", "--data"])
        .arg(dir.path().join("nothing"))
        .arg("--out")
        .arg(dir.path().join("run"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing"), "{}", stderr(&o));

    let mut c = facegender();
    c.args(["train", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("run"))
        .arg("--init-from")
        .arg(dir.path().join("no-such-run"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-run"), "{}", stderr(&o));
}
