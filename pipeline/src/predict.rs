//! `facegender predict`: photos in, one line per face out (box, label, probability).
//!
//! The chain is the training chain: decode, BlazeFace, dlib-style box, 68 landmarks, the same
//! alignment and crop the model was trained on (recorded in `model.json`), then the int8 model in
//! `facegender-core`. With a host model ([`crate::host`]), dlib's face-recognition descriptor of
//! the same landmarks goes through the head too, and the label comes from the combined logits. Faces narrower than `--min-face` pixels are reported `too_small` and faces
//! whose top probability is below `--min-probability` are reported `uncertain`; neither gets a
//! label.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

use crate::align;
use crate::classify::Classifier;
pub use crate::decode::Photo;
use crate::detect::Int8Detector;
use crate::host::{HostModel, Weights};
use crate::model_dir::ChainInfo;
use crate::preprocess::{Models, faces_with_landmarks};

/// Settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub threshold: f32,
    pub min_face: f32,
    pub min_probability: f32,
    /// Average each face's logits with its mirror image's (twice the classification; the model
    /// card has what it is worth). The device chain leaves it off, as the firmware does.
    pub mirror: bool,
}

/// What was found for one face.
#[derive(Clone, Debug, Serialize)]
pub struct FaceResult {
    pub face: usize,
    /// x0, y0, x1, y1 in photo pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    /// `ok`, `too_small` or `uncertain`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Probability of the top class (also when uncertain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f32>,
    /// The int8 logits; with mirroring, the crop's and then its mirror image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<i8>>,
    /// Host model only: the descriptor head's logits and the combined logits the label is from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_logits: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combined_logits: Option<Vec<f32>>,
    /// BlazeFace's six keypoints in photo pixels, exactly (device chain only): right eye, left
    /// eye, nose, mouth, right ear, left ear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<[f32; 2]>>,
    #[serde(skip)]
    pub landmarks: Vec<[i32; 2]>,
}

impl FaceResult {
    /// A face as its chain found it, not yet classified.
    fn found(
        face: usize,
        bbox: [f32; 4],
        score: f32,
        keypoints: Option<Vec<[f32; 2]>>,
        landmarks: Vec<[i32; 2]>,
    ) -> Self {
        Self {
            face,
            bbox,
            score,
            status: "ok",
            label: None,
            probability: None,
            logits: None,
            head_logits: None,
            combined_logits: None,
            keypoints,
            landmarks,
        }
    }
}

/// What was found in one photo.
#[derive(Clone, Debug, Serialize)]
pub struct ImageResult {
    pub image: PathBuf,
    /// `ok`, `no_face` or `unreadable`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub faces: Vec<FaceResult>,
}

/// Runs the chain on one photo; with `host`, the host-grade classifier (student and descriptor
/// head combined).
pub fn predict_image(
    m: &Models<'_>,
    c: &Classifier<'_>,
    host: Option<&HostModel>,
    cfg: &Config,
    photo: Photo<'_>,
    annotate: Option<&Path>,
) -> ImageResult {
    label_photo(
        photo,
        annotate,
        c,
        cfg,
        |img| faces_with_landmarks(m, img, cfg.threshold, None),
        |i, f| {
            let landmarks = f.landmarks.iter().map(|p| [p.x, p.y]).collect();
            let fr = FaceResult::found(i, f.face.bbox, f.face.score, None, landmarks);
            (fr, f.face.width())
        },
        |img, f| {
            let crop = c.crop(img, &f.landmarks)?;
            let head = host
                .map(|h| Ok::<_, crate::Error>((h.info.weights, h.head_logits(img, &f.landmarks)?)))
                .transpose()?;
            Ok((crop, head))
        },
    )
}

/// A face's crop for the student, and with a host model the combination's weights and the head's
/// logits.
type Classified = (RgbImage, Option<(Weights, Vec<f32>)>);

