//! The demo's settings, what every step is given (its inputs) and what it keeps (the log).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use facegender_pipeline::preprocess::Models;

/// Crop side and framing of the shipped model (the demo trains the same way).
pub const CROP: u32 = 64;
pub const CROP_SCALE: f64 = 0.75;
/// The contact sheet and where the demo writes it (the README shows a copy).
pub const CONTACT_SHEET: &str = "contact-sheet.jpg";

/// What the demo runs on.
pub struct Inputs<'a> {
    /// The shipped models (`models/`: `gender/` with `weights.bpk`, `blazeface-int8/`).
    pub models_dir: &'a Path,
    /// The host chain's detector and landmarks.
    pub models: &'a Models<'a>,
    /// Labelled photos, one folder per class.
    pub photos: &'a Path,
    /// Photos with several faces or none, described by their `scenes.csv`.
    pub scenes: Option<&'a Path>,
    pub workdir: &'a Path,
    pub progress: bool,
    /// The photos are known to be outside the shipped model's training split (the bundled
    /// sample is checked against `models/gender/split.csv`); said so in the output.
    pub held_out: bool,
}

/// What the demo says, as it goes (on stderr) and for its caller, and how long each step took.
#[derive(Default)]
pub struct Log {
    pub text: String,
    /// (step, seconds)
    pub steps: Vec<(String, f64)>,
}

impl Log {
    pub fn say(&mut self, s: impl AsRef<str>) {
        let s = s.as_ref();
        eprintln!("{s}");
        let _ = writeln!(self.text, "{s}");
    }

    /// Closes the step `name`, begun at `since`.
    pub fn step(&mut self, name: &str, since: Instant) {
        let seconds = since.elapsed().as_secs_f64();
        self.steps.push((name.to_string(), seconds));
    }
}

/// Instructions in millions, as the README quotes them.
pub fn millions(n: u64) -> String {
    format!("{:.1} M", n as f64 / 1e6)
}
