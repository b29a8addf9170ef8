//! Raw RGB888 frames for the `full_chain` firmware: written from photos, read back as images.

use std::path::{Path, PathBuf};

use facegender_pipeline::error::Context;
use facegender_pipeline::{dataset, decode, fsutil};
use image::RgbImage;

/// Writes raw RGB888 frames for the `full_chain` firmware, `per_class` photos of each class of
/// `photos` (sorted), as `NN-CLASS-STEM-WxH.rgb`; earlier frames in `dest` are replaced.
pub fn write_frames(
    photos: &Path,
    dest: &Path,
    per_class: usize,
) -> facegender_pipeline::Result<Vec<PathBuf>> {
    write_raw(photos, dest, per_class, |n, class, stem, img| {
        let stem = stem.replace('-', "_");
        let (w, h) = img.dimensions();
        (format!("{n:02}-{class}-{stem}-{w}x{h}.rgb"), img)
    })
}

/// Writes raw `side x side x 3` crops for the classifier firmware, `n` per class of the split
/// folder `split_dir`, as `NN-CLASS-STEM.rgb`; earlier crops in `dest` are replaced.
pub fn write_firmware_crops(
    split_dir: &Path,
    dest: &Path,
    side: u32,
    n: usize,
) -> facegender_pipeline::Result<Vec<PathBuf>> {
    write_raw(split_dir, dest, n, |n, class, stem, img| {
        let img = if img.dimensions() == (side, side) {
            img
        } else {
            image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle)
        };
        (format!("{n:02}-{class}-{stem}.rgb"), img)
    })
}

/// The first `per_class` photos of each class of `photos` as raw RGB888 files in `dest`, each
/// named and shaped by `file` (its number, class, file stem and image); the `.rgb` files
/// already in `dest` go first.
fn write_raw(
    photos: &Path,
    dest: &Path,
    per_class: usize,
    file: impl Fn(usize, &str, &str, RgbImage) -> (String, RgbImage),
) -> facegender_pipeline::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dest)?;
    for old in fsutil::files_with_extension(dest, "rgb")? {
        std::fs::remove_file(old)?;
    }
    let mut written = Vec::new();
    let mut per = std::collections::BTreeMap::<String, usize>::new();
    for it in dataset::list(photos)? {
        let n = per.entry(it.class.clone()).or_insert(0);
        if *n >= per_class {
            continue;
        }
        let img = decode::decode_file(&it.path, &Default::default())?;
        let stem = Path::new(&it.rel)
            .file_stem()
            .map_or("frame".into(), |s| s.to_string_lossy().into_owned());
        let (name, img) = file(written.len(), &it.class, &stem, img);
        let path = dest.join(name);
        fsutil::write_replace(&path, img.as_raw())?;
        written.push(path);
        *n += 1;
    }
    Ok(written)
}

/// A frame file written by [`write_frames`] as an image.
pub fn read_frame(path: &Path) -> facegender_pipeline::Result<RgbImage> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (w, h) = stem
        .rsplit('-')
        .next()
        .and_then(|s| s.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("{}: the name must end in -WxH", path.display()))?;
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    RgbImage::from_raw(w, h, bytes)
        .with_context(|| format!("{}: not a {w}x{h} RGB888 frame", path.display()))
}

/// The `.rgb` frames embedded for `model_dir`'s chain firmware, sorted.
pub fn frames(model_dir: &Path) -> facegender_pipeline::Result<Vec<PathBuf>> {
    let dir = model_dir.join("firmware-frames");
    let frames = fsutil::files_with_extension(&dir, "rgb")
        .with_context(|| format!("{} (write frames with --frames-from)", dir.display()))?;
    facegender_pipeline::ensure!(
        !frames.is_empty(),
        "no frames in {} (write them with --frames-from)",
        dir.display()
    );
    Ok(frames)
}
