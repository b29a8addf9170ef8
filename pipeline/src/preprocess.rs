//! `facegender preprocess`: labelled photos in, aligned face crops out, on all cores.
//!
//! For every image under `INPUT/<class>/`: decode, detect (BlazeFace), map the box to dlib's,
//! find 68 landmarks, align, crop, and write `OUTPUT/<class>/<same relative path>.png`
//! atomically. Each finished image appends one line to `OUTPUT/preprocess.jsonl`; a re-run
//! skips what that journal (or an existing crop) says is done, so an interrupted run resumes.
//! At the end `OUTPUT/preprocess-report.json` holds every image's status and the totals.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use facegender_core::ert::{Rect, ShapePredictor};
use image::{ImageEncoder, RgbImage};
use indicatif::ParallelProgressIterator;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::align::{self, AlignMethod};
use crate::detect::{BlazeFace, Detector, Face, Variant};
use crate::error::Context;
use crate::landmarks::{self, BoxMap, LandmarkModel};
use crate::{fsutil, progress};

/// What to do with photos holding more than one face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MultiFace {
    /// Crop the largest face.
    Largest,
    /// Skip the photo (status `multiple_faces`).
    Skip,
}

/// Validated settings.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub input: PathBuf,
    pub output: PathBuf,
    pub crop: u32,
    pub align: AlignMethod,
    pub scale: f64,
    pub jobs: usize,
    pub multi: MultiFace,
    pub threshold: f32,
    /// Faces narrower than this many photo pixels are skipped as `too_small`.
    pub min_face: f32,
    pub progress: bool,
}

/// Outcome of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    NoFace,
    MultipleFaces,
    TooSmall,
    Unreadable,
    AlignFailed,
    WriteFailed,
}

/// One journal / report line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the input folder, with `/` separators.
    pub path: String,
    pub class: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub faces: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f32>,
    /// Detector box x0, y0, x1, y1 in photo pixels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bbox: Option<[f32; 4]>,
    /// The dlib-style box the landmarks were computed in (left, top, right, bottom).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dlib_box: Option<[i32; 4]>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub landmarks: Option<Vec<[i32; 2]>>,
    /// Crop path relative to the output folder.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crop: Option<String>,
}

impl Entry {
    /// An entry not yet processed (status `ok` until a stage fails).
    fn new(path: String, class: String) -> Self {
        Self {
            path,
            class,
            status: Status::Ok,
            reason: None,
            faces: 0,
            score: None,
            bbox: None,
            dlib_box: None,
            landmarks: None,
            crop: None,
        }
    }
}

/// Time spent per stage, summed over all images (nanoseconds).
#[derive(Default)]
struct StageTimes {
    decode: AtomicU64,
    detect: AtomicU64,
    landmarks: AtomicU64,
    align: AtomicU64,
    encode: AtomicU64,
}

impl StageTimes {
    fn add(&self, stage: &AtomicU64, since: Instant) -> Instant {
        stage.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Instant::now()
    }

    fn millis(&self) -> BTreeMap<&'static str, f64> {
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        BTreeMap::from([
            ("decode", ms(&self.decode)),
            ("detect", ms(&self.detect)),
            ("landmarks", ms(&self.landmarks)),
            ("align", ms(&self.align)),
            ("encode", ms(&self.encode)),
        ])
    }
}

/// The report written at the end.
#[derive(Serialize)]
pub struct Report {
    pub config: Config,
    pub images: usize,
    pub processed_now: usize,
    pub resumed: usize,
    pub by_status: BTreeMap<Status, usize>,
    pub by_class: BTreeMap<String, BTreeMap<Status, usize>>,
    /// Share of readable images where a face was found.
    pub face_found_rate: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Summed single-thread milliseconds per stage for the images processed in this run.
    pub stage_ms: BTreeMap<&'static str, f64>,
    pub entries: Vec<Entry>,
}

/// The models the pipeline needs, loaded once and shared by all threads.
pub struct Models<'a> {
    pub detector: &'a dyn Detector,
    pub landmarks: ShapePredictor<'a>,
    pub box_map: BoxMap,
}