/// What both chains do around their own detection and alignment: decode the photo (or report
/// it `unreadable`), find its faces (`find`), describe each (`describe`: its row and its width
/// for `--min-face`), classify the aligned crop (`crop`) of each face wide enough, annotate.
fn label_photo<F>(
    photo: Photo<'_>,
    annotate: Option<&Path>,
    c: &Classifier<'_>,
    cfg: &Config,
    find: impl FnOnce(&RgbImage) -> crate::Result<Vec<F>>,
    describe: impl Fn(usize, &F) -> (FaceResult, f32),
    crop: impl Fn(&RgbImage, &F) -> crate::Result<Classified>,
) -> ImageResult {
    let mut r = ImageResult {
        image: photo.name().to_path_buf(),
        status: "ok",
        error: None,
        faces: Vec::new(),
    };
    let found = photo
        .decode()
        .map_err(crate::Error::from)
        .and_then(|img| Ok((find(&img)?, img)));
    let (faces, img) = match found {
        Ok(f) => f,
        Err(e) => {
            r.status = "unreadable";
            r.error = Some(e.to_string());
            return r;
        }
    };
    if faces.is_empty() {
        r.status = "no_face";
    }
    let mut arena = vec![0u8; c.model.arena_len()];
    for (i, f) in faces.iter().enumerate() {
        let (mut fr, width) = describe(i, f);
        if width < cfg.min_face {
            fr.status = "too_small";
        } else if let Err(e) = classify_face(c, cfg, crop(&img, f), &mut arena, &mut fr) {
            r.error = Some(e.to_string());
        }
        r.faces.push(fr);
    }
    if let Some(dir) = annotate
        && let Err(e) = annotate_image(&img, &r, dir)
    {
        r.error = Some(format!("annotation: {e}"));
    }
    r
}

/// Classifies a face's crop into `fr`: logits and top probability, and the label only when the
/// probability reaches `cfg.min_probability` (else `uncertain`, as on any error).
fn classify_face(
    c: &Classifier<'_>,
    cfg: &Config,
    crop: crate::Result<Classified>,
    arena: &mut [u8],
    fr: &mut FaceResult,
) -> crate::Result<()> {
    fr.status = "uncertain";
    let (crop, head) = crop?;
    let (mut logits, mut p) = c.classify(&crop, arena)?;
    let q = c.model.output(0).q;
    let dequantized = |l: &[i8]| -> Vec<f32> { l.iter().map(|&v| q.dequantize(v)).collect() };
    let mut student = dequantized(&logits);
    if cfg.mirror {
        let (flipped, _) = c.classify(&crate::augment::hflip(&crop), arena)?;
        student = crate::classify::mirror_mean(&student, &dequantized(&flipped));
        p = crate::classify::probs(&student);
        logits.extend(flipped);
    }
    if let Some((weights, head)) = head {
        let combined = weights.combine(&head, &student);
        p = crate::classify::probs(&combined);
        fr.head_logits = Some(head);
        fr.combined_logits = Some(combined);
    }
    let best = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
    fr.probability = Some(p[best]);
    fr.logits = Some(logits);
    if p[best] >= cfg.min_probability {
        fr.status = "ok";
        fr.label = c.info.classes.get(best).cloned();
    }
    Ok(())
}

/// Writes the photo with boxes, landmarks and labels drawn on it to `dir/<name>.png`.
pub fn annotate_image(img: &RgbImage, r: &ImageResult, dir: &Path) -> crate::Result<PathBuf> {
    let out = draw(img, r)?;
    let name = r
        .image
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{name}.png"));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(out)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    crate::fsutil::write_replace(&path, &png)?;
    Ok(path)
}

/// The photo with each face's box, landmarks (or keypoints) and label drawn on it: magenta for
/// female, blue for male, grey for faces without a label.
pub fn draw(img: &RgbImage, r: &ImageResult) -> crate::Result<RgbImage> {
    use plotters::prelude::*;
    let (w, h) = img.dimensions();
    let mut buf = img.as_raw().clone();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let thick = (w.max(h) / 300).max(2);
        let font = ((w.max(h) / 30).max(12)) as i32;
        for f in &r.faces {
            let color = match (f.status, f.label.as_deref()) {
                ("ok", Some("female")) => RGBColor(230, 60, 160),
                ("ok", _) => RGBColor(40, 120, 240),
                _ => RGBColor(160, 160, 160),
            };
            let b = f.bbox.map(|v| v.round() as i32);
            root.draw(&Rectangle::new(
                [(b[0], b[1]), (b[2], b[3])],
                color.stroke_width(thick),
            ))
            .map_err(|e| crate::invalid!("{e:?}"))?;
            for p in &f.landmarks {
                root.draw(&Circle::new((p[0], p[1]), thick.max(2), color.filled()))
                    .map_err(|e| crate::invalid!("{e:?}"))?;
            }
            let text = match (&f.label, f.probability) {
                (Some(l), Some(p)) => format!("{l} {:.0}%", 100.0 * p),
                _ => f.status.replace('_', " "),
            };
            let y = (b[1] - font - 4).max(0);
            root.draw(&Text::new(
                text,
                (b[0].max(0), y),
                ("sans-serif", font).into_font().color(&color),
            ))
            .map_err(|e| crate::invalid!("{e:?}"))?;
        }
        root.present().map_err(|e| crate::invalid!("{e:?}"))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| crate::invalid!("buffer size"))
}

