//! The descriptor cache: one CSV row per labelled photo with what the host-grade classifier needs
//! from the photo (the student's logits on its crop, plain and mirrored, and the ResNet descriptor
//! of dlib's chip), so that training the head, choosing the combination and writing teacher logits
//! never run the chain again.
//!
//! `descriptors.csv`: `photo,status,student_<k>...,student_mirror_<k>...,d0..d127`, `photo` the
//! `class/stem` key of `split.csv` and `labels.csv`; `status` is `ok`, `no_face` or
//! `unreadable` (numbers empty then). Rows are appended in chunks, each synced, so an interrupted
//! run resumes where it stopped; a cut last line is dropped on resume. `describe.json` beside it
//! names the models the rows came from, and a resume with other models is refused.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use facegender_core::ert::Point;
use facegender_descriptor::{DESCRIPTOR_LEN, FaceNet};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classify::Classifier;
use crate::dataset::crop_key;
use crate::decode::{Limits, decode_file};
use crate::detect::DEFAULT_THRESHOLD;
use crate::error::Context;
use crate::preprocess::{Models, faces_with_landmarks};
use crate::{fsutil, progress};

/// The cache's file names in its folder.
pub const ROWS: &str = "descriptors.csv";
pub const INFO: &str = "describe.json";

/// Which models the rows came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    pub classes: Vec<String>,
    /// sha256 of the student's `model.fgi8`.
    pub student_sha256: String,
    /// sha256 of dlib's ResNet file.
    pub resnet_sha256: String,
}

/// One photo.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub photo: String,
    pub status: String,
    pub student: Vec<f32>,
    pub student_mirror: Vec<f32>,
    pub descriptor: Vec<f32>,
}

impl Row {
    /// The class: the key's first component.
    pub fn class(&self) -> &str {
        self.photo.split('/').next().unwrap_or_default()
    }

    fn failed(photo: String, status: &str) -> Self {
        Self {
            photo,
            status: status.into(),
            student: Vec::new(),
            student_mirror: Vec::new(),
            descriptor: Vec::new(),
        }
    }

    fn line(&self, classes: usize) -> String {
        let mut fields = vec![self.photo.clone(), self.status.clone()];
        let n = 2 * classes + DESCRIPTOR_LEN;
        if self.status == "ok" {
            let all = self
                .student
                .iter()
                .chain(&self.student_mirror)
                .chain(&self.descriptor);
            fields.extend(all.map(|v| format!("{v:e}")));
        } else {
            fields.extend(std::iter::repeat_n(String::new(), n));
        }
        let mut l = fields.join(",");
        l.push('\n');
        l
    }

    fn parse(line: &str, classes: usize) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 2 + 2 * classes + DESCRIPTOR_LEN || f[0].is_empty() {
            return None;
        }
        if f[1] != "ok" {
            return Some(Self::failed(f[0].into(), f[1]));
        }
        let v: Vec<f32> = f[2..]
            .iter()
            .map(|s| s.parse().ok())
            .collect::<Option<_>>()?;
        Some(Self {
            photo: f[0].into(),
            status: "ok".into(),
            student: v[..classes].to_vec(),
            student_mirror: v[classes..2 * classes].to_vec(),
            descriptor: v[2 * classes..].to_vec(),
        })
    }
}

fn header(classes: usize) -> String {
    let mut h = vec!["photo".to_string(), "status".into()];
    h.extend((0..classes).map(|k| format!("student_{k}")));
    h.extend((0..classes).map(|k| format!("student_mirror_{k}")));
    h.extend((0..DESCRIPTOR_LEN).map(|k| format!("d{k}")));
    h.join(",") + "\n"
}

/// Reads a cache folder: its models and rows.
pub fn read(dir: &Path) -> crate::Result<(CacheInfo, Vec<Row>)> {
    let info_path = dir.join(INFO);
    let text = std::fs::read_to_string(&info_path).with_context(|| {
        format!(
            "reading {} (run facegender describe first)",
            info_path.display()
        )
    })?;
    let info: CacheInfo =
        serde_json::from_str(&text).with_context(|| format!("reading {}", info_path.display()))?;
    let (rows, _) = read_rows(&dir.join(ROWS), info.classes.len())?;
    Ok((info, rows))
}

/// The rows of a cache file, and whether its last line was cut (an interrupted run).
fn read_rows(path: &Path, classes: usize) -> crate::Result<(Vec<Row>, bool)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => {
            return Err(crate::Error::from(e))
                .with_context(|| format!("reading {}", path.display()));
        }
    };
    let cut = !text.is_empty() && !text.ends_with('\n');
    let mut lines = text.lines();
    if let Some(h) = lines.next() {
        crate::ensure!(
            h.to_string() + "\n" == header(classes),
            "{}: not a descriptor cache for {classes} classes",
            path.display()
        );
    }
    let whole: Vec<&str> = lines.collect();
    let keep = if cut {
        whole.len().saturating_sub(1)
    } else {
        whole.len()
    };
    let mut rows = Vec::with_capacity(keep);
    for (i, l) in whole[..keep].iter().enumerate() {
        let r = Row::parse(l, classes).ok_or_else(|| {
            crate::invalid!("{}: line {} is not a cache row", path.display(), i + 2)
        })?;
        rows.push(r);
    }
    Ok((rows, cut))
}

/// What `describe` needs.
pub struct Describe<'a> {
    pub models: &'a Models<'a>,
    pub student: &'a Classifier<'a>,
    pub net: &'a FaceNet,
    pub info: CacheInfo,
}

