//! The firmware in QEMU against the host, bit for bit: the classifier on the embedded crops
//! (`facegender firmware`) and the whole device chain on the embedded frames
//! (`facegender firmware --chain`).

use std::path::Path;
use std::time::Duration;

use facegender_core::nn::model::Model;
use facegender_pipeline::classify::Classifier;
use facegender_pipeline::error::Context;
use facegender_pipeline::model_dir;
use facegender_pipeline::predict::{self, DeviceModels};
use serde::Serialize;

use crate::firmware;
use crate::frames::{frames, read_frame};

/// What the classifier firmware gave on its embedded crops, against the core on the host.
#[derive(Clone, Debug, Serialize)]
pub struct CropCheck {
    /// Crops whose label and int8 logits equal the host's.
    pub equal: usize,
    pub total: usize,
    /// Instructions for one inference (QEMU `-icount`).
    pub instructions: Option<u64>,
    /// Each layer's MACs and instructions, on the last crop.
    pub layers: Vec<firmware::LayerLine>,
    #[serde(skip)]
    pub log: String,
}

/// Builds the classifier firmware for `model_dir`, boots it in QEMU, and compares every crop's
/// label and int8 logits with the core on the host.
pub fn check_crops(model_dir: &Path) -> facegender_pipeline::Result<CropCheck> {
    let elf = firmware::build("classify", model_dir, &[])?;
    let log = firmware::run_qemu(&elf, Duration::from_secs(300))?;
    let lines = firmware::parse_crops(&log);
    let bytes = model_dir::read(&model_dir.join(model_dir::CORE_MODEL))?;
    let model = Model::parse(&bytes).map_err(|e| facegender_pipeline::invalid!("{e}"))?;
    let info = model_dir::export_info(model_dir)?;
    let mut arena = vec![0u8; model.arena_len()];
    let mut equal = 0;
    for l in &lines {
        let raw = std::fs::read(
            model_dir
                .join("firmware-crops")
                .join(format!("{}.rgb", l.crop)),
        )?;
        let input: Vec<i8> = raw.iter().map(|&p| (p as i16 - 128) as i8).collect();
        let out = model
            .run(&mut arena, &input)
            .map_err(|e| facegender_pipeline::invalid!("{e}"))?;
        let host = out.get(0).context("no output")?;
        let best = (0..host.len()).fold(0, |b, k| if host[k] > host[b] { k } else { b });
        if host == &l.logits[..] && info.classes.get(best) == Some(&l.label) {
            equal += 1;
        }
    }
    Ok(CropCheck {
        equal,
        total: lines.len(),
        instructions: lines.first().map(|l| l.instructions),
        layers: firmware::parse_layers(&log),
        log,
    })
}

/// Instructions per MAC over `layers` (`None` without MACs).
pub fn per_mac<'a>(layers: impl Iterator<Item = &'a firmware::LayerLine>) -> Option<f64> {
    let (m, i) = layers.fold((0u64, 0u64), |(m, i), l| (m + l.macs, i + l.instructions));
    (m > 0).then(|| i as f64 / m as f64)
}

/// What the `full_chain` firmware gave on its embedded frames, against `predict --device-chain`.
#[derive(Clone, Debug, Serialize)]
pub struct ChainCheck {
    pub frames: usize,
    /// Faces whose box, score, keypoints, int8 logits and label equal the host's bit for bit (a
    /// frame where both find no face counts as one).
    pub equal: usize,
    pub total: usize,
    /// Instructions (QEMU `-icount`): detection per frame (letterbox, detector, decoding, NMS),
    /// alignment and classification per face, averaged over frames and faces.
    pub detect_instructions: u64,
    pub align_instructions: u64,
    pub classify_instructions: u64,
    /// Per frame: its name, faces found, and the detection stage's instructions (two detector
    /// runs when the first finds nothing and the frame is tried again with a margin).
    pub detect_per_frame: Vec<(String, usize, u64)>,
    /// Each layer's MACs and instructions, per model (`detector`, `classifier`), on the last
    /// frame.
    pub layers: Vec<firmware::LayerLine>,
    /// Section sizes of the ELF, and the stack high-water mark the firmware logged.
    pub sizes: firmware::Sizes,
    pub stack_bytes: u64,
    /// One line per face (or per frame whose face counts differ), for the terminal.
    #[serde(skip)]
    pub lines: Vec<String>,
}

impl ChainCheck {
    /// Instructions for one frame with one face, averaged over the embedded frames (one found
    /// its face in one detector run, one in two).
    pub fn instructions_per_frame(&self) -> u64 {
        self.detect_instructions + self.align_instructions + self.classify_instructions
    }