/// The photo's largest face (by box area): the one `eval-chain` and the demo score against a
/// photo's label, as a FairFace-style photo holds one labelled person.
pub fn main_face(r: &ImageResult) -> Option<&FaceResult> {
    let area = |f: &FaceResult| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
    r.faces.iter().max_by(|x, y| area(x).total_cmp(&area(y)))
}

/// The label of [`main_face`]: `None` when no face was found or it has no label.
pub fn main_label(r: &ImageResult) -> Option<&str> {
    main_face(r).and_then(|f| f.label.as_deref())
}

/// Every image named on the command line (folders searched recursively), in order.
pub fn expand_inputs(inputs: &[PathBuf]) -> crate::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for i in inputs {
        if i.is_dir() {
            out.extend(crate::fsutil::image_files(i)?);
        } else {
            out.push(i.clone());
        }
    }
    Ok(out)
}

/// A human-readable line per face.
pub fn lines(r: &ImageResult) -> Vec<String> {
    match r.status {
        "unreadable" => vec![format!(
            "{}: unreadable: {}",
            r.image.display(),
            r.error.as_deref().unwrap_or("")
        )],
        "no_face" => vec![format!("{}: no face found", r.image.display())],
        _ => r
            .faces
            .iter()
            .map(|f| {
                let b = f.bbox.map(|v| v.round() as i32);
                let what = match (&f.label, f.probability) {
                    (Some(l), Some(p)) => format!("{l} (p = {p:.3})"),
                    (None, Some(p)) => format!("{} (top p = {p:.3})", f.status),
                    _ => f.status.to_string(),
                };
                format!(
                    "{} face {}: box [{}, {}, {}, {}] score {:.2}: {what}",
                    r.image.display(),
                    f.face,
                    b[0],
                    b[1],
                    b[2],
                    b[3],
                    f.score
                )
            })
            .collect(),
    }
}

/// The device chain's own parts: the int8 detector and the keypoint template and threshold
/// its classifier was fitted with (`device-chain.json`).
pub struct DeviceModels {
    pub detector: Int8Detector,
    pub chain: ChainInfo,
}

impl DeviceModels {
    /// The int8 detector from `detector_dir` (`models/blazeface-int8`), the chain's settings
    /// from the classifier's folder `model_dir`.
    pub fn load(detector_dir: &Path, model_dir: &Path) -> crate::Result<Self> {
        Ok(Self {
            detector: Int8Detector::load(detector_dir)?,
            chain: ChainInfo::load(model_dir)?,
        })
    }
}

/// The device chain on one photo, through the same core calls as the firmware.
pub fn predict_device(
    d: &DeviceModels,
    c: &Classifier<'_>,
    cfg: &Config,
    photo: Photo<'_>,
    annotate: Option<&Path>,
) -> ImageResult {
    let template = d.chain.template();
    let mut arena = Vec::new();
    let threshold = d.chain.threshold.max(cfg.threshold);
    label_photo(
        photo,
        annotate,
        c,
        cfg,
        |img| d.detector.detections(img, threshold, true, &mut arena),
        |i, f| {
            let keypoints = f.keypoints.iter();
            let landmarks = keypoints.map(|p| [p[0].round() as i32, p[1].round() as i32]);
            let fr = FaceResult::found(
                i,
                f.corners(),
                f.score,
                Some(f.keypoints.to_vec()),
                landmarks.collect(),
            );
            (fr, f.size[0])
        },
        |img, f| Ok((align::keypoint_crop(img, f, &template)?, None)),
    )
}