/// One photo through the chain: the largest face's student logits and descriptor.
pub fn describe_photo(d: &Describe<'_>, photo: String, path: &Path) -> Row {
    let img = match decode_file(path, &Limits::default()) {
        Ok(img) => img,
        Err(_) => return Row::failed(photo, "unreadable"),
    };
    match faces_with_landmarks(d.models, &img, DEFAULT_THRESHOLD, None) {
        Ok(faces) => match faces.first() {
            Some(f) => match face_row(d, &img, &f.landmarks) {
                Ok((student, student_mirror, descriptor)) => Row {
                    photo,
                    status: "ok".into(),
                    student,
                    student_mirror,
                    descriptor,
                },
                Err(_) => Row::failed(photo, "unreadable"),
            },
            None => Row::failed(photo, "no_face"),
        },
        Err(_) => Row::failed(photo, "unreadable"),
    }
}

type FaceFigures = (Vec<f32>, Vec<f32>, Vec<f32>);

fn face_row(d: &Describe<'_>, img: &RgbImage, landmarks: &[Point]) -> crate::Result<FaceFigures> {
    let (plain, mirror) = super::student_logits(d.student, img, landmarks)?;
    let descriptor = super::descriptor(d.net, img, landmarks)?;
    Ok((plain, mirror, descriptor.to_vec()))
}

/// How a `describe` run went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub photos: usize,
    pub already_cached: usize,
    pub described: usize,
    pub no_face: usize,
    pub unreadable: usize,
}

/// Describes every photo of `inputs` (`(key, path)`) not yet in the cache folder `dir`, in
/// chunks appended and synced one by one.
pub fn describe_all(
    d: &Describe<'_>,
    inputs: &[(String, PathBuf)],
    dir: &Path,
    show_progress: bool,
) -> crate::Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let info_path = dir.join(INFO);
    match std::fs::read_to_string(&info_path) {
        Ok(text) => {
            let before: CacheInfo = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", info_path.display()))?;
            crate::ensure!(
                before == d.info,
                "{} was made with other models ({before:?}); describe into a new folder",
                dir.display()
            );
        }
        Err(_) => fsutil::write_replace(&info_path, &serde_json::to_vec_pretty(&d.info)?)?,
    }
    let classes = d.info.classes.len();
    let rows_path = dir.join(ROWS);
    let (rows, cut) = read_rows(&rows_path, classes)?;
    if cut || !rows_path.exists() {
        // rewrite without the cut line (atomically), or start the file with its header
        let text: String = std::iter::once(header(classes))
            .chain(rows.iter().map(|r| r.line(classes)))
            .collect();
        fsutil::write_replace(&rows_path, text.as_bytes())?;
    }
    let done: HashSet<&str> = rows.iter().map(|r| r.photo.as_str()).collect();
    let todo: Vec<&(String, PathBuf)> = inputs
        .iter()
        .filter(|(k, _)| !done.contains(k.as_str()))
        .collect();
    let mut s = Summary {
        photos: inputs.len(),
        already_cached: inputs.len() - todo.len(),
        ..Default::default()
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&rows_path)
        .with_context(|| format!("opening {}", rows_path.display()))?;
    let bar = progress::bar(todo.len(), show_progress);
    bar.set_message("describing");
    for chunk in todo.chunks(256) {
        let new: Vec<Row> = chunk
            .par_iter()
            .map(|(k, p)| describe_photo(d, k.clone(), p))
            .collect();
        let text: String = new.iter().map(|r| r.line(classes)).collect();
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        for r in &new {
            match r.status.as_str() {
                "ok" => s.described += 1,
                "no_face" => s.no_face += 1,
                _ => s.unreadable += 1,
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(s)
}

/// `(class/stem, path)` of every photo under each `root/<class>/`; a key found twice is refused.
pub fn photo_keys(roots: &[PathBuf]) -> crate::Result<Vec<(String, PathBuf)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for root in roots {
        for it in crate::dataset::list(root)? {
            let key = crop_key(&format!("{}/{}", it.class, it.rel));
            crate::ensure!(
                seen.insert(key.clone()),
                "{} appears twice among the inputs ({})",
                key,
                it.path.display()
            );
            out.push((key, it.path));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(photo: &str) -> Row {
        Row {
            photo: photo.into(),
            status: "ok".into(),
            student: vec![1.5, -0.25],
            student_mirror: vec![1.0, 0.0],
            descriptor: (0..DESCRIPTOR_LEN).map(|i| i as f32 / 7.0).collect(),
        }
    }

    #[test]
    fn rows_survive_a_round_trip_and_a_cut_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ROWS);
        let mut text =
            header(2) + &row("male/1").line(2) + &Row::failed("female/2".into(), "no_face").line(2);
        std::fs::write(&p, &text).unwrap();
        let (rows, cut) = read_rows(&p, 2).unwrap();
        assert!(!cut);
        assert_eq!(
            rows,
            vec![row("male/1"), Row::failed("female/2".into(), "no_face")]
        );
        text.push_str("male/3,ok,1.0,2");
        std::fs::write(&p, &text).unwrap();
        let (rows, cut) = read_rows(&p, 2).unwrap();
        assert!(cut);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_file_of_another_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ROWS);
        std::fs::write(&p, header(3) + &row("male/1").line(2)).unwrap();
        assert!(read_rows(&p, 2).is_err());
        std::fs::write(&p, header(2) + "male/1,ok,1,2\n").unwrap();
        assert!(read_rows(&p, 2).is_err());
    }
}
