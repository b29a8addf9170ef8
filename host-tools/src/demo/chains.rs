//! Steps 1 and 2 of the demo: the shipped model through the host chain and through the device
//! chain on the same photos and scenes, scored as `eval-chain` scores, with the contact sheet,
//! and the `full_chain` firmware in QEMU against the host.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::dataset::{self, Item};
use facegender_pipeline::detect::DEFAULT_THRESHOLD;
use facegender_pipeline::predict::{self, DeviceModels, ImageResult};
use facegender_pipeline::sheet::{self, Cell};
use facegender_pipeline::{decode, eval, fsutil, progress};
use facegender_qemu::parity::{self, ChainCheck};
use rayon::prelude::*;
use serde::Serialize;

use super::context::{CONTACT_SHEET, Inputs, Log, millions};

/// The labelled photos and the scenes the two chains run on.
pub struct Photos {
    pub items: Vec<Item>,
    pub scenes: Vec<Scene>,
    pub scene_paths: Vec<PathBuf>,
}

impl Photos {
    pub fn load(inputs: &Inputs<'_>) -> anyhow::Result<Self> {
        let items = dataset::list(inputs.photos)?;
        anyhow::ensure!(
            !items.is_empty(),
            "no labelled photos in {}",
            inputs.photos.display()
        );
        let (scenes, scene_paths) = match inputs.scenes {
            Some(d) => {
                let scenes = read_scenes(&d.join("scenes.csv"))?;
                let paths = scenes.iter().map(|s| d.join(&s.file)).collect();
                (scenes, paths)
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            items,
            scenes,
            scene_paths,
        })
    }

    /// The labelled photos, then the scenes.
    fn all(&self) -> Vec<&Path> {
        let photos = self.items.iter().map(|it| it.path.as_path());
        photos
            .chain(self.scene_paths.iter().map(PathBuf::as_path))
            .collect()
    }
}

/// What step 1 found.
pub struct HostRun {
    pub score: ChainScore,
    pub results: Vec<ImageResult>,
    pub contact_sheet: PathBuf,
}

/// What step 2 found.
pub struct DeviceRun {
    pub score: ChainScore,
    /// Photos where both chains give the largest face the same label.
    pub same_label: usize,
    pub qemu: ChainCheck,
}

/// As `eval-chain` scores: every face labelled with its top class.
const SCORING: predict::Config = predict::Config {
    threshold: DEFAULT_THRESHOLD,
    min_face: 0.0,
    min_probability: 0.0,
    mirror: false,
};

/// Step 1: the shipped model through `predict` (the host chain), and the contact sheet.
pub fn host_chain(
    inputs: &Inputs<'_>,
    photos: &Photos,
    shipped: &Path,
    classifier: &Classifier<'_>,
    log: &mut Log,
) -> anyhow::Result<HostRun> {
    let (items, scenes) = (&photos.items, &photos.scenes);
    log.say(format!(
        "1. The shipped model ({}) on {} {} and {} scenes",
        shipped.display(),
        items.len(),
        if inputs.held_out {
            "held-out photos (not one was in its training split)"
        } else {
            "labelled photos (yours: the model may have trained on some of them)"
        },
        scenes.len()
    ));
    let results = predict_all(&photos.all(), inputs.progress, |p| {
        predict::predict_image(
            inputs.models,
            classifier,
            None,
            &SCORING,
            predict::Photo::Path(p),
            None,
        )
    });
    let score = score_chain(inputs, photos, &results, "predict-host.jsonl")?;
    log.say(chain_lines("host chain", &score));
    let contact_sheet = inputs.workdir.join(CONTACT_SHEET);
    let (host_photos, host_scenes) = results.split_at(items.len());
    write_sheet(
        &contact_sheet,
        items,
        host_photos,
        scenes,
        host_scenes,
        &photos.scene_paths,
    )?;
    log.say(format!(
        "   contact sheet (boxes, labels, probabilities; green frame right, red wrong): {}",
        contact_sheet.display()
    ));
    Ok(HostRun {
        score,
        results,
        contact_sheet,
    })
}

