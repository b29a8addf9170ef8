//! `facegender split`: a stratified, seeded train/val/test split that never loses a file.
//!
//! The plan is a pure function of the file set, the seed, the ratios and the grouping: each
//! group (by default each image) gets a sort key `sha256(seed, class, group)`, and groups are
//! dealt in that order to whichever split of their class is furthest below its target count
//! (targets are the ratios rounded by largest remainder). Listing order never matters.
//!
//! Before touching any file the plan is written to `OUTPUT/manifest.csv` (path, class, split,
//! sha256, source) and the settings to `OUTPUT/split.json`, both atomically. Every file operation
//! is idempotent and checked against the manifest's sha256, so a run killed at any point is
//! finished by running the same command again, or undone with `--rollback` (moves only).
//! Files are moved with link-then-unlink (a crash leaves two copies, never none) and copies go
//! through a temporary file; an existing different file at a destination stops the run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::bail;
use crate::error::Context;
use indicatif::ProgressBar;
use rayon::prelude::*;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Item, filter, list, sha256_file};
use crate::{fsutil, progress};

/// How files reach the output tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Copy,
    Move,
    /// Hard links (same file system), so no extra space is used.
    Link,
}

/// The three splits, in order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// How images are grouped so that a group never straddles two splits.
#[derive(Clone, Debug, Default)]
pub enum Grouping {
    /// Each image is its own group.
    #[default]
    None,
    /// Group by a regex on the file name: its first capture group (or the whole match).
    Regex(Regex),
    /// Group by a CSV file of `path,group` (path as `class/rel` or `rel`).
    Map(HashMap<String, String>),
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub input: PathBuf,
    pub output: PathBuf,
    pub ratios: [f64; 3],
    pub seed: u64,
    pub mode: Mode,
    pub grouping: Grouping,
    pub group_desc: Option<String>,
    pub dry_run: bool,
    pub filter: Option<filter::Report>,
    pub progress: bool,
}

/// One row of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Destination relative to the output folder: `split/class/rel`.
    pub path: String,
    pub class: String,
    pub split: String,
    pub sha256: String,
    /// Source relative to the input folder: `class/rel`.
    pub source: String,
    pub group: String,
}

/// Settings recorded next to the manifest, checked when a run resumes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub input: PathBuf,
    pub mode: Mode,
    pub seed: u64,
    pub ratios: [f64; 3],
    pub grouping: Option<String>,
}

fn group_of(g: &Grouping, item: &Item) -> String {
    let key = format!("{}/{}", item.class, item.rel);
    match g {
        Grouping::None => key,
        Grouping::Regex(re) => {
            let name = item.rel.rsplit('/').next().unwrap_or(&item.rel);
            match re.captures(name) {
                Some(c) => c
                    .get(1)
                    .or_else(|| c.get(0))
                    .map_or(key, |m| m.as_str().to_string()),
                None => key,
            }
        }
        Grouping::Map(m) => m
            .get(&key)
            .or_else(|| m.get(&item.rel))
            .cloned()
            .unwrap_or(key),
    }
}

/// Largest-remainder rounding of `n * ratios` (sums to `n`; ties go to the earlier split).
pub fn targets(n: usize, ratios: &[f64; 3]) -> [usize; 3] {
    let total: f64 = ratios.iter().sum();
    let exact: Vec<f64> = ratios.iter().map(|r| n as f64 * r / total).collect();
    let mut t: [usize; 3] = std::array::from_fn(|i| exact[i].floor() as usize);
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut left = n - t.iter().sum::<usize>();
    for i in order {
        if left == 0 {
            break;
        }
        t[i] += 1;
        left -= 1;
    }
    t
}

fn sort_key(seed: u64, group: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(group.as_bytes());
    h.finalize().into()
}

/// Assigns every item a split. Pure: depends on the item set, not its order.
pub fn assign(items: &[Item], cfg: &Config) -> Vec<(Item, usize, String)> {
    let mut items: Vec<Item> = items.to_vec();
    items.sort();
    // groups, with their items per class
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        groups
            .entry(group_of(&cfg.grouping, it))
            .or_default()
            .push(i);
    }
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    for it in &items {
        *per_class.entry(it.class.as_str()).or_insert(0) += 1;
    }
    let want: BTreeMap<&str, [usize; 3]> = per_class
        .iter()
        .map(|(c, &n)| (*c, targets(n, &cfg.ratios)))
        .collect();
    let mut have: BTreeMap<&str, [usize; 3]> = per_class.keys().map(|c| (*c, [0; 3])).collect();
    let mut order: Vec<(&String, &Vec<usize>)> = groups.iter().collect();
    order.sort_by_key(|(g, _)| sort_key(cfg.seed, g));
    let mut split_of = vec![0usize; items.len()];
    for (_, members) in order {
        // the split whose targets, over this group's classes, are furthest from met
        let mut need = [0f64; 3];
        for &m in members {
            let c = items[m].class.as_str();
            for s in 0..3 {
                need[s] += want[c][s] as f64 - have[c][s] as f64;
            }
        }
        let best = (0..3).fold(0, |b, s| if need[s] > need[b] { s } else { b });
        for &m in members {
            split_of[m] = best;
            have.get_mut(items[m].class.as_str())
                .expect("class counted")[best] += 1;
        }
    }
    let keys: Vec<String> = items.iter().map(|it| group_of(&cfg.grouping, it)).collect();
    items
        .into_iter()
        .zip(split_of)
        .zip(keys)
        .map(|((it, s), g)| (it, s, g))
        .collect()
}

