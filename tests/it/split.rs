//! `facegender split`: deterministic, stratified, grouped, and safe to kill.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support::{facegender, run, stderr};

/// A tree of `per_class` small distinct files per class, created in `order`.
fn make_tree(root: &Path, classes: &[(&str, usize)], reverse: bool) {
    let mut files: Vec<(String, usize)> = Vec::new();
    for (c, n) in classes {
        for i in 0..*n {
            files.push((c.to_string(), i));
        }
    }
    if reverse {
        files.reverse();
    }
    for (c, i) in files {
        let d = root.join(&c);
        fs::create_dir_all(&d).unwrap();
        // identity = i / 3: three photos per person
        fs::write(
            d.join(format!("p{:04}_{i:05}.png", i / 3)),
            format!("{c} {i}").as_bytes(),
        )
        .unwrap();
    }
}

/// sha256 of every file under `root`, keyed by relative path.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let h = hex(&Sha256::digest(fs::read(&p).unwrap()));
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), h);
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn split_cmd(input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut c = facegender();
    c.args(["split", "-q", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra);
    c
}

fn manifest(output: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(output.join("manifest.csv")).unwrap();
    r.deserialize().map(|x| x.unwrap()).collect()
}

#[test]
fn same_seed_same_split_whatever_the_listing_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    make_tree(&a, &[("x", 101), ("y", 37)], false);
    make_tree(&b, &[("x", 101), ("y", 37)], true);
    for (input, out) in [(&a, "oa"), (&b, "ob")] {
        let o = run(split_cmd(input, &dir.path().join(out), &["--seed", "7"]));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let strip = |m: Vec<HashMap<String, String>>| -> Vec<(String, String)> {
        m.into_iter()
            .map(|r| (r["path"].clone(), r["sha256"].clone()))
            .collect()
    };
    assert_eq!(
        strip(manifest(&dir.path().join("oa"))),
        strip(manifest(&dir.path().join("ob")))
    );
    // another seed gives another split
    let o = run(split_cmd(&a, &dir.path().join("oc"), &["--seed", "8"]));
    assert!(o.status.success());
    assert_ne!(
        strip(manifest(&dir.path().join("oa"))),
        strip(manifest(&dir.path().join("oc")))
    );
}

#[test]
fn class_proportions_are_within_one_image_of_the_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 97), ("b", 13), ("c", 250)], false);
    let ratios = [0.7, 0.2, 0.1];
    let o = run(split_cmd(
        &input,
        &dir.path().join("out"),
        &["--ratios", "0.7,0.2,0.1"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&dir.path().join("out"));
    for (class, n) in [("a", 97.0), ("b", 13.0), ("c", 250.0)] {
        for (s, r) in ["train", "val", "test"].iter().zip(ratios) {
            let got = m
                .iter()
                .filter(|x| x["class"] == class && x["split"] == *s)
                .count() as f64;
            assert!(
                (got - n * r).abs() <= 1.0,
                "{class} {s}: {got} for {}",
                n * r
            );
        }
    }
    // the files are where the manifest says, with the manifest's content
    for row in &m {
        let p = dir.path().join("out").join(&row["path"]);
        assert_eq!(hex(&Sha256::digest(fs::read(&p).unwrap())), row["sha256"]);
    }
}

#[test]
fn a_group_never_straddles_two_splits() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 120), ("b", 90)], false);
    let o = run(split_cmd(
        &input,
        &dir.path().join("out"),
        &["--group-by", r"^(p\d+)_"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut where_: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for row in manifest(&dir.path().join("out")) {
        let person = row["source"].split('/').nth(1).unwrap()[..5].to_string();
        where_
            .entry((row["class"].clone(), person))
            .or_default()
            .insert(row["split"].clone());
    }
    assert!(where_.len() >= 60);
    for (g, s) in where_ {
        assert_eq!(s.len(), 1, "{g:?} is in {s:?}");
    }
}

#[test]
fn dry_run_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 30), ("b", 30)], false);
    let before = snapshot(dir.path());
    for mode in ["--copy", "--move", "--link"] {
        let o = run(split_cmd(
            &input,
            &dir.path().join("out"),
            &[mode, "--dry-run"],
        ));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("nothing was changed"));
    }
    assert_eq!(before, snapshot(dir.path()));
}

#[test]
fn a_move_killed_at_random_points_resumes_with_every_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 1600), ("b", 1400)], false);
    let originals: BTreeMap<String, usize> =
        snapshot(&input)
            .into_values()
            .fold(BTreeMap::new(), |mut m, h| {
                *m.entry(h).or_insert(0) += 1;
                m
            });
    let out = dir.path().join("out");
    // kill the run a few times at different points, then let it finish
    for delay_ms in [30u64, 90, 160, 260] {
        let mut child = split_cmd(&input, &out, &["--move"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let o = run(split_cmd(&input, &out, &["--move"]));
    assert!(o.status.success(), "{}", stderr(&o));
    // every original file is present exactly once (same sha256), all under out/
    let mut after: BTreeMap<String, usize> = BTreeMap::new();
    for (p, h) in snapshot(&out) {
        if p.extension().is_some_and(|e| e == "png") {
            *after.entry(h).or_insert(0) += 1;
        }
    }
    assert_eq!(after, originals);
    assert!(
        snapshot(&input).is_empty(),
        "files left behind in the input"
    );
    // and --rollback puts them all back
    let mut c = facegender();
    c.args(["split", "-q", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--rollback");
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let back: BTreeMap<String, usize> =
        snapshot(&input)
            .into_values()
            .fold(BTreeMap::new(), |mut m, h| {
                *m.entry(h).or_insert(0) += 1;
                m
            });
    assert_eq!(back, originals);
}

#[test]
fn a_split_never_overwrites_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 20)], false);
    let out = dir.path().join("out");
    // plant a different file where the plan will put one
    let o = run(split_cmd(&input, &out, &["--dry-run"]));
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.contains(" -> "))
        .unwrap()
        .split(" -> ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    fs::create_dir_all(out.join(&first).parent().unwrap()).unwrap();
    fs::write(out.join(&first), b"mine").unwrap();
    let o = run(split_cmd(&input, &out, &["--move"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(out.join(&first)).unwrap(), b"mine");
    assert_eq!(snapshot(&input).len(), 20, "nothing may have moved");
}

#[test]
fn bad_ratios_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_tree(&input, &[("a", 5)], false);
    let o = run(split_cmd(
        &input,
        &dir.path().join("out"),
        &["--ratios", "0.5,0.5,0.5"],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("add up to 1"));
}
