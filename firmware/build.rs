//! Places the board's memory map, embeds the model and the test crops, and sizes the static
//! arena from the model file itself (parsed here with facegender-core, so the size is not guessed).
//!
//! Inputs (paths relative to the firmware folder unless absolute):
//! - `FACEGENDER_MODEL_DIR` (default `../models/gender`): `model.fgi8` and `model.json`
//! - `FACEGENDER_CROPS` (default `<model dir>/firmware-crops`): `*.rgb` raw crops, `input x input x 3`
//! - for the `full_chain` binary, when present: `<model dir>/device-chain.json` (keypoint template),
//!   `FACEGENDER_DETECTOR_DIR` (default `../models/blazeface-int8`): `model.fgi8`, and
//!   `<model dir>/firmware-frames/NAME-WxH.rgb`: raw RGB888 frames. Statics a binary does not use
//!   are dropped by the linker, so `classify` carries none of this.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use facegender_core::nn::model::Model;

fn main() {
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    let board = if env::var_os("CARGO_FEATURE_STM32H743").is_some() {
        "stm32h743"
    } else {
        "qemu-mps2"
    };
    fs::copy(
        here.join("boards").join(board).join("memory.x"),
        out.join("memory.x"),
    )
    .unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=boards");

    let resolve = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { here.join(p) }
    };
    println!("cargo:rerun-if-env-changed=FACEGENDER_MODEL_DIR");
    println!("cargo:rerun-if-env-changed=FACEGENDER_CROPS");
    let model_dir =
        resolve(env::var("FACEGENDER_MODEL_DIR").unwrap_or_else(|_| "../models/gender".into()));
    let crops_dir = env::var("FACEGENDER_CROPS")
        .map(resolve)
        .unwrap_or_else(|_| model_dir.join("firmware-crops"));
    let model_path = model_dir.join("model.fgi8");
    println!("cargo:rerun-if-changed={}", model_path.display());
    println!("cargo:rerun-if-changed={}", crops_dir.display());
    let bytes = fs::read(&model_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Export a model first (facegender export) or set FACEGENDER_MODEL_DIR",
            model_path.display()
        )
    });
    let model = Model::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", model_path.display()));
    let input = model.input().shape;
    let classes = read_classes(&model_dir.join("model.json"));

    let mut src = String::new();
    writeln!(
        src,
        "/// Bytes of scratch the model needs (from its buffer plan)."
    )
    .unwrap();
    writeln!(src, "pub const ARENA_LEN: usize = {};", model.arena_len()).unwrap();
    writeln!(src, "/// Input side and channels.").unwrap();
    writeln!(src, "pub const INPUT_LEN: usize = {};", input.len()).unwrap();
    writeln!(src, "pub const CLASSES: &[&str] = &{classes:?};").unwrap();
    writeln!(src, "/// The model file, 4-byte aligned.").unwrap();
    writeln!(
        src,
        "pub static MODEL: &crate::Aligned<[u8]> = &crate::Aligned(*include_bytes!({:?}));",
        model_path.display().to_string()
    )
    .unwrap();
    let crops = raw_files(&crops_dir);
    writeln!(src, "/// Test crops: (name, RGB pixels).").unwrap();
    writeln!(
        src,
        "pub static CROPS: &[(&str, &[u8; {}])] = &[",
        input.len()
    )
    .unwrap();
    for c in &crops {
        let name = c.file_stem().unwrap().to_string_lossy();
        let what = format!("{}x{}x{} crop", input.h, input.w, input.c);
        table_entry(&mut src, c, &format!("{name:?}, "), input.len(), &what);
    }
    writeln!(src, "];").unwrap();
    chain(&mut src, &model_dir, &resolve, model.arena_len());
    fs::write(out.join("model.rs"), src).unwrap();
}

