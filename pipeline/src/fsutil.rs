//! File writes that cannot lose or clobber data: everything goes to a temporary file in the
//! destination folder first and appears under its name in one atomic step.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

fn temp_in(path: &Path) -> std::io::Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut b = tempfile::Builder::new();
    b.prefix(".facegender-").suffix(".tmp");
    // temp files are private by default; the results are ordinary files (umask still applies)
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    b.tempfile_in(dir)
}

/// Writes `bytes` to `path` only if nothing is there yet (atomic link, never overwrites).
/// Returns `Ok(false)` when `path` already exists.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let mut tmp = temp_in(path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// Atomically replaces `path` with `bytes` (for files the tool owns: reports, manifests).
pub fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = temp_in(path)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// Removes temporary files a killed run left behind in `dir` (not recursive).
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".facegender-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Image files (by extension) under `dir`, recursively, sorted, hidden entries skipped.
pub fn image_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if (ft.is_file() || ft.is_symlink()) && is_image_name(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files of `dir` itself (not of its sub-folders) named `*.EXT`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() && p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// An RGB image as PNG bytes, for [`write_new`] or [`write_replace`].
pub fn png(img: &image::RgbImage) -> image::ImageResult<Vec<u8>> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(png)
}

/// Whether the extension is one of the image formats the tools read.
pub fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "webp" | "bmp" | "gif"
            )
        })
        .unwrap_or(false)
}

/// Class folders (immediate sub-folders, sorted, hidden skipped).
pub fn class_dirs(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.file_type()?.is_dir() {
            out.push((name, e.path()));
        }
    }
    out.sort();
    Ok(out)
}