/// The host chain's model files, loaded: a BlazeFace variant and dlib's landmark model. Every
/// command that runs the host chain starts here; [`HostModels::models`] lends them out.
pub struct HostModels {
    pub detector: BlazeFace,
    pub landmarks: LandmarkModel,
}

impl HostModels {
    pub fn load(models_dir: &Path, dlib: &Path, variant: Variant) -> crate::Result<Self> {
        Ok(Self {
            detector: BlazeFace::load(models_dir, variant)?,
            landmarks: LandmarkModel::load(dlib)?,
        })
    }

    /// The models, with the box map fitted for BlazeFace front.
    pub fn models(&self) -> crate::Result<Models<'_>> {
        Ok(Models {
            detector: &self.detector,
            landmarks: self.landmarks.predictor()?,
            box_map: BoxMap::FITTED,
        })
    }
}

/// Faces found in a photo with their landmarks, largest first.
pub struct FaceLandmarks {
    pub face: Face,
    pub rect: Rect,
    pub landmarks: Vec<facegender_core::ert::Point>,
}

/// Detect every face above `threshold` and find its landmarks; largest face first.
pub fn faces_with_landmarks(
    m: &Models<'_>,
    img: &RgbImage,
    threshold: f32,
    grey: Option<&[u8]>,
) -> crate::Result<Vec<FaceLandmarks>> {
    let mut faces = m.detector.detect(img, threshold)?;
    faces.sort_by(|a, b| (b.width() * b.height()).total_cmp(&(a.width() * a.height())));
    let owned;
    let grey = match grey {
        Some(g) => g,
        None => {
            owned = landmarks::intensity(img);
            &owned
        }
    };
    faces
        .into_iter()
        .map(|face| {
            let rect = m.box_map.rect(&face);
            let landmarks =
                landmarks::predict(&m.landmarks, grey, img.width(), img.height(), rect)?;
            Ok(FaceLandmarks {
                face,
                rect,
                landmarks,
            })
        })
        .collect()
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What `preprocess` does to one photo before writing: which face, how it is aligned and cropped.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CropSettings {
    pub crop: u32,
    pub align: AlignMethod,
    pub scale: f64,
    pub multi: MultiFace,
    pub threshold: f32,
    pub min_face: f32,
}

impl Config {
    pub fn crop_settings(&self) -> CropSettings {
        CropSettings {
            crop: self.crop,
            align: self.align,
            scale: self.scale,
            multi: self.multi,
            threshold: self.threshold,
            min_face: self.min_face,
        }
    }
}

/// The aligned crop of a photo's largest face, and its report entry (status and reason, faces,
/// box, landmarks; `path` is the photo's name, `class` empty). `preprocess` writes this crop; the
/// Python package's `crops` returns it.
pub fn crop_photo(
    m: &Models<'_>,
    s: &CropSettings,
    photo: crate::decode::Photo<'_>,
) -> (Option<RgbImage>, Entry) {
    let mut e = Entry::new(photo.name().to_string_lossy().into_owned(), String::new());
    let crop = crop_timed(m, s, photo, &StageTimes::default(), &mut e);
    (crop, e)
}

/// [`crop_photo`], with each stage's time added to `times`.
fn crop_timed(
    m: &Models<'_>,
    s: &CropSettings,
    photo: crate::decode::Photo<'_>,
    times: &StageTimes,
    e: &mut Entry,
) -> Option<RgbImage> {
    let fail = |e: &mut Entry, st: Status, why: String| {
        e.status = st;
        e.reason = Some(why);
        None
    };
    let t = Instant::now();
    let img = match photo.decode() {
        Ok(i) => i,
        Err(err) => return fail(e, Status::Unreadable, format!("{}: {err}", err.reason())),
    };
    let t = times.add(&times.decode, t);
    let faces = match m.detector.detect(&img, s.threshold) {
        Ok(f) => f,
        Err(err) => return fail(e, Status::Unreadable, format!("detector: {err}")),
    };
    let t = times.add(&times.detect, t);
    e.faces = faces.len();
    let Some(face) = faces
        .iter()
        .copied()
        .max_by(|a, b| (a.width() * a.height()).total_cmp(&(b.width() * b.height())))
    else {
        return fail(
            e,
            Status::NoFace,
            "no face above the score threshold".into(),
        );
    };
    e.score = Some(face.score);
    e.bbox = Some(face.bbox);
    if faces.len() > 1 && s.multi == MultiFace::Skip {
        return fail(e, Status::MultipleFaces, format!("{} faces", faces.len()));
    }
    if face.width() < s.min_face {
        return fail(
            e,
            Status::TooSmall,
            format!("face {:.0} px wide, minimum {}", face.width(), s.min_face),
        );
    }
    let rect = m.box_map.rect(&face);
    e.dlib_box = Some([rect.left, rect.top, rect.right, rect.bottom]);
    let grey = landmarks::intensity(&img);
    let pts = match landmarks::predict(&m.landmarks, &grey, img.width(), img.height(), rect) {
        Ok(p) => p,
        Err(err) => return fail(e, Status::AlignFailed, err.to_string()),
    };
    e.landmarks = Some(pts.iter().map(|p| [p.x, p.y]).collect());
    let t = times.add(&times.landmarks, t);
    let crop = match align::transform(&pts, s.align, s.crop, s.scale)
        .and_then(|a| align::crop(&img, &a, s.crop))
    {
        Ok(c) => c,
        Err(err) => return fail(e, Status::AlignFailed, err.to_string()),
    };
    times.add(&times.align, t);
    Some(crop)
}

fn process_one(
    m: &Models<'_>,
    cfg: &Config,
    times: &StageTimes,
    class: &str,
    input: &Path,
    rel: &str,
) -> Entry {
    let mut e = Entry::new(rel.to_string(), class.to_string());
    let fail = |mut e: Entry, s: Status, why: String| {
        e.status = s;
        e.reason = Some(why);
        e
    };
    let photo = crate::decode::Photo::Path(input);
    let Some(crop) = crop_timed(m, &cfg.crop_settings(), photo, times, &mut e) else {
        return e;
    };
    let t = Instant::now();
    let out_rel = Path::new(class).join(Path::new(rel).with_extension("png"));
    let mut png = Vec::new();
    if let Err(err) = image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        crop.as_raw(),
        crop.width(),
        crop.height(),
        image::ExtendedColorType::Rgb8,
    ) {
        return fail(e, Status::WriteFailed, err.to_string());
    }
    match fsutil::write_new(&cfg.output.join(&out_rel), &png) {
        Ok(_) => {}
        Err(err) => return fail(e, Status::WriteFailed, err.to_string()),
    }
    times.add(&times.encode, t);
    e.crop = Some(rel_string(&out_rel));
    e
}