/// Step 2: the device chain on the same photos, and the firmware in QEMU against the host.
pub fn device_chain(
    inputs: &Inputs<'_>,
    photos: &Photos,
    shipped: &Path,
    classifier: &Classifier<'_>,
    host: &HostRun,
    log: &mut Log,
) -> anyhow::Result<DeviceRun> {
    log.say(
        "2. The device chain (int8 BlazeFace, keypoint alignment, the int8 classifier) on the same photos",
    );
    let device = DeviceModels::load(&inputs.models_dir.join("blazeface-int8"), shipped)?;
    let results = predict_all(&photos.all(), inputs.progress, |p| {
        predict::predict_device(&device, classifier, &SCORING, predict::Photo::Path(p), None)
    });
    let score = score_chain(inputs, photos, &results, "predict-device.jsonl")?;
    let n = photos.items.len();
    let same_label = host.results[..n]
        .iter()
        .zip(&results[..n])
        .filter(|(h, d)| predict::main_label(h) == predict::main_label(d))
        .count();
    log.say(chain_lines("device chain", &score));
    log.say(format!(
        "   the two chains give the same label on {same_label} of {n} photos"
    ));
    let qemu = parity::check_chain(shipped, inputs.models_dir)?;
    let per_frame: Vec<String> = qemu
        .frame_instructions()
        .iter()
        .map(|(name, n)| format!("{name} {}", millions(*n)))
        .collect();
    log.say(format!(
        "   firmware in QEMU (Cortex-M4F, mps2-an386), whole chain on its {} embedded frames: {}/{} faces equal to the host bit for bit (box, score, keypoints, int8 logits, label); instructions per frame with one face: {} (detection is one detector run, or two when the frame is tried again with a margin; align {}, classify {} per face); flash {} B, RAM {} B",
        qemu.frames,
        qemu.equal,
        qemu.total,
        per_frame.join(", "),
        millions(qemu.align_instructions),
        millions(qemu.classify_instructions),
        qemu.flash_bytes(),
        qemu.ram_bytes()
    ));
    anyhow::ensure!(
        qemu.total > 0 && qemu.equal == qemu.total,
        "the firmware and the host disagree on {} of {} faces:\n{}",
        qemu.total - qemu.equal,
        qemu.total,
        qemu.lines.join("\n")
    );
    Ok(DeviceRun {
        score,
        same_label,
        qemu,
    })
}

/// A chain's results on the photos then the scenes, scored; its predictions go to `file` in
/// the work folder.
fn score_chain(
    inputs: &Inputs<'_>,
    photos: &Photos,
    results: &[ImageResult],
    file: &str,
) -> anyhow::Result<ChainScore> {
    let (on_photos, on_scenes) = results.split_at(photos.items.len());
    score(
        on_photos,
        &photos.items,
        inputs.scenes.map(|_| (&photos.scenes[..], on_scenes)),
        inputs.workdir.join(file),
    )
}

/// Photos per class on the contact sheet (the scenes follow them).
const SHEET_PER_CLASS: usize = 12;

/// Accuracy of one chain on the labelled photos, scored as `eval-chain` scores them: the label
/// of each photo's largest face against its folder; a photo without a face counts as wrong.
#[derive(Clone, Debug, Serialize)]
pub struct ChainScore {
    pub photos: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub accuracy_ci95: (f64, f64),
    /// Photos in which at least one face was found.
    pub face_found: usize,
    pub scenes: Option<ScenesScore>,
    /// Predictions, one JSON object per photo.
    pub predictions: PathBuf,
}

/// The scenes: faces found against faces there, and the labelled faces labelled right.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenesScore {
    pub photos: usize,
    pub faces_expected: usize,
    pub faces_found: usize,
    /// Photos where the number of faces found is the number there.
    pub photos_with_the_right_count: usize,
    pub labelled_faces: usize,
    pub labelled_faces_right: usize,
}

/// One scene of `scenes.csv`: its file, the faces in it, and the labelled ones with a point
/// inside each.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    pub file: String,
    pub faces: usize,
    pub labelled: Vec<(String, [f32; 2])>,
}

