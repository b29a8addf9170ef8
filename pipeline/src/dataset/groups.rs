//! Groups of crops (FairFace's race and age group) for per-group accuracy and oversampling.

use std::collections::HashMap;
use std::path::PathBuf;

use super::crop_key;
use super::crops::Split;
use crate::error::Context;

/// `attribute=value` groups per image from FairFace-style labels.csv files (`path,gender,
/// age_group,race`), matched on class and file stem (crops keep the photo's relative path).
/// A path listed in two files with different attributes is refused.
pub fn groups_from_labels(labels: &[PathBuf], split: &Split) -> crate::Result<Vec<Vec<String>>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for file in labels {
        let mut r =
            csv::Reader::from_path(file).with_context(|| format!("reading {}", file.display()))?;
        let headers = r.headers()?.clone();
        for rec in r.records() {
            let rec = rec.with_context(|| format!("reading {}", file.display()))?;
            let path = rec.get(0).unwrap_or_default();
            let key = crop_key(path);
            let attrs: Vec<String> = headers
                .iter()
                .zip(rec.iter())
                .skip(1)
                .filter(|(h, _)| *h != "gender")
                .map(|(h, v)| format!("{h}={v}"))
                .collect();
            if let Some(before) = by_key.get(&key) {
                crate::ensure!(
                    *before == attrs,
                    "{path} is listed again in {} with other attributes",
                    file.display()
                );
            }
            by_key.insert(key, attrs);
        }
    }
    Ok(split
        .names
        .iter()
        .map(|n| by_key.get(&crop_key(n)).cloned().unwrap_or_default())
        .collect())
}