    /// Each embedded frame's instructions as a frame with one face: its own detection stage (one
    /// or two detector runs) plus one face's alignment and classification.
    pub fn frame_instructions(&self) -> Vec<(&str, u64)> {
        self.detect_per_frame
            .iter()
            .map(|(name, _, detect)| {
                let face = self.align_instructions + self.classify_instructions;
                (name.as_str(), detect + face)
            })
            .collect()
    }

    /// Instructions per MAC of one model (`detector` or `classifier`), over its layers.
    pub fn per_mac(&self, model: &str) -> Option<f64> {
        per_mac(self.layers.iter().filter(|l| l.model == model))
    }

    pub fn flash_bytes(&self) -> u64 {
        self.sizes.flash()
    }

    /// Statics and the stack's high-water mark.
    pub fn ram_bytes(&self) -> u64 {
        self.sizes.static_ram() + self.stack_bytes
    }
}

/// Builds the `full_chain` firmware for `model_dir` (the int8 BlazeFace of
/// `models_dir/blazeface-int8`), boots it in QEMU, and compares every face with the host mirror
/// of the chain (`predict --device-chain`) on the same pixels.
pub fn check_chain(model_dir: &Path, models_dir: &Path) -> facegender_pipeline::Result<ChainCheck> {
    let frames = frames(model_dir)?;
    let elf = firmware::build("full_chain", model_dir, &[])?;
    let log = firmware::run_qemu(&elf, Duration::from_secs(600))?;
    let on_device = firmware::parse_chain(&log);
    let per_frame = firmware::parse_frames(&log);

    let device = DeviceModels::load(&models_dir.join("blazeface-int8"), model_dir)?;
    let (info, bytes) = model_dir::read_classifier(model_dir)?;
    let classifier = Classifier::new(&bytes, info)?;
    let cfg = predict::Config {
        threshold: device.chain.threshold,
        min_face: 0.0,
        min_probability: 0.0,
        mirror: false,
    };
    let tmp = tempfile::tempdir()?;
    let (mut equal, mut total, mut lines) = (0, 0, Vec::new());
    for f in &frames {
        let name = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let png = tmp.path().join(format!("{name}.png"));
        read_frame(f)?.save(&png)?;
        let host =
            predict::predict_device(&device, &classifier, &cfg, predict::Photo::Path(&png), None);
        let dev: Vec<&firmware::ChainLine> = on_device.iter().filter(|l| l.frame == name).collect();
        let logged = per_frame.iter().find(|p| p.0 == name).map(|p| p.1);
        total += host.faces.len().max(dev.len()).max(1);
        if logged != Some(host.faces.len()) || dev.len() != host.faces.len() {
            lines.push(format!(
                "{name}: the host finds {} faces, the device {:?}",
                host.faces.len(),
                logged
            ));
            continue;
        }
        if host.faces.is_empty() {
            equal += 1;
        }
        for (h, d) in host.faces.iter().zip(&dev) {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let hk: Vec<f32> = h.keypoints.iter().flatten().flatten().copied().collect();
            let dk: Vec<f32> = d.keypoints.iter().flatten().copied().collect();
            let same = bits(&h.bbox) == bits(&d.bbox)
                && h.score.to_bits() == d.score.to_bits()
                && bits(&hk) == bits(&dk)
                && h.logits.as_deref() == Some(&d.logits[..])
                && h.label.as_deref() == Some(d.label.as_str());
            lines.push(format!(
                "{name} face {}: box {:?} score {} label {} logits {:?}: {}",
                d.face,
                d.bbox,
                d.score,
                d.label,
                d.logits,
                if same {
                    "equal to the host"
                } else {
                    "DIFFERS from the host"
                }
            ));
            equal += same as usize;
        }
    }
    let mean = |v: Vec<u64>| v.iter().sum::<u64>() / v.len().max(1) as u64;
    Ok(ChainCheck {
        frames: frames.len(),
        equal,
        total,
        detect_instructions: mean(per_frame.iter().map(|p| p.2).collect()),
        align_instructions: mean(on_device.iter().map(|l| l.align_instructions).collect()),
        classify_instructions: mean(on_device.iter().map(|l| l.classify_instructions).collect()),
        detect_per_frame: per_frame.clone(),
        layers: firmware::parse_layers(&log),
        sizes: firmware::sizes(&elf)?,
        stack_bytes: firmware::parse_stack(&log).unwrap_or(0) as u64,
        lines,
    })
}
