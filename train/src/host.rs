//! `facegender train-host`: the host-grade classifier from a describe cache. The head is trained
//! on the training photos of the student's split and chosen on its validation photos, as are the
//! weights that combine the head's logits with the student's; the test photos only measure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use facegender_pipeline::dataset::crops::Split;
use facegender_pipeline::dataset::groups::groups_from_labels;
use facegender_pipeline::error::Context;
use facegender_pipeline::eval::{Engine, Metrics, Outputs, metrics};
use facegender_pipeline::host::DESCRIPTOR_LEN;
use facegender_pipeline::host::cache::{self, CacheInfo, Row};
use facegender_pipeline::host::{Head, HostInfo, Weights};
use serde::Serialize;

use crate::head::{self, CANDIDATES, Examples, Fitted};

/// The photos of one part of the split, with everything cached for them.
pub struct Part {
    pub rows: Vec<Row>,
    pub labels: Vec<usize>,
}

impl Part {
    fn examples(&self) -> Examples {
        Examples {
            x: self
                .rows
                .iter()
                .flat_map(|r| r.descriptor.iter().copied())
                .collect(),
            y: self.labels.clone(),
            dim: DESCRIPTOR_LEN,
        }
    }

    /// A stand-in split for the metrics (labels and names; no images).
    fn split(&self, classes: &[String]) -> Split {
        Split {
            classes: classes.to_vec(),
            images: Vec::new(),
            labels: self.labels.clone(),
            names: self.rows.iter().map(|r| r.photo.clone()).collect(),
            paths: Vec::new(),
        }
    }
}

/// `photo -> split` from a `photo,split` CSV (`models/gender/split.csv`).
pub fn read_split(path: &Path) -> facegender_pipeline::Result<HashMap<String, String>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for rec in r.records() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        if let (Some(p), Some(s)) = (rec.get(0), rec.get(1)) {
            out.insert(p.to_string(), s.to_string());
        }
    }
    Ok(out)
}

/// The cached photos of each part (`train`, `val`, `test`), described ones only.
pub fn parts(
    info: &CacheInfo,
    rows: Vec<Row>,
    split: &HashMap<String, String>,
) -> facegender_pipeline::Result<HashMap<String, Part>> {
    let mut out: HashMap<String, Part> = HashMap::new();
    for r in rows.into_iter().filter(|r| r.status == "ok") {
        let Some(part) = split.get(&r.photo) else {
            continue;
        };
        let label = info
            .classes
            .iter()
            .position(|c| c == r.class())
            .ok_or_else(|| {
                facegender_pipeline::invalid!("{}: class not among {:?}", r.photo, info.classes)
            })?;
        let p = out.entry(part.clone()).or_insert(Part {
            rows: Vec::new(),
            labels: Vec::new(),
        });
        p.rows.push(r);
        p.labels.push(label);
    }
    for part in ["train", "val", "test"] {
        facegender_pipeline::ensure!(
            out.get(part).is_some_and(|p| !p.rows.is_empty()),
            "no described photo of the {part} split in the cache (describe the split's photos first)"
        );
    }
    Ok(out)
}

/// The weights of lowest validation loss on a grid (0 to 2 in steps of 0.05 for each).
pub fn choose_weights(head: &[Vec<f32>], student: &[Vec<f32>], labels: &[usize]) -> Weights {
    let data = Examples {
        x: Vec::new(),
        y: labels.to_vec(),
        dim: 0,
    };
    let mut best = (
        f64::INFINITY,
        Weights {
            head: 0.5,
            student: 0.5,
        },
    );
    for a in 0..=40 {
        for b in 0..=40 {
            let w = Weights {
                head: a as f32 / 20.0,
                student: b as f32 / 20.0,
            };
            let (loss, _) = head::loss_and_accuracy(&data, |i| w.combine(&head[i], &student[i]));
            if loss < best.0 {
                best = (loss, w);
            }
        }
    }
    best.1
}

