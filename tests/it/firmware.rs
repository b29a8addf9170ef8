//! The shipped model on the Cortex-M firmware in QEMU: every embedded crop gets the host's label
//! and int8 logits, and the firmware fits a real microcontroller's budget.

use facegender_qemu::firmware;

use crate::support::root;

/// The classifier's own budget (issue 28): MACs per image, int8 weight bytes, arena bytes.
const MACS_BUDGET: u64 = 80_000_000;
const WEIGHTS_BUDGET: u64 = 512 * 1024;
const ARENA_BUDGET: u64 = 192 * 1024;
/// Flash (code + constants) and RAM (statics + stack) budgets for the classifier firmware: the
/// model's budget plus the embedded crops, the code and the stack.
const FLASH_BUDGET: u64 = 640 * 1024;
const RAM_BUDGET: u64 = 256 * 1024;
/// Budgets for the whole chain on a Cortex-M7 board with 2 MB of flash and 1 MB of RAM, and for
/// a frame whose face the first detector run finds (QEMU `-icount` instructions).
const CHAIN_FLASH_BUDGET: u64 = 1024 * 1024;
const CHAIN_RAM_BUDGET: u64 = 512 * 1024;
const FRAME_INSTRUCTIONS_BUDGET: u64 = 220_000_000;

/// The shipped model's folder, once QEMU and defmt-print are known to be there: a missing tool
/// fails the test, it does not skip it.
fn shipped_model() -> std::path::PathBuf {
    firmware::check_tools().expect("scripts/setup installs qemu-system-arm and defmt-print");
    root().join("models/gender")
}

