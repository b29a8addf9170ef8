//! Requantisation: turning an i32 accumulator into an int8 activation.
//!
//! tract (and so the ONNX files the host runs) computes the combined multiplier in f32 as
//! `M = (w_scale * x_scale) / y_scale` for a per-tensor weight scale and as
//! `M = w_scale * (x_scale / y_scale)` for per-channel ones (its optimiser folds the scalars first;
//! the order matters for the last bit of `M`, see `core/tests/tract_parity.rs`), and rounds `|acc| as f32 * M` to an integer with ties to
//! even, applying the sign afterwards. Two f32 roundings happen on the way: `|acc| as f32` (when
//! `|acc| >= 2^24`) and the product. [`Requant`] reproduces exactly that in integer arithmetic, so
//! the int8 path needs no floating point at run time and agrees with tract bit for bit.
//!
//! Rounding rule, named once: [`Requant::apply`] = *f32-product, ties to even, sign-magnitude*.

/// A positive f32 multiplier split at export time into a 24-bit mantissa and a power of two:
/// `M = mantissa * 2^exponent`, with `mantissa` in `[2^23, 2^24)` (or 0 for `M = 0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requant {
    pub mantissa: u32,
    pub exponent: i32,
}

/// Exponents outside this range are rejected by the model parser; they cover every normal f32.
pub const MIN_EXPONENT: i32 = -149 - 23;
pub const MAX_EXPONENT: i32 = 127;

impl Requant {
    /// Splits a finite, non-negative f32 exactly. Returns `None` for negative, NaN or infinite
    /// values. Subnormals are represented exactly too (mantissa normalised up, exponent lowered).
    pub fn from_f32(m: f32) -> Option<Self> {
        if !m.is_finite() || m < 0.0 {
            return None;
        }
        if m == 0.0 {
            return Some(Self {
                mantissa: 0,
                exponent: 0,
            });
        }
        let bits = m.to_bits();
        let biased = ((bits >> 23) & 0xff) as i32;
        let frac = bits & 0x7f_ffff;
        let (mut mantissa, mut exponent) = if biased == 0 {
            (frac, -149)
        } else {
            (frac | 0x80_0000, biased - 150)
        };
        while mantissa < 0x80_0000 {
            mantissa <<= 1;
            exponent -= 1;
        }
        Some(Self { mantissa, exponent })
    }

    /// True when the fields could have come from [`Requant::from_f32`].
    pub fn is_valid(&self) -> bool {
        if self.mantissa == 0 {
            return self.exponent == 0;
        }
        (0x80_0000..0x100_0000).contains(&self.mantissa)
            && (MIN_EXPONENT..=MAX_EXPONENT).contains(&self.exponent)
    }

    /// The multiplier as f32 (for reports and float helpers; not used on the int8 path).
    pub fn to_f32(&self) -> f32 {
        // Exact: `mantissa` fits in 24 bits; the power of two is applied in two steps so that
        // neither factor overflows or underflows on the way.
        let half = self.exponent / 2;
        self.mantissa as f32 * pow2(half) * pow2(self.exponent - half)
    }

    /// `round_ties_even(f32(f32(|acc|) * M)) * sign(acc)`, saturated to i32.
    pub fn apply(&self, acc: i32) -> i32 {
        if self.mantissa == 0 || acc == 0 {
            return 0;
        }
        let magnitude = acc.unsigned_abs() as u64;
        // f32(|acc|): keep 24 significant bits.
        let a = round_to_significant_bits(magnitude, 24);
        // The exact product fits in 56 bits; f32(product) keeps 24 significant bits.
        let p = round_to_significant_bits(a * self.mantissa as u64, 24);
        let r = if self.exponent >= 0 {
            // |result| >= 2^23 * 2^exponent: far outside any int8 range; saturate.
            if self.exponent >= 8 {
                u64::MAX
            } else {
                p << self.exponent
            }
        } else {
            shift_right_ties_even(p, (-self.exponent) as u32)
        };
        let r = r.min(i32::MAX as u64) as i32;
        if acc < 0 { -r } else { r }
    }
}

