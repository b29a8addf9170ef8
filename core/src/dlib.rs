//! dlib's serialisation (`dlib/serialize.h`), read byte by byte with the offset of every fault
//! (std). Both dlib files the project reads go through it: the shape predictor
//! ([`crate::ert::dlib`]) and the face-recognition network (the `facegender-descriptor` crate).
//!
//! - integers: a control byte (bit 7: negative, low 4 bits: byte count `n`, 1..=8) then the
//!   magnitude in `n` little-endian bytes; unsigned types must not set bit 7;
//! - floats: mantissa (i64) then exponent (i16), value `ldexp(mantissa as f32, exponent)`;
//!   exponents 32000/32001/32002 stand for +inf/-inf/NaN;
//! - `bool`: the character `'0'` or `'1'`; `std::string`: unsigned length then the bytes;
//! - `std::vector`: unsigned length then elements; `matrix`: `-rows`, `-cols` (signed) then the
//!   elements row by row;
//! - `resizable_tensor` (`dlib/cuda/tensor.h`): `int version = 2`, four dimensions, then the
//!   elements as 4-byte little-endian IEEE floats.

use std::string::String;
use std::vec::Vec;

/// What went wrong, in which file, and at which byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DlibError {
    /// Which dlib object the file holds ("shape predictor", ...).
    pub file: &'static str,
    pub offset: usize,
    pub what: &'static str,
}

impl core::fmt::Display for DlibError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "dlib {}, byte {}: {}", self.file, self.offset, self.what)
    }
}

impl std::error::Error for DlibError {}

/// A cursor over a dlib file; every read checks the bytes left.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    file: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, naming `file` ("shape predictor", ...) in its errors.
    pub fn new(bytes: &'a [u8], file: &'static str) -> Self {
        Self { bytes, at: 0, file }
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// An error at the current offset.
    pub fn err<T>(&self, what: &'static str) -> Result<T, DlibError> {
        Err(DlibError {
            file: self.file,
            offset: self.at,
            what,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DlibError> {
        if n > self.remaining() {
            return self.err("unexpected end of file");
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, DlibError> {
        Ok(self.take(1)?[0])
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

    /// An unsigned integer (`unsigned long`, `size_t`).
    pub fn uint(&mut self) -> Result<u64, DlibError> {
        Ok(self.raw_int(8, false)?.1)
    }

    /// A signed integer of at most `max_bytes` bytes (`int` = 4, `long` = 8).
    pub fn int(&mut self, max_bytes: u8) -> Result<i64, DlibError> {
        let (neg, v) = self.raw_int(max_bytes, true)?;
        let Ok(v) = i64::try_from(v) else {
            return self.err("integer out of range");
        };
        Ok(if neg { -v } else { v })
    }

    /// A float in dlib's portable encoding.
    pub fn float(&mut self) -> Result<f32, DlibError> {
        let mantissa = self.int(8)?;
        let exponent = self.int(2)?;
        Ok(match exponent {
            32000 => f32::INFINITY,
            32001 => f32::NEG_INFINITY,
            32002 => f32::NAN,
            e => ((mantissa as f32) as f64 * 2f64.powi(e as i32)) as f32,
        })
    }

    /// A `bool`: `'0'` or `'1'`.
    pub fn bool(&mut self) -> Result<bool, DlibError> {
        match self.byte()? {
            b'0' => Ok(false),
            b'1' => Ok(true),
            _ => self.err("bad bool"),
        }
    }

    /// A `std::string` (names and version tags: ASCII).
    pub fn string(&mut self) -> Result<String, DlibError> {
        let n = self.vec_len()?;
        let s = self.take(n)?;
        match core::str::from_utf8(s) {
            Ok(s) => Ok(s.into()),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    /// A vector length, bounded by the bytes left (every element takes at least one byte).
    pub fn vec_len(&mut self) -> Result<usize, DlibError> {
        let n = self.uint()?;
        if n > self.remaining() as u64 {
            return self.err("vector longer than the file");
        }
        Ok(n as usize)
    }

    /// A column matrix of floats.
    pub fn column(&mut self) -> Result<Vec<f32>, DlibError> {
        let (r, c) = (self.int(8)?.unsigned_abs(), self.int(8)?.unsigned_abs());
        if c != 1 {
            return self.err("expected a column vector");
        }
        if r > self.remaining() as u64 {
            return self.err("matrix larger than the file");
        }
        (0..r).map(|_| self.float()).collect()
    }

    /// A `resizable_tensor`: its dimensions (samples, k, rows, cols) and its elements.
    pub fn tensor(&mut self) -> Result<([usize; 4], Vec<f32>), DlibError> {
        if self.int(4)? != 2 {
            return self.err("unsupported tensor version");
        }
        let mut dims = [0usize; 4];
        for d in &mut dims {
            match usize::try_from(self.int(8)?) {
                Ok(v) => *d = v,
                Err(_) => return self.err("negative tensor dimension"),
            }
        }
        let n = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|n| n.checked_mul(4).is_some_and(|b| b <= self.remaining()));
        let Some(n) = n else {
            return self.err("tensor larger than the file");
        };
        let raw = self.take(n * 4)?;
        let data = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((dims, data))
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DlibError> {
        if self.remaining() != 0 {
            return self.err("trailing bytes after the model");
        }
        Ok(())
    }
}