/// One classifier's figures on one part.
#[derive(Clone, Debug, Serialize)]
pub struct Scored {
    pub name: String,
    pub metrics: Metrics,
}

/// What `train-host` found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub photos: HashMap<String, usize>,
    pub candidates: Vec<Fitted>,
    pub chosen_head: String,
    pub weights: Weights,
    pub val: Vec<Scored>,
    pub test: Vec<Scored>,
}

/// Settings.
pub struct Config {
    pub descriptors: PathBuf,
    pub split: PathBuf,
    pub labels: Vec<PathBuf>,
    pub seed: u64,
}

/// Trains the candidates, chooses head and weights on validation, measures every classifier on
/// validation and test; returns the head, the weights and the report.
pub fn train_host(
    cfg: &Config,
    progress: impl Fn(&str),
) -> facegender_pipeline::Result<(Head, Weights, CacheInfo, Report)> {
    let (info, rows) = cache::read(&cfg.descriptors)?;
    let split = read_split(&cfg.split)?;
    let parts = parts(&info, rows, &split)?;
    let (train, val, test) = (&parts["train"], &parts["val"], &parts["test"]);
    let (tx, vx) = (train.examples(), val.examples());
    let standard = head::standardisation(&tx);
    let k = info.classes.len();
    let mut candidates = Vec::new();
    for c in CANDIDATES {
        progress(&format!(
            "training the {} head on {} photos",
            c.name(),
            tx.len()
        ));
        candidates.push(head::fit(c, k, &tx, &vx, &standard, cfg.seed)?);
    }
    let best = candidates
        .iter()
        .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
        .cloned()
        .ok_or_else(|| facegender_pipeline::invalid!("no head candidates"))?;
    let head_logits = |p: &Part| -> Vec<Vec<f32>> {
        p.rows
            .iter()
            .map(|r| best.head.logits(&r.descriptor))
            .collect()
    };
    let (hv, ht) = (head_logits(val), head_logits(test));
    let student =
        |p: &Part| -> Vec<Vec<f32>> { p.rows.iter().map(|r| r.student.clone()).collect() };
    let student_mirror =
        |p: &Part| -> Vec<Vec<f32>> { p.rows.iter().map(|r| r.student_mirror.clone()).collect() };
    let weights = choose_weights(&hv, &student(val), &val.labels);
    let equal = Weights {
        head: 0.5,
        student: 0.5,
    };
    let score = |p: &Part, h: &[Vec<f32>]| -> facegender_pipeline::Result<Vec<Scored>> {
        let s = p.split(&info.classes);
        let groups = if cfg.labels.is_empty() {
            Vec::new()
        } else {
            groups_from_labels(&cfg.labels, &s)?
        };
        let combined = |w: &Weights, st: &[Vec<f32>]| -> Vec<Vec<f32>> {
            h.iter().zip(st).map(|(a, b)| w.combine(a, b)).collect()
        };
        let (st, sm) = (student(p), student_mirror(p));
        let named = [
            ("student", st.clone()),
            ("student, mirrored", sm.clone()),
            ("descriptor head", h.to_vec()),
            ("combined, equal weights", combined(&equal, &st)),
            ("combined (host model)", combined(&weights, &st)),
            ("combined, student mirrored", combined(&weights, &sm)),
        ];
        Ok(named
            .into_iter()
            .map(|(name, logits)| Scored {
                name: name.into(),
                metrics: metrics(
                    &Outputs {
                        engine: Engine::Int8Core,
                        logits,
                        int8: None,
                    },
                    &s,
                    &groups,
                ),
            })
            .collect())
    };
    let report = Report {
        photos: parts
            .iter()
            .map(|(k, p)| (k.clone(), p.rows.len()))
            .collect(),
        candidates: candidates.clone(),
        chosen_head: best.kind.clone(),
        weights,
        val: score(val, &hv)?,
        test: score(test, &ht)?,
    };
    Ok((best.head, weights, info, report))
}

