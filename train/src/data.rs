//! Training data: labelled crops from a split folder, class balancing, online augmentation and
//! batching into NCHW tensors.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use facegender_pipeline::augment::Augment;
use facegender_pipeline::classify::write_nchw;
use facegender_pipeline::dataset::crops::Split;

/// One epoch's order, class-balanced: every class is drawn as often as the largest one
/// (smaller classes repeat, reshuffled), then everything is shuffled. Seeded by (seed, epoch).
pub fn balanced_order(labels: &[usize], classes: usize, seed: u64, epoch: usize) -> Vec<usize> {
    balanced_order_repeated(labels, &[], classes, seed, epoch)
}

/// [`balanced_order`] with image `i` entering its class's pool `repeats[i]` times (once where
/// `repeats` is shorter, never where it is 0): rare groups (children, say) are seen more often
/// without unbalancing the classes.
pub fn balanced_order_repeated(
    labels: &[usize],
    repeats: &[usize],
    classes: usize,
    seed: u64,
    epoch: usize,
) -> Vec<usize> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut by_class = pools(labels, repeats, classes);
    let largest = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let mut order = Vec::with_capacity(largest * classes);
    for members in by_class.iter_mut().filter(|m| !m.is_empty()) {
        let mut taken = 0;
        while taken < largest {
            members.shuffle(&mut rng);
            let n = (largest - taken).min(members.len());
            order.extend_from_slice(&members[..n]);
            taken += n;
        }
    }
    order.shuffle(&mut rng);
    order
}

/// The length of every [`balanced_order_repeated`] for these labels and repeats.
pub fn balanced_len(labels: &[usize], repeats: &[usize], classes: usize) -> usize {
    let by_class = pools(labels, repeats, classes);
    let largest = by_class.iter().map(Vec::len).max().unwrap_or(0);
    largest * by_class.iter().filter(|m| !m.is_empty()).count()
}

/// Each class's images, image `i` listed `repeats[i]` times (default 1).
fn pools(labels: &[usize], repeats: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        let r = repeats.get(i).copied().unwrap_or(1);
        by_class[l].extend(std::iter::repeat_n(i, r));
    }
    by_class
}

/// NCHW floats for the images at `idx`, augmented with per-image seeds when `aug` is given;
/// the images are prepared in parallel on rayon's pool.
pub fn batch(split: &Split, idx: &[usize], aug: Option<(&Augment, u64)>) -> Vec<f32> {
    let per = input_len(split);
    let mut out = vec![0f32; idx.len() * per];
    out.par_chunks_mut(per.max(1))
        .zip(idx)
        .for_each(|(dst, &i)| write_input(split, i, aug, dst));
    out
}

/// [`batch`] on the calling thread only: the training loop builds its next batch this way on a
/// thread of its own while burn's steps keep rayon's pool busy.
pub fn batch_serial(split: &Split, idx: &[usize], aug: Option<(&Augment, u64)>) -> Vec<f32> {
    let per = input_len(split);
    let mut out = vec![0f32; idx.len() * per];
    for (dst, &i) in out.chunks_mut(per.max(1)).zip(idx) {
        write_input(split, i, aug, dst);
    }
    out
}

fn input_len(split: &Split) -> usize {
    split
        .images
        .first()
        .map_or(0, |i| 3 * (i.width() * i.height()) as usize)
}

/// Image `i` of `split`, augmented when `aug` is given, as CHW floats into `dst`.
fn write_input(split: &Split, i: usize, aug: Option<(&Augment, u64)>, dst: &mut [f32]) {
    match aug {
        Some((a, seed)) => {
            let img = a.apply(
                &split.images[i],
                seed.wrapping_add(i as u64)
                    .wrapping_mul(0x2545_f491_4f6c_dd1d),
            );
            write_nchw(&img, dst);
        }
        None => write_nchw(&split.images[i], dst),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use facegender_pipeline::classify::batch_one_nchw;
    use image::RgbImage;

    use super::*;

    #[test]
    fn balanced_order_draws_every_class_equally_and_is_seeded() {
        let labels = [0, 0, 0, 0, 0, 1, 1];
        let o = balanced_order(&labels, 2, 3, 0);
        assert_eq!(o.len(), 10);
        assert_eq!(o.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(o, balanced_order(&labels, 2, 3, 0));
        assert_ne!(o, balanced_order(&labels, 2, 3, 1));
    }

    #[test]
    fn oversampled_crops_are_drawn_more_often_and_classes_stay_balanced() {
        // class 0: crops 0-3, crop 0 repeated 3 times; class 1: crops 4-5
        let labels = [0, 0, 0, 0, 1, 1];
        let repeats = [3, 1, 1, 1, 1, 1];
        let o = balanced_order_repeated(&labels, &repeats, 2, 7, 0);
        assert_eq!(o.len(), balanced_len(&labels, &repeats, 2));
        assert_eq!(o.len(), 12);
        assert_eq!(o.iter().filter(|&&i| i == 0).count(), 3);
        assert_eq!(o.iter().filter(|&&i| labels[i] == 1).count(), 6);
        // no repeats is the plain balanced order
        assert_eq!(
            balanced_order_repeated(&labels, &[], 2, 7, 0),
            balanced_order(&labels, 2, 7, 0)
        );
        assert_eq!(balanced_len(&labels, &[], 2), 8);
    }

    #[test]
    fn a_batch_is_the_same_built_in_parallel_or_on_one_thread() {
        let img =
            |v: u8| RgbImage::from_fn(8, 8, |x, y| image::Rgb([v, x as u8 * 30, y as u8 * 30]));
        let split = Split {
            classes: vec!["a".into(), "b".into()],
            images: vec![img(10), img(200), img(90)],
            labels: vec![0, 1, 0],
            names: vec![String::new(); 3],
            paths: vec![PathBuf::new(); 3],
        };
        let aug = Augment::default();
        let idx = [2, 0, 1, 2];
        let par = batch(&split, &idx, Some((&aug, 7)));
        assert_eq!(par, batch_serial(&split, &idx, Some((&aug, 7))));
        assert_eq!(par.len(), 4 * 3 * 64);
        // image 2 twice with the same seed: the same pixels; unaugmented: the plain crop
        assert_eq!(par[..192], par[3 * 192..]);
        assert_eq!(batch(&split, &[1], None), batch_one_nchw(&split.images[1]));
        assert_ne!(
            batch(&split, &[1], None),
            batch(&split, &[1], Some((&aug, 7)))
        );
    }
}
