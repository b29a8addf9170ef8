//! The shipped model on the Cortex-M firmware in QEMU: every embedded crop gets the host's label
//! and int8 logits, and the firmware fits a real microcontroller's budget.

use facegender::firmware;

use crate::support::root;

/// Flash (code + constants) and RAM (statics + stack) budgets for the classifier firmware.
const FLASH_BUDGET: u64 = 384 * 1024;
const RAM_BUDGET: u64 = 128 * 1024;

#[test]
fn firmware_in_qemu_equals_the_host_and_fits_the_budget() {
    // QEMU and defmt-print must be there: a missing tool fails the test, it does not skip it
    firmware::check_tools().expect("scripts/setup installs qemu-system-arm and defmt-print");
    let model = root().join("models/gender");
    let (ok, total, instructions, log) = facegender::demo::firmware_check(&model).unwrap();
    assert!(total >= 4, "only {total} crops in the log:\n{log}");
    assert_eq!(ok, total, "firmware and host disagree:\n{log}");
    assert!(
        instructions.unwrap_or(0) > 100_000,
        "implausible instruction count:\n{log}"
    );

    let elf = firmware::firmware_dir().join("target/thumbv7em-none-eabihf/release/classify");
    let s = firmware::sizes(&elf).unwrap();
    let stack = firmware::parse_stack(&log).expect("stack high-water mark in the log") as u64;
    assert!(
        s.flash() <= FLASH_BUDGET,
        "flash {} > {FLASH_BUDGET}: {s:?}",
        s.flash()
    );
    assert!(
        s.static_ram() + stack <= RAM_BUDGET,
        "RAM {} + stack {stack} > {RAM_BUDGET}: {s:?}",
        s.static_ram()
    );
}

#[test]
fn the_firmware_links_no_allocator() {
    let elf = firmware::firmware_dir().join("target/thumbv7em-none-eabihf/release/classify");
    if !elf.exists() {
        facegender::firmware::build("classify", &root().join("models/gender"), &[]).unwrap();
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
