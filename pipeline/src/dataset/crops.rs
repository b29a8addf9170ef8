//! Labelled crops of a split folder (`dir/<class>/...`), decoded and sized to a network's input:
//! what training, evaluation, export calibration and teacher logits all read.

use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;
use indicatif::ParallelProgressIterator;
use rayon::prelude::*;

use crate::decode::{Limits, decode_file};
use crate::error::Context;
use crate::progress;

/// Images of one split, decoded and resized to the network input, with labels.
pub struct Split {
    pub classes: Vec<String>,
    pub images: Vec<RgbImage>,
    pub labels: Vec<usize>,
    /// `class/rel` of each image (for per-group reports).
    pub names: Vec<String>,
    pub paths: Vec<PathBuf>,
}

/// Loads `dir/<class>/...`; `classes` fixes the label order (those of the training split).
pub fn load_split(
    dir: &Path,
    classes: Option<&[String]>,
    side: u32,
    progress: bool,
) -> crate::Result<Split> {
    let items = super::list(dir)?;
    let classes: Vec<String> = match classes {
        Some(c) => c.to_vec(),
        None => {
            let mut c: Vec<String> = items.iter().map(|i| i.class.clone()).collect();
            c.dedup();
            c
        }
    };
    crate::ensure!(!items.is_empty(), "no images in {}", dir.display());
    let bar = progress::bar(items.len(), progress);
    bar.set_message(format!("loading {}", dir.display()));
    let loaded: Vec<(RgbImage, usize, String, PathBuf)> = items
        .par_iter()
        .progress_with(bar)
        .map(|it| {
            let label = classes
                .iter()
                .position(|c| *c == it.class)
                .with_context(|| {
                    format!(
                        "class {} of {} is not among {:?}",
                        it.class,
                        it.path.display(),
                        classes
                    )
                })?;
            let img = decode_file(&it.path, &Limits::default())
                .with_context(|| it.path.display().to_string())?;
            let img = if img.dimensions() == (side, side) {
                img
            } else {
                image::imageops::resize(&img, side, side, FilterType::Triangle)
            };
            Ok((
                img,
                label,
                format!("{}/{}", it.class, it.rel),
                it.path.clone(),
            ))
        })
        .collect::<crate::Result<_>>()?;
    let mut s = Split {
        classes,
        images: Vec::new(),
        labels: Vec::new(),
        names: Vec::new(),
        paths: Vec::new(),
    };
    for (img, l, n, p) in loaded {
        s.images.push(img);
        s.labels.push(l);
        s.names.push(n);
        s.paths.push(p);
    }
    Ok(s)
}

impl Split {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }
}

/// The split with every image mirrored left-right, for [`crate::eval::mirror_average`].
pub fn mirrored(split: &Split) -> Split {
    Split {
        classes: split.classes.clone(),
        images: split.images.iter().map(crate::augment::hflip).collect(),
        labels: split.labels.clone(),
        names: split.names.clone(),
        paths: split.paths.clone(),
    }
}

impl Split {
    /// The crops at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Split {
        Split {
            classes: self.classes.clone(),
            images: idx.iter().map(|&i| self.images[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            names: idx.iter().map(|&i| self.names[i].clone()).collect(),
            paths: idx.iter().map(|&i| self.paths[i].clone()).collect(),
        }
    }
}
