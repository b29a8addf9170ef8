//! Labelled image folders: listing them, curating them (`filter`) and splitting them (`split`).

pub mod filter;
pub mod split;

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

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
pub fn list(root: &Path) -> anyhow::Result<Vec<Item>> {
    anyhow::ensure!(root.is_dir(), "{} is not a folder", root.display());
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
    Ok(crate::models::hex(&h.finalize()))
}