impl Requant {
    /// `round_ties_even(|acc| * M) * sign(acc)` with the product taken exactly: tract's
    /// fixed-point path, used when a layer's multiplier is the same for every channel.
    pub fn apply_exact(&self, acc: i32) -> i32 {
        if self.mantissa == 0 || acc == 0 {
            return 0;
        }
        let p = acc.unsigned_abs() as u64 * self.mantissa as u64;
        let r = if self.exponent >= 0 {
            if self.exponent >= 8 {
                u64::MAX
            } else {
                p << self.exponent
            }
        } else {
            shift_right_ties_even(p, (-self.exponent) as u32)
        };
        let r = r.min(i32::MAX as u64) as i32;
        if acc < 0 { -r } else { r }
    }
}

/// Results of at least this magnitude saturate every int8 output, whatever its zero point.
pub const NARROW_LIMIT: i32 = 1 << 10;

impl Requant {
    /// [`Requant::apply`] for an int8 output, cheaper: equal to it whenever that is below
    /// [`NARROW_LIMIT`] in magnitude, otherwise `±NARROW_LIMIT` with its sign, so that adding
    /// any zero point and saturating to int8 gives the same byte. Once the product's length is
    /// known, a result that large is decided without rounding, and a small one needs one 64-bit
    /// rounding (the f32 product) and one 32-bit rounding (the power of two).
    #[inline(always)]
    pub fn apply_narrow(&self, acc: i32) -> i32 {
        let a = acc.unsigned_abs();
        if self.mantissa == 0 || a == 0 {
            return 0;
        }
        if a >= 1 << 24 {
            // |acc| is rounded to f32 first: rare, take the general path
            return narrow(self.apply(acc));
        }
        let p = a as u64 * self.mantissa as u64; // exact, < 2^48, >= 2^23
        let (hi, lo) = ((p >> 32) as u32, p as u32);
        let len = if hi != 0 {
            64 - hi.leading_zeros() as i32
        } else {
            32 - lo.leading_zeros() as i32
        };
        // p * 2^exponent >= 2^(len - 1 + exponent), and rounding keeps it there
        if self.exponent >= 0 || len - 1 + self.exponent >= 10 {
            return if acc < 0 { -NARROW_LIMIT } else { NARROW_LIMIT };
        }
        // the f32 product keeps 24 significant bits: drop d = len - 24 (0..=24) bits, ties to
        // even, in 32-bit halves (p >> d < 2^24)
        let d = (len - 24) as u32;
        let q = shift_right_ties_even_split(hi, lo, d);
        // then the power of two: s = -exponent - d >= 14 more bits
        let r = shift_right_ties_even_u32(q, (-self.exponent) as u32 - d) as i32;
        if acc < 0 { -r } else { r }
    }

    /// [`Requant::apply_exact`] for an int8 output, as [`Requant::apply_narrow`] is for
    /// [`Requant::apply`].
    #[inline(always)]
    pub fn apply_exact_narrow(&self, acc: i32) -> i32 {
        let a = acc.unsigned_abs();
        if self.mantissa == 0 || a == 0 {
            return 0;
        }
        let p = a as u64 * self.mantissa as u64;
        let (hi, lo) = ((p >> 32) as u32, p as u32);
        let len = if hi != 0 {
            64 - hi.leading_zeros() as i32
        } else {
            32 - lo.leading_zeros() as i32
        };
        if self.exponent >= 0 || len - 1 + self.exponent >= 10 {
            return if acc < 0 { -NARROW_LIMIT } else { NARROW_LIMIT };
        }
        // p < 2^(t + 10): one rounding by t = -exponent bits, in 32-bit halves
        let t = (-self.exponent) as u32;
        let r = if t < 64 {
            shift_right_ties_even_split(hi, lo, t) as i32
        } else {
            shift_right_ties_even(p, t) as i32
        };
        if acc < 0 { -r } else { r }
    }
}