/// Reads `scenes.csv` (`file,faces,labelled,sources`; `labelled` is `label@x:y ...`).
pub fn read_scenes(path: &Path) -> anyhow::Result<Vec<Scene>> {
    let mut r = csv::Reader::from_path(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), i + 2))?;
        let bad = || format!("{} row {}: {:?}", path.display(), i + 2, row);
        let file = row.get(0).with_context(bad)?.to_string();
        let faces = row.get(1).with_context(bad)?.parse().with_context(bad)?;
        let mut labelled = Vec::new();
        for l in row.get(2).unwrap_or("").split_whitespace() {
            let (label, at) = l.split_once('@').with_context(bad)?;
            let (x, y) = at.split_once(':').with_context(bad)?;
            labelled.push((
                label.to_string(),
                [x.parse().with_context(bad)?, y.parse().with_context(bad)?],
            ));
        }
        anyhow::ensure!(labelled.len() <= faces, "{}: more labels than faces", bad());
        out.push(Scene {
            file,
            faces,
            labelled,
        });
    }
    Ok(out)
}

/// Scores a scene: (faces found, labelled faces right). A labelled face is right when the
/// smallest found box holding its point carries its label.
pub fn score_scene(s: &Scene, r: &ImageResult) -> (usize, usize) {
    let right = s
        .labelled
        .iter()
        .filter(|(label, [x, y])| {
            r.faces
                .iter()
                .filter(|f| {
                    f.bbox[0] <= *x && *x <= f.bbox[2] && f.bbox[1] <= *y && *y <= f.bbox[3]
                })
                .min_by(|a, b| area(a.bbox).total_cmp(&area(b.bbox)))
                .is_some_and(|f| f.label.as_deref() == Some(label.as_str()))
        })
        .count();
    (r.faces.len(), right)
}

fn area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

fn score(
    results: &[ImageResult],
    items: &[Item],
    scenes: Option<(&[Scene], &[ImageResult])>,
    predictions: PathBuf,
) -> anyhow::Result<ChainScore> {
    let correct = results
        .iter()
        .zip(items)
        .filter(|(r, it)| predict::main_label(r) == Some(it.class.as_str()))
        .count();
    let photos = results.len();
    let scene_results = scenes.map_or(&[][..], |(_, rs)| rs);
    let scenes = scenes.map(|(ss, rs)| {
        let mut t = ScenesScore {
            photos: ss.len(),
            ..Default::default()
        };
        for (s, r) in ss.iter().zip(rs) {
            let (found, right) = score_scene(s, r);
            t.faces_expected += s.faces;
            t.faces_found += found;
            t.photos_with_the_right_count += (found == s.faces) as usize;
            t.labelled_faces += s.labelled.len();
            t.labelled_faces_right += right;
        }
        t
    });
    let mut jsonl = Vec::new();
    for r in results.iter().chain(scene_results) {
        serde_json::to_writer(&mut jsonl, r)?;
        jsonl.push(b'\n');
    }
    fsutil::write_replace(&predictions, &jsonl)?;
    Ok(ChainScore {
        photos,
        correct,
        accuracy: correct as f64 / photos.max(1) as f64,
        accuracy_ci95: eval::wilson95(correct, photos),
        face_found: results.iter().filter(|r| !r.faces.is_empty()).count(),
        scenes,
        predictions,
    })
}

/// One chain over every photo, in parallel, with a progress bar when `progress`.
fn predict_all(
    paths: &[&Path],
    progress: bool,
    chain: impl Fn(&Path) -> ImageResult + Sync,
) -> Vec<ImageResult> {
    let bar = progress::bar(paths.len(), progress);
    let out = paths
        .par_iter()
        .map(|p| {
            bar.inc(1);
            chain(p)
        })
        .collect();
    bar.finish_and_clear();
    out
}