/// Reads the journal of an earlier run (unparsable lines, e.g. one cut by a kill, are ignored).
fn read_journal(path: &Path) -> HashMap<(String, String), Entry> {
    let Ok(f) = std::fs::File::open(path) else {
        return HashMap::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Entry>(&l).ok())
        .map(|e| ((e.class.clone(), e.path.clone()), e))
        .collect()
}

/// Runs the whole command.
pub fn run(cfg: &Config, m: &Models<'_>) -> crate::Result<Report> {
    let started = Instant::now();
    crate::ensure!(
        cfg.input.is_dir(),
        "input folder {} does not exist",
        cfg.input.display()
    );
    let classes = fsutil::class_dirs(&cfg.input)
        .with_context(|| format!("reading {}", cfg.input.display()))?;
    crate::ensure!(
        !classes.is_empty(),
        "{} has no class sub-folders (expected e.g. male/ and female/)",
        cfg.input.display()
    );
    std::fs::create_dir_all(&cfg.output)
        .with_context(|| format!("creating {}", cfg.output.display()))?;

    let mut todo = Vec::new();
    for (class, dir) in &classes {
        for f in fsutil::image_files(dir).with_context(|| format!("reading {}", dir.display()))? {
            let rel = rel_string(f.strip_prefix(dir).unwrap_or(&f));
            todo.push((class.clone(), f, rel));
        }
        fsutil::remove_stale_temps(&cfg.output.join(class));
    }
    let journal_path = cfg.output.join("preprocess.jsonl");
    let done = read_journal(&journal_path);
    let total = todo.len();
    let (resumed, todo): (Vec<_>, Vec<_>) = todo.into_iter().partition(|(class, _, rel)| {
        done.get(&(class.clone(), rel.clone())).is_some_and(|e| {
            e.status != Status::Ok
                || e.crop
                    .as_ref()
                    .is_some_and(|c| cfg.output.join(c).is_file())
        })
    });
    let journal = Mutex::new(std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .with_context(|| format!("opening {}", journal_path.display()))?,
    ));
    let times = StageTimes::default();
    let bar = progress::styled(
        todo.len(),
        cfg.progress,
        "{spinner} preprocess [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.jobs)
        .build()
        .map_err(|e| crate::invalid!("{e}"))?;
    let fresh: Vec<Entry> = pool.install(|| {
        todo.par_iter()
            .progress_with(bar.clone())
            .map(|(class, path, rel)| {
                let e = process_one(m, cfg, &times, class, path, rel);
                if e.status != Status::Ok {
                    bar.suspend(|| {
                        eprintln!(
                            "warning: {class}/{rel}: {:?}: {}",
                            e.status,
                            e.reason.as_deref().unwrap_or("")
                        )
                    });
                }
                let line = serde_json::to_string(&e)?;
                let mut j = journal
                    .lock()
                    .map_err(|_| crate::invalid!("journal lock poisoned"))?;
                writeln!(j, "{line}")?;
                j.flush()?;
                Ok(e)
            })
            .collect::<crate::Result<Vec<_>>>()
    })?;
    bar.finish_and_clear();

    let mut entries: Vec<Entry> = resumed
        .iter()
        .filter_map(|(class, _, rel)| done.get(&(class.clone(), rel.clone())).cloned())
        .chain(fresh.iter().cloned())
        .collect();
    entries.sort_by(|a, b| (&a.class, &a.path).cmp(&(&b.class, &b.path)));
    let mut by_status = BTreeMap::new();
    let mut by_class: BTreeMap<String, BTreeMap<Status, usize>> = BTreeMap::new();
    for e in &entries {
        *by_status.entry(e.status).or_insert(0) += 1;
        *by_class
            .entry(e.class.clone())
            .or_default()
            .entry(e.status)
            .or_insert(0) += 1;
    }
    let readable = entries
        .iter()
        .filter(|e| e.status != Status::Unreadable)
        .count();
    let found = entries.iter().filter(|e| e.faces > 0).count();
    let seconds = started.elapsed().as_secs_f64();
    let report = Report {
        config: cfg.clone(),
        images: total,
        processed_now: fresh.len(),
        resumed: resumed.len(),
        by_status,
        by_class,
        face_found_rate: found as f64 / readable.max(1) as f64,
        seconds,
        images_per_second: fresh.len() as f64 / seconds,
        stage_ms: times.millis(),
        entries,
    };
    fsutil::write_replace(
        &cfg.output.join("preprocess-report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// The terminal summary.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "preprocess: {} images ({} now, {} from an earlier run) in {:.1} s, {:.1} images/s",
        r.images, r.processed_now, r.resumed, r.seconds, r.images_per_second
    );
    let _ = writeln!(
        s,
        "face found in {:.2}% of readable images",
        100.0 * r.face_found_rate
    );
    for (class, counts) in &r.by_class {
        let parts: Vec<String> = counts
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}: {v}",
                    serde_json::to_string(k)
                        .unwrap_or_default()
                        .trim_matches('"')
                )
            })
            .collect();
        let _ = writeln!(s, "  {class:<12} {}", parts.join(", "));
    }
    if r.processed_now > 0 {
        let n = r.processed_now as f64;
        let stages: Vec<String> = r
            .stage_ms
            .iter()
            .map(|(k, v)| format!("{k} {:.2} ms", v / n))
            .collect();
        let _ = writeln!(s, "per image (one thread): {}", stages.join(", "));
    }
    let _ = write!(
        s,
        "crops in {}, report in {}",
        r.config.output.display(),
        r.config.output.join("preprocess-report.json").display()
    );
    s
}
