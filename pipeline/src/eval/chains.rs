//! The host chain against the device chain on labelled photos (`facegender eval-chain`):
//! accuracy with its 95 % interval, how often a face is found, and how often the two agree.

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Serialize;

use super::wilson95;
use crate::classify::Classifier;
use crate::dataset::Item;
use crate::detect::DEFAULT_THRESHOLD;
use crate::predict::{self, DeviceModels, ImageResult};
use crate::preprocess::Models;

/// One chain's figures over the photos.
#[derive(Clone, Debug, Serialize)]
pub struct ChainScore {
    pub accuracy: f64,
    pub accuracy_ci95: (f64, f64),
    pub face_found: f64,
}

/// Both chains' figures (`--json` writes it as it is; fields in name order, as the report
/// always listed them).
#[derive(Clone, Debug, Serialize)]
pub struct ChainComparison {
    pub device_chain: ChainScore,
    pub host_chain: ChainScore,
    pub photos: usize,
    pub same_label: f64,
}

/// Each photo's main face labelled by the host chain (`m`) and by the device chain (`d`), both
/// with the classifier `c`, scored against the photo's class.
pub fn compare(
    (m, d): (&Models<'_>, &DeviceModels),
    c: &Classifier<'_>,
    items: &[Item],
    bar: &ProgressBar,
) -> ChainComparison {
    let cfg = predict::Config {
        threshold: DEFAULT_THRESHOLD,
        min_face: 0.0,
        min_probability: 0.0,
        mirror: false,
    };
    let label_of = |r: &ImageResult| predict::main_label(r).map(str::to_string);
    let per: Vec<[Option<String>; 2]> = items
        .par_iter()
        .map(|it| {
            bar.inc(1);
            let host =
                predict::predict_image(m, c, None, &cfg, predict::Photo::Path(&it.path), None);
            let dev = predict::predict_device(d, c, &cfg, predict::Photo::Path(&it.path), None);
            [label_of(&host), label_of(&dev)]
        })
        .collect();
    let n = per.len() as f64;
    let score = |k: usize| {
        let correct = per
            .iter()
            .zip(items)
            .filter(|(p, it)| p[k].as_deref() == Some(it.class.as_str()))
            .count();
        ChainScore {
            accuracy: correct as f64 / n,
            accuracy_ci95: wilson95(correct, per.len()),
            face_found: per.iter().filter(|p| p[k].is_some()).count() as f64 / n,
        }
    };
    ChainComparison {
        device_chain: score(1),
        host_chain: score(0),
        photos: per.len(),
        same_label: per.iter().filter(|p| p[0] == p[1]).count() as f64 / n,
    }
}