fn chain_lines(name: &str, s: &ChainScore) -> String {
    let mut out = format!(
        "   {name}: accuracy {:.1} % ({} of {}; 95 % interval {:.1}-{:.1} %), a face found in {} of {} photos",
        100.0 * s.accuracy,
        s.correct,
        s.photos,
        100.0 * s.accuracy_ci95.0,
        100.0 * s.accuracy_ci95.1,
        s.face_found,
        s.photos
    );
    if let Some(t) = &s.scenes {
        let _ = write!(
            out,
            "\n   {name}, scenes: {} faces found where there are {} (right count in {} of {} photos), {} of {} labelled faces right",
            t.faces_found,
            t.faces_expected,
            t.photos_with_the_right_count,
            t.photos,
            t.labelled_faces_right,
            t.labelled_faces
        );
    }
    out
}

/// The first photos of each class and every scene, annotated, on one sheet.
fn write_sheet(
    path: &Path,
    items: &[Item],
    results: &[ImageResult],
    scenes: &[Scene],
    scene_results: &[ImageResult],
    scene_paths: &[PathBuf],
) -> anyhow::Result<()> {
    let mut per_class = std::collections::BTreeMap::<&str, usize>::new();
    let mut cells = Vec::new();
    for (it, r) in items.iter().zip(results) {
        let n = per_class.entry(it.class.as_str()).or_insert(0);
        if *n >= SHEET_PER_CLASS {
            continue;
        }
        *n += 1;
        let img = decode::decode_file(&it.path, &Default::default())?;
        let said = match predict::main_face(r) {
            Some(f) => format!(
                "{} {:.0}%",
                f.label.as_deref().unwrap_or(f.status),
                100.0 * f.probability.unwrap_or(0.0)
            ),
            None => "no face".into(),
        };
        cells.push(Cell {
            image: predict::draw(&img, r)?,
            caption: format!("{} -> {said}", it.class),
            right: Some(predict::main_label(r) == Some(it.class.as_str())),
        });
    }
    for ((s, r), p) in scenes.iter().zip(scene_results).zip(scene_paths) {
        let img = decode::decode_file(p, &Default::default())?;
        let (found, right) = score_scene(s, r);
        cells.push(Cell {
            image: predict::draw(&img, r)?,
            caption: format!("{found} of {} faces found", s.faces),
            right: Some(found == s.faces && right == s.labelled.len()),
        });
    }
    let img = sheet::grid(&cells, 6, 160)?;
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 85).encode_image(&img)?;
    Ok(fsutil::write_replace(path, &jpg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(bbox: [f32; 4], label: &str) -> predict::FaceResult {
        predict::FaceResult {
            face: 0,
            bbox,
            score: 0.9,
            status: "ok",
            label: Some(label.into()),
            probability: Some(0.9),
            logits: None,
            head_logits: None,
            combined_logits: None,
            keypoints: None,
            landmarks: Vec::new(),
        }
    }

    #[test]
    fn the_bundled_scenes_file_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/scenes");
        let s = read_scenes(&dir.join("scenes.csv")).unwrap();
        assert!(s.iter().any(|s| s.faces == 0) && s.iter().any(|s| s.faces >= 2));
        for s in &s {
            assert!(dir.join(&s.file).is_file(), "{}", s.file);
        }
        assert_eq!(
            s[0].labelled[1],
            ("male".to_string(), [272.0, 96.0]),
            "label@x:y"
        );
    }

    #[test]
    fn a_labelled_face_is_scored_by_the_smallest_box_holding_its_point() {
        let scene = Scene {
            file: String::new(),
            faces: 2,
            labelled: vec![
                ("female".into(), [50.0, 50.0]),
                ("male".into(), [150.0, 50.0]),
            ],
        };
        let r = ImageResult {
            image: PathBuf::new(),
            status: "ok",
            error: None,
            // a big false box over both, and the right small one for the first face only
            faces: vec![
                face([0.0, 0.0, 200.0, 100.0], "male"),
                face([30.0, 30.0, 70.0, 70.0], "female"),
            ],
        };
        assert_eq!(score_scene(&scene, &r), (2, 2));
        let none = ImageResult {
            faces: Vec::new(),
            ..r
        };
        assert_eq!(score_scene(&scene, &none), (0, 0));
    }
}