impl Requant {
    /// [`Requant::apply_narrow`] computed with the FPU's own f32 multiply, for targets with a
    /// hardware FPU (a dozen instructions instead of the integer emulation's fifty). The rule
    /// *is* an f32 product: `acc as f32` and `*` round to nearest even exactly as the emulation
    /// does (IEEE 754 binary32, sign-symmetric), and `(v + 1.5 * 2^23) - 1.5 * 2^23` rounds
    /// `|v| < 2^22` to an integer ties-to-even; larger `v` saturate in either form. Multipliers
    /// outside the normal f32 range take the integer path. Equal to `apply_narrow` on every
    /// input (tests below; the kernel tests in QEMU compare it with the integer reference).
    #[inline(always)]
    pub fn apply_narrow_fpu(&self, acc: i32) -> i32 {
        let Some(m) = self.normal_f32() else {
            return self.apply_narrow(acc);
        };
        let v = acc as f32 * m;
        if v.abs() >= NARROW_LIMIT as f32 {
            return if acc < 0 { -NARROW_LIMIT } else { NARROW_LIMIT };
        }
        ((v + MAGIC) - MAGIC) as i32
    }

    /// The multiplier as an f32 when it is a normal number (what export writes for any
    /// sensible scales), built from its bits; `None` for 0 and subnormals.
    #[inline]
    pub fn normal_f32(&self) -> Option<f32> {
        let biased = self.exponent + 150;
        if self.mantissa == 0 || !(1..=254).contains(&biased) {
            return None;
        }
        Some(f32::from_bits(
            ((biased as u32) << 23) | (self.mantissa & 0x7f_ffff),
        ))
    }
}

/// `1.5 * 2^23`: adding and subtracting it rounds an f32 below 2^22 in magnitude to an integer,
/// ties to even.
const MAGIC: f32 = 12_582_912.0;

/// The f32-product rule with no range test, for the inner loops of the fast kernels:
/// `acc as f32 * m` rounded to even through `MAGIC` (1.5 * 2^23). With `m` a [`Requant::normal_f32`] it
/// equals [`Requant::apply`] whenever `|apply(acc)| < 2^22`; above that it keeps the sign and
/// stays at least 2^21 in magnitude (the additions move a value that large by a few units at
/// most, and `as` saturates), so clamping to any int8 range gives the same byte.
#[inline(always)]
pub fn round_product_f32(acc: i32, m: f32) -> i32 {
    round_f32_unchecked(acc as f32 * m)
}

/// `v` rounded to an integer, ties to even, exactly when `|v| < 2^22`; larger values keep their
/// sign and at least 2^21 of magnitude (saturating at the i32 limits), and NaN gives 0.
#[inline(always)]
pub fn round_f32_unchecked(v: f32) -> i32 {
    ((v + MAGIC) - MAGIC) as i32
}

/// `v` clamped to `±NARROW_LIMIT`.
fn narrow(v: i32) -> i32 {
    v.clamp(-NARROW_LIMIT, NARROW_LIMIT)
}

/// `round_ties_even(p / 2^t)` for `p = hi * 2^32 + lo` and `t < 64`, when the quotient fits in
/// 32 bits: the 64-bit rounding in 32-bit halves.
#[inline(always)]
fn shift_right_ties_even_split(hi: u32, lo: u32, t: u32) -> u32 {
    let (q, above, tie) = if t == 0 {
        return lo;
    } else if t < 32 {
        let q = (lo >> t) | (hi << (32 - t));
        let (rem, half) = (lo & ((1 << t) - 1), 1u32 << (t - 1));
        (q, rem > half, rem == half)
    } else if t == 32 {
        (hi, lo > 1 << 31, lo == 1 << 31)
    } else {
        let s = t - 32;
        let (rem, half) = (hi & ((1 << s) - 1), 1u32 << (s - 1));
        (
            hi >> s,
            rem > half || (rem == half && lo > 0),
            rem == half && lo == 0,
        )
    };
    q + (above || (tie && q & 1 == 1)) as u32
}