/// The plan: rows in manifest order (split, class, path).
pub fn plan(cfg: &Config) -> crate::Result<Vec<Row>> {
    let mut items = list(&cfg.input)?;
    if let Some(f) = &cfg.filter {
        let keep = f.keeps();
        items.retain(|i| keep.contains(format!("{}/{}", i.class, i.rel).as_str()));
    }
    crate::ensure!(
        !items.is_empty(),
        "no images to split in {}",
        cfg.input.display()
    );
    let assigned = assign(&items, cfg);
    let hashes: Vec<String> = assigned
        .par_iter()
        .map(|(it, _, _)| sha256_file(&it.path).with_context(|| it.path.display().to_string()))
        .collect::<crate::Result<_>>()?;
    let mut rows: Vec<Row> = assigned
        .into_iter()
        .zip(hashes)
        .map(|((it, s, group), sha256)| Row {
            path: format!("{}/{}/{}", SPLITS[s], it.class, it.rel),
            class: it.class.clone(),
            split: SPLITS[s].to_string(),
            sha256,
            source: format!("{}/{}", it.class, it.rel),
            group,
        })
        .collect();
    rows.sort_by(|a, b| {
        let s = |r: &Row| SPLITS.iter().position(|x| *x == r.split).unwrap_or(3);
        (s(a), &a.class, &a.path).cmp(&(s(b), &b.class, &b.path))
    });
    Ok(rows)
}

pub fn read_manifest(path: &Path) -> crate::Result<Vec<Row>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    r.deserialize()
        .map(|row| row.with_context(|| format!("bad row in {}", path.display())))
        .collect()
}

fn manifest_bytes(rows: &[Row]) -> crate::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    w.into_inner().map_err(|e| crate::invalid!("{e}"))
}

/// Counts per split and class.
pub fn counts(rows: &[Row]) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry((r.split.clone(), r.class.clone())).or_insert(0) += 1;
    }
    m
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    pub rows: usize,
    pub done_now: usize,
    pub already_done: usize,
    pub resumed: bool,
}

fn same_file_content(path: &Path, sha: &str) -> crate::Result<bool> {
    Ok(sha256_file(path)? == sha)
}

/// Moves `from` to `to` without ever having neither: hard link then unlink on one file system,
/// verified copy then unlink across file systems. Idempotent.
fn move_file(from: &Path, to: &Path, sha: &str) -> crate::Result<bool> {
    match (from.exists(), to.exists()) {
        (_, true) if !from.exists() => Ok(false),
        (true, true) => {
            // an interrupted move (both copies) or a collision
            if same_file_content(to, sha)? && same_file_content(from, sha)? {
                std::fs::remove_file(from)?;
                Ok(true)
            } else {
                bail!(
                    "{} exists and differs from {}: refusing to overwrite",
                    to.display(),
                    from.display()
                )
            }
        }
        (true, false) => {
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p)?;
            }
            if std::fs::hard_link(from, to).is_err() {
                // another file system: copy through a temporary file, then check it
                let bytes = std::fs::read(from)?;
                if !fsutil::write_new(to, &bytes)? {
                    bail!("{} appeared while moving", to.display());
                }
                crate::ensure!(
                    same_file_content(to, sha)?,
                    "copy of {} does not match",
                    from.display()
                );
            }
            std::fs::remove_file(from)?;
            Ok(true)
        }
        (false, _) => bail!(
            "{} is missing and {} was never written: the manifest does not match the files",
            from.display(),
            to.display()
        ),
    }
}

fn copy_file(from: &Path, to: &Path, sha: &str, link: bool) -> crate::Result<bool> {
    if to.exists() {
        crate::ensure!(
            same_file_content(to, sha)?,
            "{} exists and differs: refusing to overwrite",
            to.display()
        );
        return Ok(false);
    }
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p)?;
    }
    if link {
        match std::fs::hard_link(from, to) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return copy_file(from, to, sha, link);
            }
            Err(_) => {} // another file system: fall back to a copy
        }
    }
    let bytes = std::fs::read(from).with_context(|| from.display().to_string())?;
    crate::ensure!(
        crate::model_dir::hex(&Sha256::digest(&bytes)) == sha,
        "{} changed since the plan",
        from.display()
    );
    if !fsutil::write_new(to, &bytes)? {
        return copy_file(from, to, sha, link);
    }
    Ok(true)
}

