//! Building the firmware, booting it in QEMU, reading its defmt log, and measuring the ELF.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use facegender_pipeline::error::Context;
use facegender_pipeline::{Error, bail};
use serde::Serialize;

/// The firmware folder of the source tree.
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware")
}

/// Builds a firmware binary in release mode; `model_dir` holds `model.fgi8` and
/// `firmware-crops/`. Returns the ELF path.
pub fn build(
    bin: &str,
    model_dir: &Path,
    features: &[&str],
) -> facegender_pipeline::Result<PathBuf> {
    let dir = firmware_dir();
    let model_dir = std::path::absolute(model_dir)?;
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(&dir)
        .args(["build", "--release", "--bin", bin])
        .env("FACEGENDER_MODEL_DIR", &model_dir)
        // the host build's settings must not leak into the cross build
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    let o = c.output().context("running cargo for the firmware")?;
    if !o.status.success() {
        bail!(
            "firmware build failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(dir.join("target/thumbv7em-none-eabihf/release").join(bin))
}

/// Checks that QEMU and defmt-print are installed, naming the fix when not.
pub fn check_tools() -> facegender_pipeline::Result<()> {
    for (tool, fix) in [
        ("qemu-system-arm", "apt package qemu-system-arm"),
        ("defmt-print", "cargo install defmt-print"),
    ] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            bail!("{tool} is not installed ({fix}): run scripts/setup");
        }
    }
    Ok(())
}

/// Boots `elf` in QEMU (`firmware/qemu-run`), returns the decoded log; fails if the firmware
/// exits non-zero or runs longer than `timeout`.
pub fn run_qemu(elf: &Path, timeout: Duration) -> facegender_pipeline::Result<String> {
    check_tools()?;
    let mut child = Command::new(firmware_dir().join("qemu-run"))
        .arg(elf)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting firmware/qemu-run")?;
    let started = std::time::Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            bail!("the firmware ran longer than {timeout:?} in QEMU");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        bail!(
            "the firmware failed in QEMU (status {}):\n{log}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(log)
}

/// One classified crop, as the firmware logs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CropLine {
    pub crop: String,
    pub label: String,
    pub logits: Vec<i8>,
    pub probability: f32,
    pub instructions: u64,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if rest.starts_with('[') {
        // up to the matching bracket (arrays nest: keypoints=[[x, y], ...])
        let mut depth = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(&rest[..=i]);
                    }
                }
                _ => {}
            }
        }
        return None;
    }
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// Every number of a (possibly nested) logged array, in order.
fn numbers<T: std::str::FromStr>(array: &str) -> Option<Vec<T>> {
    array
        .split([',', '[', ']'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

/// One face as the `full_chain` firmware logs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainLine {
    pub frame: String,
    pub face: usize,
    pub bbox: [f32; 4],
    pub score: f32,
    pub keypoints: Vec<[f32; 2]>,
    pub logits: Vec<i8>,
    pub label: String,
    pub align_instructions: u64,
    pub classify_instructions: u64,
}

/// The per-face lines of a `full_chain` log.
pub fn parse_chain(log: &str) -> Vec<ChainLine> {
    log.lines()
        .filter(|l| l.contains(" frame=") && l.contains(" face="))
        .filter_map(|l| {
            let k: Vec<f32> = numbers(field(l, "keypoints")?)?;
            Some(ChainLine {
                frame: field(l, "frame")?.to_string(),
                face: field(l, "face")?.parse().ok()?,
                bbox: numbers(field(l, "box")?)?.try_into().ok()?,
                score: field(l, "score")?.parse().ok()?,
                keypoints: k.chunks_exact(2).map(|p| [p[0], p[1]]).collect(),
                logits: numbers(field(l, "logits")?)?,
                label: field(l, "label")?.to_string(),
                align_instructions: field(l, "align_instructions")?.parse().ok()?,
                classify_instructions: field(l, "classify_instructions")?.parse().ok()?,
            })
        })
        .collect()
}

/// Per-frame detection lines of a `full_chain` log: (frame, faces, instructions of the
/// detection stage: letterbox, detector, decoding, NMS, and the second try if any).
pub fn parse_frames(log: &str) -> Vec<(String, usize, u64)> {
    log.lines()
        .filter(|l| l.contains(" frame=") && l.contains(" faces="))
        .filter_map(|l| {
            Some((
                field(l, "frame")?.to_string(),
                field(l, "faces")?.parse().ok()?,
                field(l, "detect_instructions")?.parse().ok()?,
            ))
        })
        .collect()
}

/// The `crop=... label=... logits=[..] prob=... instructions=...` lines of a log.
pub fn parse_crops(log: &str) -> Vec<CropLine> {
    log.lines()
        .filter(|l| l.contains("crop=") && l.contains("logits="))
        .filter_map(|l| {
            let logits = field(l, "logits")?.trim_matches(['[', ']']);
            Some(CropLine {
                crop: field(l, "crop")?.to_string(),
                label: field(l, "label")?.to_string(),
                logits: logits
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse().ok())
                    .collect::<Option<_>>()?,
                probability: field(l, "prob")?.parse().ok()?,
                instructions: field(l, "instructions")?.parse().ok()?,
            })
        })
        .collect()
}

/// One layer's cost, as the firmware logs it (`layer=.. op=.. macs=.. instructions=..`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerLine {
    /// The model the line belongs to, when the log names it (`model=`), else empty.
    pub model: String,
    pub layer: u16,
    pub op: String,
    pub macs: u64,
    pub instructions: u64,
}

