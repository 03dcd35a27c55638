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
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