/// `host.json`'s contents for a head trained on `info`'s cache.
pub fn host_info(
    info: &CacheInfo,
    head: Head,
    weights: Weights,
    student: PathBuf,
    resnet: PathBuf,
    report: &Report,
) -> HostInfo {
    HostInfo {
        classes: info.classes.clone(),
        student,
        resnet,
        resnet_sha256: info.resnet_sha256.clone(),
        head,
        weights,
        chosen: serde_json::json!({
            "head": report.chosen_head,
            "weights": "lowest validation cross-entropy on a 0.05 grid",
            "candidates": report.candidates,
            "photos": report.photos,
        }),
    }
}

/// Plain tables: accuracy overall, then per group of each attribute (age groups in age order),
/// for each classifier on one part.
pub fn table(scored: &[Scored]) -> String {
    let mut s = format!("{:<28} {:>7} {:>8}\n", "classifier", "photos", "accuracy");
    for m in scored {
        s.push_str(&format!(
            "{:<28} {:>7} {:>7.2}%\n",
            m.name,
            m.metrics.images,
            100.0 * m.metrics.accuracy
        ));
    }
    let Some(first) = scored.first() else {
        return s;
    };
    // `attribute=value` keys, grouped by attribute; values by their leading number, if any
    let mut keys: Vec<&String> = first.metrics.groups.keys().collect();
    let order = |k: &String| {
        let (attr, value) = k.split_once('=').unwrap_or(("", k));
        let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
        (
            attr.to_string(),
            digits.parse::<u32>().unwrap_or(u32::MAX),
            value.to_string(),
        )
    };
    keys.sort_by_key(|k| order(k));
    let mut attrs: Vec<String> = keys.iter().map(|k| order(k).0).collect();
    attrs.dedup();
    for attr in attrs {
        let cols: Vec<&&String> = keys.iter().filter(|k| order(k).0 == attr).collect();
        s.push_str(&format!("\n{:<28}", format!("by {attr}")));
        for k in &cols {
            let v = k.split_once('=').map_or(k.as_str(), |(_, v)| v);
            s.push_str(&format!(" {:>9}", v.chars().take(9).collect::<String>()));
        }
        s.push('\n');
        for m in scored {
            s.push_str(&format!("{:<28}", m.name));
            for k in &cols {
                let a = m
                    .metrics
                    .groups
                    .get(**k)
                    .map_or(f64::NAN, |g| 100.0 * g.accuracy);
                s.push_str(&format!(" {a:>8.1}%"));
            }
            s.push('\n');
        }
        s.push_str(&format!("{:<28}", "photos"));
        for k in &cols {
            let n = first.metrics.groups.get(**k).map_or(0, |g| g.images);
            s.push_str(&format!(" {n:>9}"));
        }
        s.push('\n');
    }
    s
}

/// Teacher logits from the host model: `weights` combining the head and the cached student
/// logits (mirrored with `mirror`) for every described photo of `part`.
pub fn teacher_rows(
    descriptors: &Path,
    split: &Path,
    host: &HostInfo,
    part: &str,
    mirror: bool,
) -> facegender_pipeline::Result<(Vec<String>, Vec<f32>)> {
    let (info, rows) = cache::read(descriptors)?;
    facegender_pipeline::ensure!(
        info.classes == host.classes,
        "the cache's classes {:?} are not the host model's {:?}",
        info.classes,
        host.classes
    );
    let split = read_split(split)?;
    let mut names = Vec::new();
    let mut logits = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.status == "ok" && split.get(&r.photo).is_some_and(|s| s == part))
    {
        let st = if mirror {
            &r.student_mirror
        } else {
            &r.student
        };
        names.push(r.photo.clone());
        logits.extend(host.weights.combine(&host.head.logits(&r.descriptor), st));
    }
    facegender_pipeline::ensure!(
        !names.is_empty(),
        "no described photo of the {part} split in the cache"
    );
    Ok((names, logits))
}
