//! Teacher logits: the documented file through which a larger network's knowledge enters
//! training (distillation), wherever that network was trained (the GPU machine, say).
//!
//! The file is CSV: a header `name,<class 0>,<class 1>,...` in the training split's class
//! order, then one line per crop, `class/stem` (the crop's path in its split without the
//! extension, as `models/gender/split.csv` names photos) and the teacher's logits for that
//! crop, unaugmented. `facegender teacher-logits` writes one from any training run;
//! `train.distill.logits` reads it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use facegender_pipeline::Error;
use facegender_pipeline::error::Context;

use facegender_pipeline::dataset::crop_key;
use facegender_pipeline::dataset::crops::Split;
use facegender_pipeline::fsutil;

/// Writes `logits` (row-major, one row of `classes.len()` per name) to `path`, atomically;
/// an existing file is refused.
pub fn write(
    path: &Path,
    classes: &[String],
    names: &[String],
    logits: &[f32],
) -> facegender_pipeline::Result<()> {
    facegender_pipeline::ensure!(
        !path.exists(),
        "{} already exists; choose another --out or remove it",
        path.display()
    );
    let k = classes.len();
    facegender_pipeline::ensure!(
        logits.len() == names.len() * k,
        "one row of logits per crop"
    );
    let mut s = String::from("name");
    for c in classes {
        write!(s, ",{c}").map_err(Error::other)?;
    }
    s.push('\n');
    for (name, row) in names.iter().zip(logits.chunks_exact(k)) {
        s.push_str(&crop_key(name));
        for v in row {
            write!(s, ",{v}").map_err(Error::other)?;
        }
        s.push('\n');
    }
    fsutil::write_replace(path, s.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// The teacher's logits for every image of `split`, row-major `[split.len(), classes]`. The
/// header must name the split's classes in order, and every image must have a row.
pub fn read(path: &Path, split: &Split) -> facegender_pipeline::Result<Vec<f32>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    facegender_pipeline::ensure!(
        header.first().map(String::as_str) == Some("name") && header[1..] == split.classes[..],
        "{}: the header is {:?}; expected name,{}",
        path.display(),
        header,
        split.classes.join(",")
    );
    let k = split.classes.len();
    let mut rows: HashMap<String, Vec<f32>> = HashMap::new();
    for (line, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        let values: Vec<f32> = rec
            .iter()
            .skip(1)
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .ok()
            .filter(|v: &Vec<f32>| v.len() == k && v.iter().all(|x| x.is_finite()))
            .with_context(|| {
                format!(
                    "{} line {}: expected a name and {k} finite logits",
                    path.display(),
                    line + 2
                )
            })?;
        rows.insert(rec.get(0).unwrap_or_default().to_string(), values);
    }
    let mut out = Vec::with_capacity(split.names.len() * k);
    let mut missing = Vec::new();
    for name in &split.names {
        match rows.get(&crop_key(name)) {
            Some(v) => out.extend_from_slice(v),
            None => missing.push(crop_key(name)),
        }
    }
    facegender_pipeline::ensure!(
        missing.is_empty(),
        "{} has no logits for {} of the {} training crops (first: {})",
        path.display(),
        missing.len(),
        split.names.len(),
        missing.first().map_or("", String::as_str)
    );
    Ok(out)
}

/// `softmax(logits / temperature)` per row of `k`.
pub fn soften(logits: &[f32], k: usize, temperature: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(k.max(1)) {
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row
            .iter()
            .map(|&v| ((v - top) / temperature).exp())
            .collect();
        let sum: f32 = e.iter().sum();
        out.extend(e.iter().map(|v| v / sum));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn split(names: &[&str]) -> Split {
        Split {
            classes: vec!["female".into(), "male".into()],
            images: Vec::new(),
            labels: Vec::new(),
            names: names.iter().map(|s| s.to_string()).collect(),
            paths: vec![PathBuf::new(); names.len()],
        }
    }

    #[test]
    fn logits_round_trip_by_crop_name_and_missing_crops_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.csv");
        let s = split(&["female/1.png", "male/2.png"]);
        write(&f, &s.classes, &s.names, &[1.5, -0.25, -3.0, 2.0]).unwrap();
        // another order of the same crops reads the same rows
        let back = read(&f, &split(&["male/2.png", "female/1.png"])).unwrap();
        assert_eq!(back, vec![-3.0, 2.0, 1.5, -0.25]);
        let e = read(&f, &split(&["female/1.png", "male/3.png"])).unwrap_err();
        assert!(
            format!("{e}").contains("no logits for 1 of the 2 training crops (first: male/3)"),
            "{e}"
        );
        // never overwrites
        assert!(write(&f, &s.classes, &s.names, &[0.0; 4]).is_err());
    }

    #[test]
    fn a_header_for_other_classes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.csv");
        std::fs::write(&f, "name,male,female\nfemale/1,0,1\n").unwrap();
        assert!(format!("{}", read(&f, &split(&["female/1.png"])).unwrap_err()).contains("header"));
    }

    #[test]
    fn softened_rows_are_distributions_that_flatten_with_temperature() {
        let p1 = soften(&[2.0, 0.0], 2, 1.0);
        let p4 = soften(&[2.0, 0.0], 2, 4.0);
        assert!((p1[0] + p1[1] - 1.0).abs() < 1e-6 && (p4[0] + p4[1] - 1.0).abs() < 1e-6);
        assert!(p1[0] > p4[0] && p4[0] > 0.5);
    }
}
