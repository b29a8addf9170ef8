//! How good a model is, with the same numbers for every engine (`facegender eval`).
//!
//! Engines ([`engines`]): the float model in burn (`facegender-train`), the float ONNX in tract,
//! the int8 ONNX in tract and the int8 model file in the core. Metrics: accuracy, balanced accuracy, per-class
//! precision/recall/F1, confusion matrix, ROC AUC (binary), expected calibration error, and
//! accuracy per group (e.g. race and age from FairFace's labels.csv).

use std::collections::BTreeMap;

pub mod chains;
pub mod chart;
pub mod detector;
pub mod engines;

use serde::Serialize;

use crate::classify::{mirror_mean, probs};
use crate::dataset::crops::Split;

/// An engine that turns crops into class probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The float model in burn (needs --run).
    Float,
    /// The float ONNX through tract.
    Onnx,
    /// The int8 ONNX through tract.
    Int8Tract,
    /// The int8 model file through facegender-core.
    Int8Core,
}

/// Raw outputs of one engine over a split.
pub struct Outputs {
    pub engine: Engine,
    /// `[n][classes]` logits as floats (int8 engines: dequantised).
    pub logits: Vec<Vec<f32>>,
    /// int8 engines: the raw int8 logits.
    pub int8: Option<Vec<Vec<i8>>>,
}

/// Test-time mirroring: each image's logits averaged with those of its mirror image. The label
/// does not change under mirroring but the network's errors may, so the average can be right
/// more often, for twice the inference; `eval --mirror` measures whether it is. int8 engines
/// keep both passes' raw logits, plain then mirrored, so that the int8 parity check covers both.
pub fn mirror_average(plain: Outputs, mirrored: Outputs) -> crate::Result<Outputs> {
    crate::ensure!(
        plain.engine == mirrored.engine && plain.logits.len() == mirrored.logits.len(),
        "mirror_average needs one engine's outputs on the same images"
    );
    let logits = plain
        .logits
        .iter()
        .zip(&mirrored.logits)
        .map(|(a, b)| mirror_mean(a, b))
        .collect();
    let int8 = match (plain.int8, mirrored.int8) {
        (Some(a), Some(b)) => Some(a.into_iter().zip(b).map(|(x, y)| [x, y].concat()).collect()),
        _ => None,
    };
    Ok(Outputs {
        engine: plain.engine,
        logits,
        int8,
    })
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupAccuracy {
    pub images: usize,
    pub accuracy: f64,
    /// 95 % Wilson score interval: wide for small groups.
    pub ci95: (f64, f64),
}

/// The figures for one engine.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub engine: Engine,
    pub images: usize,
    pub accuracy: f64,
    /// 95 % Wilson score interval of the accuracy.
    pub accuracy_ci95: (f64, f64),
    pub balanced_accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    /// rows: true class, columns: predicted class
    pub confusion: Vec<Vec<usize>>,
    pub roc_auc: Option<f64>,
    /// Expected calibration error, 10 equal-width confidence bins.
    pub ece: f64,
    pub brier: f64,
    /// Accuracy per group, keyed `attribute=value`.
    pub groups: BTreeMap<String, GroupAccuracy>,
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

/// Area under the ROC curve by the rank statistic (ties count half), and the curve itself.
pub fn roc(scores: &[f32], positive: &[bool]) -> (Option<f64>, Vec<(f64, f64)>) {
    let (np, nn) = (
        positive.iter().filter(|&&p| p).count(),
        positive.iter().filter(|&&p| !p).count(),
    );
    if np == 0 || nn == 0 {
        return (None, Vec::new());
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut auc) = (0usize, 0usize, 0f64);
    let mut curve = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        let (mut dtp, mut dfp) = (0, 0);
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if positive[idx[j]] {
                dtp += 1
            } else {
                dfp += 1
            }
            j += 1;
        }
        // trapezoid over the tied block
        auc += dfp as f64 * (tp as f64 + dtp as f64 / 2.0);
        tp += dtp;
        fp += dfp;
        curve.push((fp as f64 / nn as f64, tp as f64 / np as f64));
        i = j;
    }
    (Some(auc / (np as f64 * nn as f64)), curve)
}