fn bar(n: usize, show: bool, what: &str) -> ProgressBar {
    progress::styled(
        n,
        show,
        &format!("{what} [{{bar:30}}] {{pos}}/{{len}} ETA {{eta}}"),
    )
}

/// Plans (or resumes) and carries out the split. With `dry_run`, only plans.
pub fn run(cfg: &Config) -> crate::Result<(Vec<Row>, Outcome)> {
    let manifest = cfg.output.join("manifest.csv");
    let settings_path = cfg.output.join("split.json");
    let settings = Settings {
        input: cfg.input.clone(),
        mode: cfg.mode,
        seed: cfg.seed,
        ratios: cfg.ratios,
        grouping: cfg.group_desc.clone(),
    };
    let resumed = manifest.exists();
    let rows = if resumed {
        let old: Settings =
            serde_json::from_slice(&std::fs::read(&settings_path).with_context(|| {
                format!(
                    "{} exists without {}",
                    manifest.display(),
                    settings_path.display()
                )
            })?)?;
        crate::ensure!(
            old == settings,
            "{} already holds a split made with other settings ({old:?}); use another output folder",
            cfg.output.display()
        );
        read_manifest(&manifest)?
    } else {
        plan(cfg)?
    };
    if cfg.dry_run {
        return Ok((
            rows.clone(),
            Outcome {
                rows: rows.len(),
                resumed,
                ..Default::default()
            },
        ));
    }
    if !resumed {
        // No destination may exist yet: refuse collisions before touching anything.
        let clash: Vec<&Row> = rows
            .iter()
            .filter(|r| cfg.output.join(&r.path).exists())
            .take(5)
            .collect();
        if !clash.is_empty() {
            bail!(
                "{} destination files already exist (e.g. {}); refusing to overwrite",
                clash.len(),
                cfg.output.join(&clash[0].path).display()
            );
        }
        std::fs::create_dir_all(&cfg.output)?;
        fsutil::write_replace(&settings_path, &serde_json::to_vec_pretty(&settings)?)?;
        fsutil::write_replace(&manifest, &manifest_bytes(&rows)?)?;
    }
    let b = bar(rows.len(), cfg.progress, "split");
    let mut outcome = Outcome {
        rows: rows.len(),
        resumed,
        ..Default::default()
    };
    for r in &rows {
        let (from, to) = (cfg.input.join(&r.source), cfg.output.join(&r.path));
        let did = match cfg.mode {
            Mode::Move => move_file(&from, &to, &r.sha256),
            Mode::Copy => copy_file(&from, &to, &r.sha256, false),
            Mode::Link => copy_file(&from, &to, &r.sha256, true),
        }?;
        if did {
            outcome.done_now += 1;
        } else {
            outcome.already_done += 1;
        }
        b.inc(1);
    }
    b.finish_and_clear();
    Ok((rows, outcome))
}

/// Undoes a `--move` split from its manifest: every file goes back to its source path.
pub fn rollback(output: &Path, input: &Path, progress: bool) -> crate::Result<usize> {
    let manifest = output.join("manifest.csv");
    let settings: Settings = serde_json::from_slice(
        &std::fs::read(output.join("split.json"))
            .with_context(|| format!("no split to roll back in {}", output.display()))?,
    )?;
    crate::ensure!(
        settings.mode == Mode::Move,
        "only --move splits need rolling back (this one used {:?})",
        settings.mode
    );
    crate::ensure!(
        settings.input == input,
        "the split was made from {}, not {}",
        settings.input.display(),
        input.display()
    );
    let rows = read_manifest(&manifest)?;
    let b = bar(rows.len(), progress, "rollback");
    let mut moved = 0;
    for r in &rows {
        moved += move_file(&output.join(&r.path), &input.join(&r.source), &r.sha256)? as usize;
        b.inc(1);
    }
    b.finish_and_clear();
    std::fs::remove_file(output.join("split.json"))?;
    std::fs::remove_file(&manifest)?;
    Ok(moved)
}

/// A short plan or result table.
pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let c = counts(rows);
    let classes: std::collections::BTreeSet<&String> = c.keys().map(|(_, cl)| cl).collect();
    let mut s = format!("{:<8}", "split");
    for cl in &classes {
        let _ = write!(s, " {cl:>10}");
    }
    let _ = write!(s, " {:>10}", "total");
    for sp in SPLITS {
        let _ = write!(s, "\n{sp:<8}");
        let mut t = 0;
        for cl in &classes {
            let n = c
                .get(&(sp.to_string(), (*cl).clone()))
                .copied()
                .unwrap_or(0);
            t += n;
            let _ = write!(s, " {n:>10}");
        }
        let _ = write!(s, " {t:>10}");
    }
    s
}

/// Reads a `path,group` CSV.
pub fn read_groups(path: &Path) -> crate::Result<HashMap<String, String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut m = HashMap::new();
    for rec in r.records() {
        let rec = rec?;
        if rec.len() < 2 || (m.is_empty() && &rec[0] == "path") {
            continue;
        }
        m.insert(rec[0].to_string(), rec[1].to_string());
    }
    Ok(m)
}