/// The per-layer lines of a log.
pub fn parse_layers(log: &str) -> Vec<LayerLine> {
    log.lines()
        .filter(|l| l.contains(" layer=") && l.contains(" macs="))
        .filter_map(|l| {
            Some(LayerLine {
                model: field(l, "model").unwrap_or("").to_string(),
                layer: field(l, "layer")?.parse().ok()?,
                op: field(l, "op")?.to_string(),
                macs: field(l, "macs")?.parse().ok()?,
                instructions: field(l, "instructions")?.parse().ok()?,
            })
        })
        .collect()
}

/// A per-layer table: MACs, instructions and instructions per MAC, then the total.
pub fn layer_table(layers: &[LayerLine]) -> String {
    let mut out = String::from("layer  op                 MACs   instructions  per MAC\n");
    let per = |i: u64, m: u64| {
        if m == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", i as f64 / m as f64)
        }
    };
    for l in layers {
        out.push_str(&format!(
            "{:>5}  {:<16} {:>9} {:>14} {:>8}\n",
            l.layer,
            l.op,
            l.macs,
            l.instructions,
            per(l.instructions, l.macs)
        ));
    }
    let (m, i) = layers
        .iter()
        .fold((0, 0), |(m, i), l| (m + l.macs, i + l.instructions));
    out.push_str(&format!(
        "total  {:<16} {:>9} {:>14} {:>8}",
        "",
        m,
        i,
        per(i, m)
    ));
    out
}

/// The stack high-water mark the firmware logs, in bytes.
pub fn parse_stack(log: &str) -> Option<usize> {
    let l = log.lines().find(|l| l.contains("stack high-water mark"))?;
    l.split("mark: ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Section sizes of a firmware ELF, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sizes {
    pub vector_table: u64,
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub bss: u64,
    pub uninit: u64,
}

impl Sizes {
    /// Bytes of flash: code, constants, and the initial values of .data.
    pub fn flash(&self) -> u64 {
        self.vector_table + self.text + self.rodata + self.data
    }

    /// Bytes of RAM taken by statics.
    pub fn static_ram(&self) -> u64 {
        self.data + self.bss + self.uninit
    }
}

/// `N` little-endian bytes of the ELF at `at`.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> facegender_pipeline::Result<[u8; N]> {
    let bytes = b.get(at..at + N).context("ELF too short")?;
    bytes.try_into().map_err(Error::other)
}

fn u16_at(b: &[u8], at: usize) -> facegender_pipeline::Result<u16> {
    bytes_at(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> facegender_pipeline::Result<u32> {
    bytes_at(b, at).map(u32::from_le_bytes)
}

/// Reads the section sizes of a 32-bit little-endian ELF.
pub fn sizes(elf: &Path) -> facegender_pipeline::Result<Sizes> {
    let b = std::fs::read(elf).with_context(|| elf.display().to_string())?;
    facegender_pipeline::ensure!(
        b.get(..4) == Some(b"\x7fELF") && b.get(4) == Some(&1) && b.get(5) == Some(&1),
        "{} is not a 32-bit little-endian ELF",
        elf.display()
    );
    let (shoff, shentsize, shnum, shstrndx) = (
        u32_at(&b, 0x20)? as usize,
        u16_at(&b, 0x2e)? as usize,
        u16_at(&b, 0x30)? as usize,
        u16_at(&b, 0x32)? as usize,
    );
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u32_at(&b, sh(shstrndx) + 16)? as usize;
    let mut s = Sizes::default();
    for i in 0..shnum {
        let name_off = u32_at(&b, sh(i))? as usize;
        let name_bytes = b.get(strtab + name_off..).context("bad section name")?;
        let name = std::str::from_utf8(
            &name_bytes[..name_bytes.iter().position(|&c| c == 0).unwrap_or(0)],
        )
        .map_err(Error::other)?;
        let size = u32_at(&b, sh(i) + 20)? as u64;
        match name {
            ".vector_table" => s.vector_table += size,
            ".text" => s.text += size,
            ".rodata" => s.rodata += size,
            ".data" => s.data += size,
            ".bss" => s.bss += size,
            ".uninit" => s.uninit += size,
            _ => {}
        }
    }
    Ok(s)
}
