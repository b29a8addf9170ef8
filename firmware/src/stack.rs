//! Stack high-water mark by painting: fill the unused stack with a pattern at start-up, and later
//! find the deepest word that was overwritten. The one module with `unsafe` in the firmware.
#![allow(unsafe_code)]

const PAINT: u32 = 0xDEAD_BEEF;

unsafe extern "C" {
    // cortex-m-rt's linker script: the stack grows down from `_stack_start`; `__sheap` is the end
    // of .bss/.data (the lowest address the stack may reach, as there is no heap).
    static _stack_start: u32;
    static __sheap: u32;
}

fn bounds() -> (usize, usize) {
    // Taking the address of a linker symbol reads no memory (and needs no unsafe).
    (
        core::ptr::addr_of!(__sheap) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the free stack below the current frame. Call once, first thing in `main`.
pub fn paint() {
    let (low, _) = bounds();
    // leave 256 bytes below the current stack pointer for this function's own frame
    let sp = cortex_m::register::msp::read() as usize - 256;
    let mut p = low.next_multiple_of(4);
    while p < sp {
        // SAFETY: [__sheap, sp - 256) is RAM that belongs to no static and lies below every live
        // stack frame (the stack grows down from _stack_start and no heap exists); the address is
        // 4-byte aligned, so a volatile u32 write there cannot alias any Rust object.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used so far (deepest overwritten word to the top of the stack).
pub fn high_water() -> usize {
    let (low, top) = bounds();
    let mut p = low.next_multiple_of(4);
    while p < top {
        // SAFETY: the same region as `paint`, read only; the reads are volatile and aligned.
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
            break;
        }
        p += 4;
    }
    top - p
}

/// Bytes between the end of static data and the top of the stack.
pub fn capacity() -> usize {
    let (low, top) = bounds();
    top - low
}