#[test]
fn the_shipped_classifier_fits_its_budget() {
    let json = std::fs::read_to_string(root().join("models/gender/model.json")).unwrap();
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    let field = |k: &str| {
        info[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in model.json"))
    };
    assert!(field("macs") <= MACS_BUDGET, "{json}");
    assert!(field("weight_bytes") <= WEIGHTS_BUDGET, "{json}");
    assert!(field("arena_bytes") <= ARENA_BUDGET, "{json}");
}

#[test]
fn firmware_in_qemu_equals_the_host_and_fits_the_budget() {
    let model = shipped_model();
    let c = facegender_qemu::parity::check_crops(&model).unwrap();
    let (ok, total, instructions, log) = (c.equal, c.total, c.instructions, c.log);
    assert!(total >= 4, "only {total} crops in the log:\n{log}");
    assert_eq!(ok, total, "firmware and host disagree:\n{log}");
    assert!(
        instructions.unwrap_or(0) > 100_000,
        "implausible instruction count:\n{log}"
    );

    let elf = firmware::firmware_dir().join("target/thumbv7em-none-eabihf/release/classify");
    assert_within_budget(&elf, &log, FLASH_BUDGET, RAM_BUDGET);
}

/// The ELF's flash, and its static RAM plus the stack high-water mark its log reports, within
/// the budgets.
fn assert_within_budget(elf: &std::path::Path, log: &str, flash_budget: u64, ram_budget: u64) {
    let s = firmware::sizes(elf).unwrap();
    let stack = firmware::parse_stack(log).expect("stack high-water mark in the log") as u64;
    assert!(
        s.flash() <= flash_budget,
        "flash {} > {flash_budget}: {s:?}",
        s.flash()
    );
    assert!(
        s.static_ram() + stack <= ram_budget,
        "RAM {} + stack {stack} > {ram_budget}: {s:?}",
        s.static_ram()
    );
}

#[test]
fn the_firmware_links_no_allocator() {
    for bin in ["classify", "full_chain"] {
        let elf = firmware::firmware_dir()
            .join("target/thumbv7em-none-eabihf/release")
            .join(bin);
        if !elf.exists() {
            facegender_qemu::firmware::build(bin, &root().join("models/gender"), &[]).unwrap();
        }
        let bytes = std::fs::read(&elf).unwrap();
        for sym in [&b"__rust_alloc"[..], b"__rdl_alloc", b"__rg_alloc"] {
            assert!(
                !bytes.windows(sym.len()).any(|w| w == sym),
                "{} links an allocator symbol",
                elf.display()
            );
        }
    }
}

/// The `full_chain` firmware (int8 BlazeFace, keypoint alignment, classifier) on the embedded
/// frames logs exactly what `facegender predict --device-chain` gives for the same pixels.
#[test]
fn full_chain_in_qemu_equals_predict_device_chain_and_fits_the_budget() {
    use crate::support::{facegender, run, stderr, stdout};
    let model = shipped_model();
    let elf = firmware::build("full_chain", &model, &[]).unwrap();
    let log = firmware::run_qemu(&elf, std::time::Duration::from_secs(600)).unwrap();
    let device = firmware::parse_chain(&log);

    // the same frames as PNG files, through predict --device-chain
    let dir = tempfile::tempdir().unwrap();
    let frames = facegender_qemu::frames::frames(&model).unwrap();
    assert!(frames.len() >= 2, "too few frames embedded");
    let mut c = facegender();
    c.args([
        "predict",
        "-q",
        "--json",
        "--device-chain",
        "--min-face",
        "0",
        "--min-probability",
        "0",
    ]);
    for f in &frames {
        let png = dir
            .path()
            .join(f.file_stem().unwrap())
            .with_extension("png");
        facegender_qemu::frames::read_frame(f)
            .unwrap()
            .save(&png)
            .unwrap();
        c.arg(png);
    }
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut faces = 0;
    for line in stdout(&o).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = std::path::Path::new(r["image"].as_str().unwrap())
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let on_device: Vec<_> = device.iter().filter(|l| l.frame == name).collect();
        let host = r["faces"].as_array().unwrap();
        assert_eq!(host.len(), on_device.len(), "{name}: faces\n{log}");
        let f32s = |v: &serde_json::Value| -> Vec<f32> {
            let mut out = Vec::new();
            let mut stack = vec![v];
            while let Some(x) = stack.pop() {
                match x.as_array() {
                    Some(a) => stack.extend(a.iter().rev()),
                    None => out.push(x.as_f64().unwrap() as f32),
                }
            }
            out
        };
        for (h, d) in host.iter().zip(on_device) {
            assert_eq!(f32s(&h["box"]), d.bbox.to_vec(), "{name}: box");
            assert_eq!(
                h["score"].as_f64().unwrap() as f32,
                d.score,
                "{name}: score"
            );
            let dk: Vec<f32> = d.keypoints.iter().flatten().copied().collect();
            assert_eq!(f32s(&h["keypoints"]), dk, "{name}: keypoints");
            let hl: Vec<i8> = h["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i8)
                .collect();
            assert_eq!(hl, d.logits, "{name}: logits");
            assert_eq!(h["label"].as_str(), Some(d.label.as_str()), "{name}: label");
            faces += 1;
        }
    }
    assert!(faces >= 2, "only {faces} faces compared:\n{log}");

    assert_within_budget(&elf, &log, CHAIN_FLASH_BUDGET, CHAIN_RAM_BUDGET);
    // the cheapest frame is one detector run (a frame tried again with a margin runs it twice)
    let frame = firmware::parse_frames(&log)
        .iter()
        .filter(|(_, n, _)| *n == 1)
        .filter_map(|(name, _, detect)| {
            let face = device.iter().find(|l| &l.frame == name)?;
            Some(detect + face.align_instructions + face.classify_instructions)
        })
        .min()
        .unwrap_or_else(|| panic!("no frame with one face:\n{log}"));
    assert!(
        frame <= FRAME_INSTRUCTIONS_BUDGET,
        "{frame} instructions for a frame with one face:\n{log}"
    );
}

/// The kernels the firmware runs (the `SMLAD` assembly among them) equal the scalar reference on
/// the emulated Cortex-M, over fixed awkward shapes and 400 random ones.
#[test]
fn the_kernel_tests_pass_on_the_emulated_cortex_m() {
    let elf = firmware::build("kernel_tests", &shipped_model(), &[]).unwrap();
    let log = firmware::run_qemu(&elf, std::time::Duration::from_secs(600)).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("kernel tests:"))
        .unwrap_or_else(|| panic!("no summary in the log:\n{log}"));
    assert!(line.contains(", 0 differ from the reference"), "{log}");
    let cases: u32 = line
        .split("kernel tests: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(cases >= 1600, "{line}");
}
