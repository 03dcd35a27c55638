//! The two precisions the core computes in. Every op is written once, generic over `Real`.

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

/// A stored input value (a byte of an image, or a float): what it means as a number.
pub trait Raw: Copy + Send + Sync {
    fn raw(self) -> f64;
}

impl Raw for u8 {
    #[inline(always)]
    fn raw(self) -> f64 {
        self as f64
    }
}

/// f32 or f64. Sealed: the gemm backend dispatches on exactly these two types.
pub trait Real:
    num_traits::Float + Raw + Send + Sync + 'static + Debug + Default + AddAssign + SubAssign + MulAssign + Sum + private::Sealed
{
    /// "f32" or "f64", as in the engine spec.
    const NAME: &'static str;
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    /// The error function (GELU's Φ).
    fn erf(self) -> Self;
    /// (Φ(x), φ(x)): the standard normal CDF and density, for GELU. f64: exact (libm);
    /// f32: branch-free rational and polynomial approximations that vectorise, within a
    /// few ulp (tested against libm).
    fn normal_cdf_pdf(self) -> (Self, Self);
    /// `s` as f32 values when Self is f32, for the f32-only SIMD kernels; None for f64.
    fn as_f32_slice(s: &[Self]) -> Option<&[f32]>;
    fn as_f32_slice_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

/// Φ and φ in f64 from libm.
#[inline(always)]
fn cdf_pdf_f64(x: f64) -> (f64, f64) {
    let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
    (cdf, pdf)
}

/// exp(x) for x ≤ 0 in f32, without branches: 2ⁿ·p(r) (`exp_neg_parts`).
#[inline(always)]
fn exp_neg_f32(x: f32) -> f32 {
    let (n, p) = exp_neg_parts(x);
    // 2ⁿ from the bits of 2²³ + n + 127 (exact: n is a whole number in [−126, 0]), not by
    // `n as i32`: Rust's saturating float-to-int cast left the loop one scalar conversion
    // per lane (a third of GELU's time, perf 2026-12-04); the result is the same
    let biased = (n + (127.0 + 8_388_608.0)).to_bits().wrapping_sub(0x4B00_0000);
    f32::from_bits(biased << 23) * p
}

/// n and p(r) of exp(x) = 2ⁿ·p(r) for x ≤ 0, with r = x − n·ln 2, |r| ≤ ln2/2.
#[inline(always)]
fn exp_neg_parts(x: f32) -> (f32, f32) {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.987_569_1e-4f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 0.166_666_66);
    let p = p.mul_add(r, 0.5);
    (n, (p * r).mul_add(r, r) + 1.0)
}

/// erf(x) in f32: a rational approximation on [−4, 4] (erf is ±1 in f32 beyond).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = (-2.726_142_3e-10f32).mul_add(x2, 2.770_681_4e-8);
    let p = p.mul_add(x2, -2.101_024e-6);
    let p = p.mul_add(x2, -5.692_506_4e-5);
    let p = p.mul_add(x2, -7.349_906_3e-4);
    let p = p.mul_add(x2, -2.954_6e-3);
    let p = p.mul_add(x2, -1.609_603_4e-2);
    let q = (-1.456_607_2e-5f32).mul_add(x2, -2.133_740_6e-4);
    let q = q.mul_add(x2, -1.682_827e-3);
    let q = q.mul_add(x2, -7.373_329e-3);
    let q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

impl Raw for f32 {
    #[inline(always)]
    fn raw(self) -> f64 {
        self as f64
    }
}

impl Raw for f64 {
    #[inline(always)]
    fn raw(self) -> f64 {
        self
    }
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn normal_cdf_pdf(self) -> (Self, Self) {
        let cdf = 0.5 * (1.0 + erf_f32(self * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = exp_neg_f32(-0.5 * self * self) * 0.398_942_3;
        (cdf, pdf)
    }
    #[inline(always)]
    fn as_f32_slice(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    #[inline(always)]
    fn as_f32_slice_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline(always)]
    fn normal_cdf_pdf(self) -> (Self, Self) {
        cdf_pdf_f64(self)
    }
    #[inline(always)]
    fn as_f32_slice(_: &[Self]) -> Option<&[f32]> {
        None
    }
    #[inline(always)]
    fn as_f32_slice_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exp_neg_f32 as it was, with 2ⁿ by Rust's float-to-int cast.
    fn exp_neg_f32_by_cast(x: f32) -> f32 {
        let (n, p) = exp_neg_parts(x);
        f32::from_bits(((n as i32 + 127) << 23) as u32) * p
    }

    /// 2ⁿ from the bits (exp_neg_f32) gives what the cast gave, bit for bit.
    #[test]
    fn exp_neg_scale_by_bits_matches_the_cast() {
        let specials = [f32::NEG_INFINITY, f32::NAN, -1e30, -87.5, -87.0, -0.0, 0.0, -f32::MIN_POSITIVE];
        for x in (0..=2_000_000).map(|i| i as f32 * -5e-5).chain(specials) {
            assert_eq!(exp_neg_f32(x).to_bits(), exp_neg_f32_by_cast(x).to_bits(), "x = {x}");
        }
    }

    /// The f32 approximations against libm in f64, over the range that matters.
    #[test]
    fn fast_normal_cdf_pdf_is_within_a_few_ulp() {
        let (mut worst_cdf, mut worst_pdf) = (0.0f64, 0.0f64);
        for i in -200_000..=200_000 {
            let x = i as f32 * 6e-5;
            let (c, p) = x.normal_cdf_pdf();
            let (c64, p64) = cdf_pdf_f64(x as f64);
            worst_cdf = worst_cdf.max((c as f64 - c64).abs());
            worst_pdf = worst_pdf.max((p as f64 - p64).abs());
        }
        for &x in &[-1e4f32, -90.0, -40.0, -9.0, 9.0, 40.0, 1e4] {
            let (c, p) = x.normal_cdf_pdf();
            assert!(c.is_finite() && p.is_finite() && (0.0..=1.0).contains(&c) && p >= 0.0, "{x}: {c} {p}");
        }
        assert!(worst_cdf < 3e-7 && worst_pdf < 2e-7, "cdf {worst_cdf:e}, pdf {worst_pdf:e}");
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
