//! `facegender filter`: what is in a labelled folder, and what should not go into training.
//!
//! Counts images per class, marks classes below `--min-images` as dropped, finds exact duplicate
//! files (same sha256; the first in sorted order is kept) and files that do not decode. It never
//! changes the folder: the report (terminal table and JSON) is what `split --filter` reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Item, list, sha256_file};
use crate::decode::{Limits, decode_file};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: String,
    /// Readable, non-duplicate images.
    pub images: usize,
    pub kept: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Duplicate {
    /// `class/rel` of the copy that is excluded.
    pub path: String,
    /// `class/rel` of the copy that is kept.
    pub same_as: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Unreadable {
    pub path: String,
    pub reason: String,
}

/// The filter report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub input: PathBuf,
    pub min_images: usize,
    pub classes: Vec<ClassCount>,
    pub duplicates: Vec<Duplicate>,
    pub unreadable: Vec<Unreadable>,
    /// `class/rel` of every image that `split --filter` will use.
    pub keep: Vec<String>,
}

impl Report {
    /// Whether `class/rel` survives the filter.
    pub fn keeps(&self) -> std::collections::HashSet<&str> {
        self.keep.iter().map(String::as_str).collect()
    }
}

fn key(i: &Item) -> String {
    format!("{}/{}", i.class, i.rel)
}

/// Scans `input` (decoding and hashing every image on all cores).
pub fn run(input: &Path, min_images: usize) -> crate::Result<Report> {
    let items = list(input)?;
    let checked: Vec<(Item, Result<String, String>)> = items
        .into_par_iter()
        .map(|i| {
            let r = decode_file(&i.path, &Limits::default())
                .map_err(|e| e.to_string())
                .and_then(|_| sha256_file(&i.path).map_err(|e| e.to_string()));
            (i, r)
        })
        .collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let (mut duplicates, mut unreadable, mut good) = (Vec::new(), Vec::new(), Vec::new());
    for (item, r) in checked {
        match r {
            Err(reason) => unreadable.push(Unreadable {
                path: key(&item),
                reason,
            }),
            Ok(hash) => match seen.get(&hash) {
                Some(first) => duplicates.push(Duplicate {
                    path: key(&item),
                    same_as: first.clone(),
                }),
                None => {
                    seen.insert(hash, key(&item));
                    good.push(item);
                }
            },
        }
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (class, _) in crate::fsutil::class_dirs(input)? {
        counts.insert(class, 0);
    }
    for i in &good {
        *counts.entry(i.class.clone()).or_insert(0) += 1;
    }
    let classes: Vec<ClassCount> = counts
        .into_iter()
        .map(|(class, images)| ClassCount {
            class,
            images,
            kept: images >= min_images,
        })
        .collect();
    let kept: std::collections::HashSet<&str> = classes
        .iter()
        .filter(|c| c.kept)
        .map(|c| c.class.as_str())
        .collect();
    let keep = good
        .iter()
        .filter(|i| kept.contains(i.class.as_str()))
        .map(key)
        .collect();
    Ok(Report {
        input: input.to_path_buf(),
        min_images,
        classes,
        duplicates,
        unreadable,
        keep,
    })
}

/// The terminal table.
pub fn table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{:<20} {:>8}  status", "class", "images");
    for c in &r.classes {
        let status = if c.kept {
            "kept".to_string()
        } else {
            format!("dropped (< {})", r.min_images)
        };
        let _ = writeln!(s, "{:<20} {:>8}  {status}", c.class, c.images);
    }
    let _ = writeln!(
        s,
        "duplicates: {} (excluded, first copy kept)",
        r.duplicates.len()
    );
    for d in r.duplicates.iter().take(10) {
        let _ = writeln!(s, "  {} = {}", d.path, d.same_as);
    }
    let _ = writeln!(s, "unreadable: {}", r.unreadable.len());
    for u in r.unreadable.iter().take(10) {
        let _ = writeln!(s, "  {}: {}", u.path, u.reason);
    }
    let _ = write!(s, "kept for splitting: {} images", r.keep.len());
    s
}
