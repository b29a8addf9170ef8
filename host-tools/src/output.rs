//! What commands print, and how a run ends: stdout that survives a closed pipe, and the exit
//! status for runs where some inputs could not be read.

use std::io::Write;

/// Set once stdout's reader has gone (`| head`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a line to stdout. After the reader has gone (`| head`) lines are dropped quietly and the
/// command carries on, so the files it writes after printing (eval.json, reports) are not lost.
pub fn out(s: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    if STDOUT_CLOSED.load(Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{s}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        STDOUT_CLOSED.store(true, Relaxed);
    }
}

/// Exit status when some inputs could not be read (the rest were processed).
pub const EXIT_SOME_FAILED: u8 = 3;

/// An error that carries its own exit status.
#[derive(Debug)]
pub struct Partial(pub String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}
