//! Reading dlib's own serialized `shape_predictor` (e.g. `shape_predictor_68_face_landmarks.dat`
//! from Debian's `libdlib-data`) into a [`PredictorSpec`] (std).
//!
//! dlib's encodings are read by [`crate::dlib::Reader`]; a `dlib::vector<float, 2>` is x then y.
//!
//! The predictor: `int version = 1`, `initial_shape` (matrix), `forests` (vector of vector of
//! trees: `splits` = vector of `(idx1: u64, idx2: u64, thresh: f32)`, `leaf_values` = vector of
//! matrices), `anchor_idx` (vector of vector of u64), `deltas` (vector of vector of vector2).

use std::vec::Vec;

use super::write::{CascadeSpec, PredictorSpec, Tree};

pub use crate::dlib::DlibError;
use crate::dlib::Reader;

/// A node or split index below `limit`.
fn index(r: &mut Reader<'_>, limit: usize) -> Result<u16, DlibError> {
    let v = r.uint()?;
    match u16::try_from(v) {
        Ok(v) if (v as usize) < limit => Ok(v),
        _ => r.err("index out of range"),
    }
}

/// Parses a dlib `shape_predictor` file. The whole input must be consumed.
pub fn parse(bytes: &[u8]) -> Result<PredictorSpec, DlibError> {
    let mut r = Reader::new(bytes, "shape predictor");
    if r.int(4)? != 1 {
        return r.err("unsupported shape_predictor version");
    }
    let initial_shape = r.column()?;
    if initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
        return r.err("initial shape is not a list of points");
    }
    let landmarks = initial_shape.len() / 2;
    let n_cascades = r.vec_len()?;
    let mut forests = Vec::with_capacity(n_cascades);
    for _ in 0..n_cascades {
        let n_trees = r.vec_len()?;
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let n_splits = r.vec_len()?;
            let mut raw = Vec::with_capacity(n_splits);
            for _ in 0..n_splits {
                raw.push((r.uint()?, r.uint()?, r.float()?));
            }
            let n_leaves = r.vec_len()?;
            let leaves = (0..n_leaves)
                .map(|_| r.column())
                .collect::<Result<Vec<_>, _>>()?;
            if leaves.iter().any(|l| l.len() != initial_shape.len()) {
                return r.err("leaf vector length differs from the shape");
            }
            trees.push((raw, leaves));
        }
        forests.push(trees);
    }
    if r.vec_len()? != n_cascades {
        return r.err("anchor list count differs from cascade count");
    }
    let mut anchors = Vec::with_capacity(n_cascades);
    for _ in 0..n_cascades {
        let n = r.vec_len()?;
        anchors.push(
            (0..n)
                .map(|_| index(&mut r, landmarks))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    if r.vec_len()? != n_cascades {
        return r.err("delta list count differs from cascade count");
    }
    let mut cascades = Vec::with_capacity(n_cascades);
    for (trees, anchors) in forests.into_iter().zip(anchors) {
        let n = r.vec_len()?;
        let deltas = (0..n)
            .map(|_| Ok((r.float()?, r.float()?)))
            .collect::<Result<Vec<_>, _>>()?;
        if deltas.len() != anchors.len() {
            return r.err("delta count differs from anchor count");
        }
        let features = anchors.len();
        let mut out = Vec::with_capacity(trees.len());
        for (raw, leaves) in trees {
            let mut splits = Vec::with_capacity(raw.len());
            for (i1, i2, th) in raw {
                match (u16::try_from(i1), u16::try_from(i2)) {
                    (Ok(a), Ok(b)) if (a as usize) < features && (b as usize) < features => {
                        splits.push((a, b, th))
                    }
                    _ => return r.err("split feature index out of range"),
                }
            }
            out.push(Tree { splits, leaves });
        }
        cascades.push(CascadeSpec {
            anchors,
            deltas,
            trees: out,
        });
    }
    r.finish()?;
    Ok(PredictorSpec {
        initial_shape,
        cascades,
    })
}
