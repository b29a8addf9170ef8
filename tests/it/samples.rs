//! The bundled photos are held out: every one comes from the test part of the shipped model's
//! split (`models/gender/split.csv`), so nothing measured on them flatters the model.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::root;

/// `class/stem` -> part (`train`, `val`, `test`) of every photo behind the shipped model.
fn shipped_split() -> BTreeMap<String, String> {
    let mut r = csv::Reader::from_path(root().join("models/gender/split.csv")).unwrap();
    r.records()
        .map(|row| {
            let row = row.unwrap();
            (row[0].to_string(), row[1].to_string())
        })
        .collect()
}

/// `class/stem` of every photo file under `samples/fairface/<class>/`.
fn bundled_photos() -> BTreeSet<String> {
    let dir = root().join("samples/fairface");
    let mut out = BTreeSet::new();
    for class in std::fs::read_dir(&dir).unwrap().flatten() {
        if !class.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(class.path()).unwrap().flatten() {
            let p = f.path();
            out.insert(format!(
                "{}/{}",
                class.file_name().to_string_lossy(),
                p.file_stem().unwrap().to_string_lossy()
            ));
        }
    }
    out
}

fn stem(path: &str) -> String {
    path.rsplit_once('.').map_or(path, |(s, _)| s).to_string()
}

#[test]
fn no_bundled_photo_is_in_the_shipped_models_training_or_validation_split() {
    let split = shipped_split();
    let parts: BTreeSet<&str> = split.values().map(String::as_str).collect();
    assert_eq!(parts, BTreeSet::from(["test", "train", "val"]));
    assert!(split.len() > 30_000, "{} photos in split.csv", split.len());

    let photos = bundled_photos();
    assert!(photos.len() >= 300, "{} bundled photos", photos.len());
    let mut scenes = csv::Reader::from_path(root().join("samples/scenes/scenes.csv")).unwrap();
    let sources: Vec<String> = scenes
        .records()
        .flat_map(|r| {
            r.unwrap()[3]
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!sources.is_empty());
    for p in photos.iter().chain(&sources) {
        assert_eq!(
            split.get(p).map(String::as_str),
            Some("test"),
            "{p} is not a held-out test photo of the shipped model"
        );
    }
}

#[test]
fn every_bundled_photo_has_its_label_and_every_label_its_photo() {
    let mut r = csv::Reader::from_path(root().join("samples/fairface/labels.csv")).unwrap();
    let mut labelled = BTreeSet::new();
    for row in r.records() {
        let row = row.unwrap();
        let (path, gender) = (&row[0], &row[1]);
        assert_eq!(
            path.split('/').next(),
            Some(gender),
            "{path}: folder and label"
        );
        labelled.insert(stem(path));
    }
    assert_eq!(labelled, bundled_photos());

    let dir = root().join("samples/scenes");
    let mut r = csv::Reader::from_path(dir.join("scenes.csv")).unwrap();
    let listed: BTreeSet<String> = r.records().map(|row| row.unwrap()[0].to_string()).collect();
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    assert_eq!(listed, files);
}
