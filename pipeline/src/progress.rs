//! Progress bars for long work: drawn on the terminal unless the command runs with `-q`.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items, hidden when `shown` is false.
pub fn bar(len: usize, shown: bool) -> ProgressBar {
    if shown {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    }
}

/// A [`bar`] drawn by `template` (indicatif's keys: `{bar:N}`, `{pos}`, `{eta}`...), filled `=>`.
pub fn styled(len: usize, shown: bool, template: &str) -> ProgressBar {
    let b = bar(len, shown);
    b.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}