/// Metrics from logits; `groups[i]` lists `attribute=value` keys of image `i`.
pub fn metrics(o: &Outputs, split: &Split, groups: &[Vec<String>]) -> Metrics {
    let k = split.classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut pos_scores = Vec::new();
    let (mut ece_bins, mut brier) = (vec![(0f64, 0f64, 0usize); 10], 0f64);
    let mut group_counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, l) in o.logits.iter().enumerate() {
        let p = probs(l);
        let pred = (0..k).fold(0, |b, c| if p[c] > p[b] { c } else { b });
        let truth = split.labels[i];
        confusion[truth][pred] += 1;
        if k == 2 {
            pos_scores.push(p[1]);
        }
        let conf = p[pred] as f64;
        let bin = ((conf * 10.0) as usize).min(9);
        ece_bins[bin].0 += conf;
        ece_bins[bin].1 += (pred == truth) as u8 as f64;
        ece_bins[bin].2 += 1;
        brier += (0..k)
            .map(|c| (p[c] as f64 - (c == truth) as u8 as f64).powi(2))
            .sum::<f64>();
        for g in groups.get(i).into_iter().flatten() {
            let e = group_counts.entry(g.clone()).or_insert((0, 0));
            e.0 += 1;
            e.1 += (pred == truth) as usize;
        }
    }
    let n = o.logits.len().max(1);
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = (0..k).map(|t| confusion[t][c]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                class: split.classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let balanced = present.iter().map(|c| c.recall).sum::<f64>() / present.len().max(1) as f64;
    let (roc_auc, curve) = if k == 2 {
        let positive: Vec<bool> = split.labels.iter().map(|&l| l == 1).collect();
        roc(&pos_scores, &positive)
    } else {
        (None, Vec::new())
    };
    let ece = ece_bins
        .iter()
        .map(|(c, a, m)| {
            if *m > 0 {
                (*m as f64 / n as f64) * (c / *m as f64 - a / *m as f64).abs()
            } else {
                0.0
            }
        })
        .sum();
    Metrics {
        engine: o.engine,
        images: o.logits.len(),
        accuracy: correct as f64 / n as f64,
        accuracy_ci95: wilson95(correct, n),
        balanced_accuracy: balanced,
        per_class,
        confusion,
        roc_auc,
        ece,
        brier: brier / n as f64,
        groups: group_counts
            .into_iter()
            .map(|(g, (m, c))| {
                (
                    g,
                    GroupAccuracy {
                        images: m,
                        accuracy: c as f64 / m.max(1) as f64,
                        ci95: wilson95(c, m),
                    },
                )
            })
            .collect(),
        roc: curve,
    }
}

/// The 95 % Wilson score interval of a proportion `k / n`: how far an accuracy measured on `n`
/// images can move by chance alone (about +-1.4 points at 86 % on 2,400 images), so that small
/// differences between models are read as such.
pub fn wilson95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959964;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let d = 1.0 + Z * Z / n;
    let centre = (p + Z * Z / (2.0 * n)) / d;
    let half = Z / d * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Element-wise agreement between engines: identical int8 logits, and the largest float gap.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    pub a: Engine,
    pub b: Engine,
    pub images: usize,
    /// int8 engines: images whose int8 logits differ anywhere.
    pub int8_mismatches: Option<usize>,
    pub max_abs_logit_diff: f64,
    pub label_disagreements: usize,
}

pub fn agreement(a: &Outputs, b: &Outputs) -> Agreement {
    let argmax = |v: &[f32]| (0..v.len()).fold(0, |m, c| if v[c] > v[m] { c } else { m });
    Agreement {
        a: a.engine,
        b: b.engine,
        images: a.logits.len(),
        int8_mismatches: match (&a.int8, &b.int8) {
            (Some(x), Some(y)) => Some(x.iter().zip(y).filter(|(p, q)| p != q).count()),
            _ => None,
        },
        max_abs_logit_diff: a
            .logits
            .iter()
            .zip(&b.logits)
            .flat_map(|(p, q)| p.iter().zip(q).map(|(x, y)| (x - y).abs() as f64))
            .fold(0.0, f64::max),
        label_disagreements: a
            .logits
            .iter()
            .zip(&b.logits)
            .filter(|(p, q)| argmax(p) != argmax(q))
            .count(),
    }
}