/// The device chain's detector, template and test frames (`None` / empty when absent).
fn chain(src: &mut String, model_dir: &Path, resolve: &dyn Fn(String) -> PathBuf, arena: usize) {
    println!("cargo:rerun-if-env-changed=FACEGENDER_DETECTOR_DIR");
    let det_dir = resolve(
        env::var("FACEGENDER_DETECTOR_DIR").unwrap_or_else(|_| "../models/blazeface-int8".into()),
    );
    let det_path = det_dir.join("model.fgi8");
    let chain_path = model_dir.join("device-chain.json");
    let frames_dir = model_dir.join("firmware-frames");
    for p in [&det_path, &chain_path, &frames_dir] {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let det = fs::read(&det_path).ok().map(|b| {
        let m = Model::parse(&b).unwrap_or_else(|e| panic!("{}: {e}", det_path.display()));
        (m.arena_len(), m.input().shape.len())
    });
    let (det_arena, det_input) = det.unwrap_or((0, 0));
    writeln!(
        src,
        "/// Scratch for the detector and the classifier, run one after the other."
    )
    .unwrap();
    writeln!(
        src,
        "pub const CHAIN_ARENA_LEN: usize = {};",
        arena.max(det_arena)
    )
    .unwrap();
    writeln!(src, "pub const DET_INPUT_LEN: usize = {det_input};").unwrap();
    match det {
        Some(_) => writeln!(
            src,
            "pub static DETECTOR: Option<&crate::Aligned<[u8]>> = Some(&crate::Aligned(*include_bytes!({:?})));",
            det_path.display().to_string()
        ),
        None => writeln!(src, "pub static DETECTOR: Option<&crate::Aligned<[u8]>> = None;"),
    }
    .unwrap();
    let chain: Option<serde_json::Value> = fs::read(&chain_path).ok().map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}: {e}", chain_path.display()))
    });
    match chain {
        Some(c) => {
            let f = |v: &serde_json::Value| {
                v.as_f64()
                    .unwrap_or_else(|| panic!("{}: not a number", chain_path.display()))
            };
            let pts: Vec<String> = c["template"]
                .as_array()
                .expect("template")
                .iter()
                .map(|p| format!("[{:?}f64, {:?}f64]", f(&p[0]), f(&p[1])))
                .collect();
            writeln!(
                src,
                "pub static CHAIN: Option<crate::ChainSettings> = Some(crate::ChainSettings {{ side: {}, points: [{}], threshold: {:?}f32, nms_iou: {:?}f32 }});",
                c["template_side"].as_u64().expect("template_side"),
                pts.join(", "),
                f(&c["threshold"]) as f32,
                f(&c["nms_iou"]) as f32,
            )
            .unwrap();
        }
        None => writeln!(
            src,
            "pub static CHAIN: Option<crate::ChainSettings> = None;"
        )
        .unwrap(),
    }
    let frames = raw_files(&frames_dir);
    writeln!(
        src,
        "/// Test frames: (name, width, height, RGB888 pixels)."
    )
    .unwrap();
    writeln!(
        src,
        "pub static FRAMES: &[(&str, usize, usize, &[u8])] = &["
    )
    .unwrap();
    for p in &frames {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let (w, h) = name
            .rsplit('-')
            .next()
            .and_then(|s| s.split_once('x'))
            .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("{}: name must end in -WxH", p.display()));
        let fields = format!("{name:?}, {w}, {h}, ");
        table_entry(src, p, &fields, w * h * 3, &format!("{w}x{h} RGB888 frame"));
    }
    writeln!(src, "];").unwrap();
}

/// Writes the table row `(fields include_bytes!(path)),` after checking that the file at `path`
/// holds `len` bytes (`what` says what it should be).
fn table_entry(src: &mut String, path: &Path, fields: &str, len: usize, what: &str) {
    let got = fs::metadata(path).unwrap().len() as usize;
    assert_eq!(got, len, "{} is not a {what}", path.display());
    let path = path.display().to_string();
    writeln!(src, "    ({fields}include_bytes!({path:?})),").unwrap();
}

/// The `*.rgb` files of `dir`, sorted (none when `dir` is missing).
fn raw_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rgb"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn read_classes(path: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(path) else {
        return vec!["class0".into(), "class1".into()];
    };
    // model.json: {"classes": ["female", "male"], ...}; a tiny scan keeps build deps small
    let Some(start) = text.find("\"classes\"") else {
        return Vec::new();
    };
    let rest = &text[start..];
    let (Some(a), Some(b)) = (rest.find('['), rest.find(']')) else {
        return Vec::new();
    };
    rest[a + 1..b]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
