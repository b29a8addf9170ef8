//! Labelled image folders: listing them, curating them (`filter`) and splitting them (`split`).

pub mod crops;
pub mod filter;
pub mod groups;
pub mod split;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Context;
use crate::fsutil;

/// One labelled image: its class (sub-folder name) and path relative to the class folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    pub class: String,
    /// Relative to the class folder, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
}

/// Every image under `root/<class>/`, sorted by (class, path).
pub fn list(root: &Path) -> crate::Result<Vec<Item>> {
    crate::ensure!(root.is_dir(), "{} is not a folder", root.display());
    let mut items = Vec::new();
    for (class, dir) in
        fsutil::class_dirs(root).with_context(|| format!("reading {}", root.display()))?
    {
        for path in
            fsutil::image_files(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let rel = path
                .strip_prefix(&dir)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            items.push(Item {
                class: class.clone(),
                rel,
                path,
            });
        }
    }
    items.sort();
    Ok(items)
}

/// `class/stem` of a crop or photo name (`class/rel.ext`): how `labels.csv` rows, teacher
/// logits and `split.csv` name an image, whatever its extension.
pub fn crop_key(name: &str) -> String {
    Path::new(name)
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/")
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(crate::model_dir::hex(&h.finalize()))
}

/// The indices of `n` items spread evenly over `len` (all of them when `n >= len`): a subsample
/// that keeps a sorted listing's classes and sources in proportion.
pub fn evenly_spaced_indices(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    let step = len as f64 / n as f64;
    (0..n).map(|i| (i as f64 * step) as usize).collect()
}

/// `n` items spread evenly over `items` ([`evenly_spaced_indices`]).
pub fn evenly_spaced<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    evenly_spaced_indices(items.len(), n)
        .into_iter()
        .map(|i| items[i].clone())
        .collect()
}