/// The terminal table for several engines side by side.
pub fn table(ms: &[Metrics]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = write!(s, "{:<22}", "metric");
    for m in ms {
        let _ = write!(
            s,
            " {:>11}",
            serde_json::to_string(&m.engine)
                .unwrap_or_default()
                .trim_matches('"')
        );
    }
    let row = |s: &mut String, name: &str, f: &dyn Fn(&Metrics) -> String| {
        let _ = write!(s, "\n{name:<22}");
        for m in ms {
            let _ = write!(s, " {:>11}", f(m));
        }
    };
    row(&mut s, "images", &|m| m.images.to_string());
    row(&mut s, "accuracy", &|m| format!("{:.4}", m.accuracy));
    row(&mut s, "accuracy 95% CI", &|m| {
        format!("{:.3}-{:.3}", m.accuracy_ci95.0, m.accuracy_ci95.1)
    });
    row(&mut s, "balanced accuracy", &|m| {
        format!("{:.4}", m.balanced_accuracy)
    });
    row(&mut s, "ROC AUC", &|m| {
        m.roc_auc.map_or("-".into(), |a| format!("{a:.4}"))
    });
    row(&mut s, "ECE", &|m| format!("{:.4}", m.ece));
    if let Some(first) = ms.first() {
        for (c, cm) in first.per_class.iter().enumerate() {
            row(&mut s, &format!("{} precision", cm.class), &|m| {
                format!("{:.4}", m.per_class[c].precision)
            });
            row(&mut s, &format!("{} recall", cm.class), &|m| {
                format!("{:.4}", m.per_class[c].recall)
            });
            row(&mut s, &format!("{} F1", cm.class), &|m| {
                format!("{:.4}", m.per_class[c].f1)
            });
        }
        let _ = write!(
            s,
            "\nconfusion ({}): rows true, columns predicted",
            serde_json::to_string(&first.engine)
                .unwrap_or_default()
                .trim_matches('"')
        );
        for (c, r) in first.confusion.iter().enumerate() {
            let _ = write!(s, "\n  {:<10} {:?}", first.per_class[c].class, r);
        }
        if !first.groups.is_empty() {
            let _ = write!(
                s,
                "\naccuracy per group (images; last engine's 95% interval)"
            );
            for (g, acc) in &first.groups {
                let _ = write!(s, "\n  {:<30} {:>5}", g, acc.images);
                for m in ms {
                    let a = m.groups.get(g).map_or(f64::NAN, |a| a.accuracy);
                    let _ = write!(s, " {a:>11.4}");
                }
                if let Some(last) = ms.last().and_then(|m| m.groups.get(g)) {
                    let _ = write!(s, "  {:.3}-{:.3}", last.ci95.0, last.ci95.1);
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_averaging_averages_logits_and_keeps_both_int8_passes() {
        let out = |logits: Vec<Vec<f32>>, int8: Vec<Vec<i8>>| Outputs {
            engine: Engine::Int8Core,
            logits,
            int8: Some(int8),
        };
        let plain = out(
            vec![vec![1.0, -1.0], vec![0.5, 0.0]],
            vec![vec![8, -8], vec![4, 0]],
        );
        let mirrored = out(
            vec![vec![-3.0, 1.0], vec![0.5, 1.0]],
            vec![vec![-24, 8], vec![4, 8]],
        );
        let m = mirror_average(plain, mirrored).unwrap();
        assert_eq!(m.logits, vec![vec![-1.0, 0.0], vec![0.5, 0.5]]);
        assert_eq!(m.int8.unwrap()[0], vec![8, -8, -24, 8]);
    }

    #[test]
    fn mirror_averaging_refuses_outputs_of_different_engines_or_images() {
        let out = |engine, n| Outputs {
            engine,
            logits: vec![vec![0.0, 0.0]; n],
            int8: None,
        };
        assert!(mirror_average(out(Engine::Onnx, 2), out(Engine::Int8Core, 2)).is_err());
        assert!(mirror_average(out(Engine::Onnx, 2), out(Engine::Onnx, 3)).is_err());
    }

    #[test]
    fn the_table_lists_each_group_with_every_engines_accuracy() {
        let group = |images, accuracy| GroupAccuracy {
            images,
            accuracy,
            ci95: wilson95((accuracy * images as f64).round() as usize, images),
        };
        let engine = |engine, a| Metrics {
            engine,
            images: 10,
            accuracy: 0.5,
            accuracy_ci95: (0.2, 0.8),
            balanced_accuracy: 0.5,
            per_class: Vec::new(),
            confusion: Vec::new(),
            roc_auc: None,
            ece: 0.0,
            brier: 0.0,
            groups: [("age_group=0-2".to_string(), group(4, a))].into(),
            roc: Vec::new(),
        };
        let t = table(&[engine(Engine::Float, 0.25), engine(Engine::Int8Core, 0.75)]);
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("age_group=0-2"))
            .expect("a line for the group");
        let (lo, hi) = wilson95(3, 4);
        assert_eq!(
            line.split_whitespace().collect::<Vec<_>>(),
            [
                "age_group=0-2",
                "4",
                "0.2500",
                "0.7500",
                &format!("{lo:.3}-{hi:.3}")
            ]
        );
    }

    #[test]
    fn wilson_interval_matches_the_textbook_values() {
        let close =
            |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4;
        assert!(
            close(wilson95(90, 100), (0.8256, 0.9448)),
            "{:?}",
            wilson95(90, 100)
        );
        // never outside [0, 1], even with no errors or no successes
        assert!(close(wilson95(0, 10), (0.0, 0.2775)));
        assert!((wilson95(10, 10).1 - 1.0).abs() < 1e-12);
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
    }

    #[test]
    fn wilson_interval_narrows_with_more_images() {
        let width = |k, n| {
            let (lo, hi) = wilson95(k, n);
            hi - lo
        };
        assert!(width(2057, 2395) < width(206, 240));
        assert!((width(2057, 2395) - 0.0279).abs() < 1e-3);
    }
}
