//! Reading dlib's own serialized `shape_predictor` (e.g. `shape_predictor_68_face_landmarks.dat`
//! from Debian's `libdlib-data`) into a [`PredictorSpec`] (std).
//!
//! dlib's encodings (`dlib/serialize.h`, `float_details.h`, `matrix.h`, `vector.h`):
//! - integers: a control byte (bit 7: negative, low 4 bits: byte count `n`, 1..=8) then the
//!   magnitude in `n` little-endian bytes; unsigned types must not set bit 7;
//! - floats: mantissa (i64) then exponent (i16), value `ldexp(mantissa as f32, exponent)`;
//!   exponents 32000/32001/32002 stand for +inf/-inf/NaN;
//! - `std::vector`: unsigned length then elements; `matrix`: `-rows`, `-cols` (signed) then the
//!   elements row by row; `dlib::vector<float, 2>`: x then y.
//!
//! The predictor: `int version = 1`, `initial_shape` (matrix), `forests` (vector of vector of
//! trees: `splits` = vector of `(idx1: u64, idx2: u64, thresh: f32)`, `leaf_values` = vector of
//! matrices), `anchor_idx` (vector of vector of u64), `deltas` (vector of vector of vector2).

use std::vec::Vec;

use super::write::{CascadeSpec, PredictorSpec, Tree};

/// What went wrong, and at which byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DlibError {
    pub offset: usize,
    pub what: &'static str,
}

impl core::fmt::Display for DlibError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "dlib shape predictor, byte {}: {}",
            self.offset, self.what
        )
    }
}

impl std::error::Error for DlibError {}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn err<T>(&self, what: &'static str) -> Result<T, DlibError> {
        Err(DlibError {
            offset: self.at,
            what,
        })
    }

    fn byte(&mut self) -> Result<u8, DlibError> {
        let Some(&v) = self.b.get(self.at) else {
            return self.err("unexpected end of file");
        };
        self.at += 1;
        Ok(v)
    }

    /// Sign and magnitude of one integer.
    fn raw_int(&mut self, max_bytes: u8, signed: bool) -> Result<(bool, u64), DlibError> {
        let c = self.byte()?;
        let negative = c & 0x80 != 0;
        if negative && !signed {
            return self.err("negative value for an unsigned integer");
        }
        let n = c & 0x0f;
        if n == 0 || n > max_bytes {
            return self.err("bad integer size");
        }
        let mut v = 0u64;
        for i in 0..n {
            v |= (self.byte()? as u64) << (8 * i);
        }
        Ok((negative, v))
    }

    fn uint(&mut self) -> Result<u64, DlibError> {
        Ok(self.raw_int(8, false)?.1)
    }

    fn int(&mut self, max_bytes: u8) -> Result<i64, DlibError> {
        let (neg, v) = self.raw_int(max_bytes, true)?;
        let Ok(v) = i64::try_from(v) else {
            return self.err("integer out of range");
        };
        Ok(if neg { -v } else { v })
    }

    fn float(&mut self) -> Result<f32, DlibError> {
        let mantissa = self.int(8)?;
        let exponent = self.int(2)?;
        Ok(match exponent {
            32000 => f32::INFINITY,
            32001 => f32::NEG_INFINITY,
            32002 => f32::NAN,
            e => ((mantissa as f32) as f64 * 2f64.powi(e as i32)) as f32,
        })
    }

    /// A vector length, bounded by the bytes left (every element takes at least one byte).
    fn len(&mut self) -> Result<usize, DlibError> {
        let n = self.uint()?;
        if n > (self.b.len() - self.at) as u64 {
            return self.err("vector longer than the file");
        }
        Ok(n as usize)
    }

    fn column(&mut self) -> Result<Vec<f32>, DlibError> {
        let (r, c) = (self.int(8)?.unsigned_abs(), self.int(8)?.unsigned_abs());
        if c != 1 {
            return self.err("expected a column vector");
        }
        if r > (self.b.len() - self.at) as u64 {
            return self.err("matrix larger than the file");
        }
        (0..r).map(|_| self.float()).collect()
    }

    fn index(&mut self, limit: usize) -> Result<u16, DlibError> {
        let v = self.uint()?;
        match u16::try_from(v) {
            Ok(v) if (v as usize) < limit => Ok(v),
            _ => self.err("index out of range"),
        }
    }
}

/// Parses a dlib `shape_predictor` file. The whole input must be consumed.
pub fn parse(bytes: &[u8]) -> Result<PredictorSpec, DlibError> {
    let mut r = Reader { b: bytes, at: 0 };
    if r.int(4)? != 1 {
        return r.err("unsupported shape_predictor version");
    }
    let initial_shape = r.column()?;
    if initial_shape.is_empty() || initial_shape.len() % 2 != 0 {
        return r.err("initial shape is not a list of points");
    }
    let landmarks = initial_shape.len() / 2;
    let n_cascades = r.len()?;
    let mut forests = Vec::with_capacity(n_cascades);
    for _ in 0..n_cascades {
        let n_trees = r.len()?;
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            let n_splits = r.len()?;
            let mut raw = Vec::with_capacity(n_splits);
            for _ in 0..n_splits {
                raw.push((r.uint()?, r.uint()?, r.float()?));
            }
            let n_leaves = r.len()?;
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
    if r.len()? != n_cascades {
        return r.err("anchor list count differs from cascade count");
    }
    let mut anchors = Vec::with_capacity(n_cascades);
    for _ in 0..n_cascades {
        let n = r.len()?;
        anchors.push(
            (0..n)
                .map(|_| r.index(landmarks))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    if r.len()? != n_cascades {
        return r.err("delta list count differs from cascade count");
    }
    let mut cascades = Vec::with_capacity(n_cascades);
    for (trees, anchors) in forests.into_iter().zip(anchors) {
        let n = r.len()?;
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
    if r.at != bytes.len() {
        return r.err("trailing bytes after the model");
    }
    Ok(PredictorSpec {
        initial_shape,
        cascades,
    })
}