/// `round_ties_even(x / 2^shift)` for 32-bit `x`.
#[inline]
fn shift_right_ties_even_u32(x: u32, shift: u32) -> u32 {
    if shift == 0 {
        return x;
    }
    if shift >= 32 {
        // x < 2^32 <= 2^shift: below one half unless shift == 32 and x > 2^31
        return (shift == 32 && x > 1 << 31) as u32;
    }
    let q = x >> shift;
    let rem = x & ((1u32 << shift) - 1);
    let half = 1u32 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// `x` rounded to `bits` significant bits, ties to even (the value, not the mantissa).
fn round_to_significant_bits(x: u64, bits: u32) -> u64 {
    let len = 64 - x.leading_zeros();
    if len <= bits {
        return x;
    }
    let shift = len - bits;
    shift_right_ties_even(x, shift) << shift
}

/// `round_ties_even(x / 2^shift)`.
pub fn shift_right_ties_even(x: u64, shift: u32) -> u64 {
    if shift == 0 {
        return x;
    }
    if shift >= 64 {
        // x < 2^64 <= 2^shift / 1: below one half unless shift == 64 and x > 2^63.
        return if shift == 64 && x > (1 << 63) { 1 } else { 0 };
    }
    let q = x >> shift;
    let rem = x & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

fn pow2(e: i32) -> f32 {
    // Only called with |e| <= ~90 by `to_f32`; clamp keeps it total.
    let e = e.clamp(-126, 127);
    f32::from_bits(((e + 127) as u32) << 23)
}

/// Saturating narrow to int8.
#[inline]
pub fn saturate_i8(v: i32) -> i8 {
    v.clamp(i8::MIN as i32, i8::MAX as i32) as i8
}

/// Rounds half to even, as ONNX QuantizeLinear and tract do (`f32::round_ties_even` is std-only
/// on this toolchain's `core`).
#[inline]
pub fn round_ties_even_f32(x: f32) -> f32 {
    libm::rintf(x)
}

/// ONNX QuantizeLinear for one value as tract evaluates it:
/// `saturate(round_ties_even(x * (1 / scale)) + zero_point)`, all in f32 (the reciprocal is
/// rounded to f32 first, which can differ from `x / scale` in the last bit).
pub fn quantize(x: f32, scale: f32, zero_point: i8) -> i8 {
    let q = round_ties_even_f32(x * (1.0 / scale));
    // NaN maps to the zero point; the clamp keeps huge values in range before the cast.
    let q = if q.is_nan() {
        0.0
    } else {
        q.clamp(-1.0e6, 1.0e6)
    };
    saturate_i8(q as i32 + zero_point as i32)
}

/// ONNX DequantizeLinear for one value: `(q - zero_point) * scale` in f32.
#[inline]
pub fn dequantize(q: i8, scale: f32, zero_point: i8) -> f32 {
    (q as i32 - zero_point as i32) as f32 * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The float computation tract performs, written the obvious way.
    fn tract_rule(acc: i32, m: f32) -> i32 {
        let p = acc.unsigned_abs() as f32 * m;
        let r = libm::rintf(p);
        let r = if r >= i32::MAX as f32 {
            i32::MAX
        } else {
            r as i32
        };
        if acc < 0 { -r } else { r }
    }

    #[test]
    fn splits_and_rebuilds_floats_exactly() {
        for m in [1.0f32, 0.5, 3.0e-5, 1.0e-38, 1.4e-45, 123.25, 0.0] {
            let r = Requant::from_f32(m).unwrap();
            assert!(r.is_valid());
            assert_eq!(r.to_f32(), m, "{m}");
        }
        assert!(Requant::from_f32(-1.0).is_none());
        assert!(Requant::from_f32(f32::NAN).is_none());
        assert!(Requant::from_f32(f32::INFINITY).is_none());
    }

    #[test]
    fn ties_round_to_even() {
        let half = Requant::from_f32(0.5).unwrap();
        assert_eq!(half.apply(1), 0);
        assert_eq!(half.apply(3), 2);
        assert_eq!(half.apply(5), 2);
        assert_eq!(half.apply(-3), -2);
        assert_eq!(half.apply(-5), -2);
    }

    #[test]
    fn large_accumulators_round_through_f32_first() {
        // 2^24 + 1 is not an f32: it becomes 2^24 before the multiply.
        let one = Requant::from_f32(1.0).unwrap();
        assert_eq!(one.apply((1 << 24) + 1), 1 << 24);
        assert_eq!(one.apply(i32::MIN), -i32::MAX);
        assert_eq!(one.apply(i32::MIN), tract_rule(i32::MIN, 1.0));
    }

    #[test]
    fn exact_rule_rounds_the_true_product() {
        // 3 * (1/3 as f32) is just above 1 in exact arithmetic; both rules give 1 here, but
        // at 2^24 + 1 the f32 rule first rounds the accumulator.
        let m = Requant::from_f32(1.0).unwrap();
        assert_eq!(m.apply_exact((1 << 24) + 1), (1 << 24) + 1);
        assert_eq!(m.apply((1 << 24) + 1), 1 << 24);
        let half = Requant::from_f32(0.5).unwrap();
        assert_eq!(half.apply_exact(5), 2);
        assert_eq!(half.apply_exact(7), 4);
        assert_eq!(half.apply_exact(-7), -4);
    }

    #[test]
    fn split_rounding_equals_the_64_bit_one_at_and_around_every_tie() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng
        };
        for t in 0..64u32 {
            for _ in 0..2000 {
                // a quotient that fits in 32 bits, and remainders at, around and far from half
                let q = next() >> 32 >> (next() % 32);
                let half = if t == 0 { 0 } else { 1u64 << (t - 1) };
                let far = if t == 0 {
                    0
                } else {
                    next() & ((1u64 << t) - 1)
                };
                for rem in [half, half.wrapping_sub(1), half + 1, far, 0] {
                    if t > 0 && rem >> t != 0 {
                        continue;
                    }
                    let Some(p) = (q << t).checked_add(rem).filter(|p| p >> t == q) else {
                        continue;
                    };
                    if q > u32::MAX as u64 - 1 {
                        continue;
                    }
                    let want = shift_right_ties_even(p, t);
                    let got = shift_right_ties_even_split((p >> 32) as u32, p as u32, t);
                    assert_eq!(got as u64, want, "p {p:#x} t {t}");
                }
            }
        }
    }

    /// Every accumulator `b * 2^j` (b odd) against odd mantissas over a range of exponents: the
    /// products have exact ties at every bit the rules drop, where a rounding slip shows.
    #[test]
    fn narrow_rules_equal_the_full_ones_on_constructed_ties() {
        let expect = |narrow: i32, full: i32| {
            if full.abs() < NARROW_LIMIT {
                narrow == full
            } else {
                narrow == NARROW_LIMIT * full.signum()
            }
        };
        let mut checked = 0;
        for m in [0x80_0001u32, 0x80_0003, 0xab_cdef, 0xff_ffff, 0xc0_0001] {
            for exponent in -70..-8 {
                let r = Requant {
                    mantissa: m,
                    exponent,
                };
                for j in 0..31 {
                    for b in (1u64..256).step_by(2) {
                        let a = b << j;
                        if a > i32::MAX as u64 {
                            continue;
                        }
                        for acc in [a as i32, -(a as i32)] {
                            assert!(
                                expect(r.apply_exact_narrow(acc), r.apply_exact(acc)),
                                "exact {acc} {r:?}"
                            );
                            assert!(expect(r.apply_narrow(acc), r.apply(acc)), "f32 {acc} {r:?}");
                            assert_eq!(
                                r.apply_narrow_fpu(acc),
                                r.apply_narrow(acc),
                                "fpu {acc} {r:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1_000_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn matches_the_f32_rule(acc in any::<i32>(), m in 1.0e-9f32..4.0f32) {
            let r = Requant::from_f32(m).unwrap();
            prop_assert_eq!(r.apply(acc), tract_rule(acc, m));
        }

        #[test]
        fn matches_the_f32_rule_near_ties(acc in -70_000i32..70_000, k in 1u32..4096, e in 1u32..20) {
            // multipliers with few mantissa bits produce exact ties often
            let m = k as f32 / (1u32 << e) as f32;
            let r = Requant::from_f32(m).unwrap();
            prop_assert_eq!(r.apply(acc), tract_rule(acc, m));
        }

        #[test]
        fn exact_rule_matches_wide_arithmetic(acc in any::<i32>(), m in 1.0e-9f32..4.0f32) {
            let r = Requant::from_f32(m).unwrap();
            // exact value acc * m as a ratio of integers, rounded half to even with i128
            let num = acc.unsigned_abs() as i128 * r.mantissa as i128;
            let want = if r.exponent >= 0 {
                num << r.exponent
            } else {
                let d = 1i128 << (-r.exponent);
                let (q, rem) = (num / d, num % d);
                if 2 * rem > d || (2 * rem == d && q % 2 == 1) { q + 1 } else { q }
            };
            let want = want.min(i32::MAX as i128) as i32;
            let want = if acc < 0 { -want } else { want };
            prop_assert_eq!(r.apply_exact(acc), want);
        }

        #[test]
        fn narrow_rules_equal_the_full_ones_for_every_int8_output(
            acc in any::<i32>(), m in 1.0e-9f32..4.0f32, small in any::<bool>(), zp in any::<i8>(),
        ) {
            // half the cases near the int8 range, where the answers differ most
            let m = if small { m * 1.0e-3 } else { m };
            let r = Requant::from_f32(m).unwrap();
            for (narrow, full) in [
                (r.apply_narrow(acc), r.apply(acc)),
                (r.apply_exact_narrow(acc), r.apply_exact(acc)),
            ] {
                if full.abs() < NARROW_LIMIT {
                    prop_assert_eq!(narrow, full);
                } else {
                    prop_assert_eq!(narrow, NARROW_LIMIT * full.signum());
                }
                let byte = |v: i32| saturate_i8(v.saturating_add(zp as i32));
                prop_assert_eq!(byte(narrow), byte(full));
            }
        }

        #[test]
        fn the_unchecked_product_rule_gives_the_reference_byte(
            acc in any::<i32>(), m in 1.0e-9f32..4.0f32, scale in 0u32..4, zp in any::<i8>(),
            (a, b) in any::<(i8, i8)>(),
        ) {
            // multipliers from 1e-9 up to 4000: results from exact through saturated
            let m = m * [1.0e-3f32, 1.0, 1.0e3, 1.0e-6][scale as usize];
            let r = Requant::from_f32(m).unwrap();
            let (lo, hi) = (a.min(b) as i32, a.max(b) as i32);
            let byte = |v: i32| v.saturating_add(zp as i32).clamp(lo, hi);
            let fast = |v: i32| v.clamp(lo - zp as i32, hi - zp as i32) + zp as i32;
            let m = r.normal_f32().unwrap();
            for acc in [acc, acc % 70_000, acc % 1_000] {
                prop_assert_eq!(fast(round_product_f32(acc, m)), byte(r.apply(acc)), "{} {}", acc, m);
            }
        }

        #[test]
        fn the_unchecked_product_rule_is_exact_at_ties(acc in -70_000i32..70_000, k in 1u32..4096, e in 1u32..24) {
            let r = Requant::from_f32(k as f32 / (1u32 << e) as f32).unwrap();
            let (fast, full) = (round_product_f32(acc, r.normal_f32().unwrap()), r.apply(acc));
            if full.abs() < 1 << 22 {
                prop_assert_eq!(fast, full);
            } else {
                prop_assert!(fast.signum() == full.signum() && fast.abs() >= 1 << 21);
            }
        }

        #[test]
        fn the_fpu_rule_equals_the_integer_one(
            acc in any::<i32>(), m in 1.0e-9f32..4.0f32, small in any::<bool>(),
        ) {
            let m = if small { m * 1.0e-3 } else { m };
            let r = Requant::from_f32(m).unwrap();
            prop_assert_eq!(r.apply_narrow_fpu(acc), r.apply_narrow(acc));
            let near = acc % 70_000;
            prop_assert_eq!(r.apply_narrow_fpu(near), r.apply_narrow(near));
        }

        #[test]
        fn narrow_rules_equal_the_full_ones_near_ties(acc in -70_000i32..70_000, k in 1u32..4096, e in 1u32..24) {
            let r = Requant::from_f32(k as f32 / (1u32 << e) as f32).unwrap();
            let full = r.apply(acc);
            if full.abs() < NARROW_LIMIT {
                prop_assert_eq!(r.apply_narrow(acc), full);
            }
            prop_assert_eq!(r.apply_narrow_fpu(acc), r.apply_narrow(acc));
            let full = r.apply_exact(acc);
            if full.abs() < NARROW_LIMIT {
                prop_assert_eq!(r.apply_exact_narrow(acc), full);
            }
        }

        #[test]
        fn quantize_inverts_dequantize(q in any::<i8>(), zp in any::<i8>(), s in 1.0e-3f32..1.0) {
            // (q - zp) stays in range only when it fits; otherwise saturation is expected
            let x = dequantize(q, s, zp);
            prop_assert_eq!(quantize(x, s, zp), q);
        }
    }
}
