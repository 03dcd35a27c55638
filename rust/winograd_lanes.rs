//! What the Winograd transforms (winograd.rs) combine. The transform formulas are written
//! once over `Val`: one number (the weights' transforms), or lanes of consecutive channels
//! or filters (the data's), where each operation is one vector instruction. The data
//! transforms load and store through `Lane`: one number (the last channels), N lanes as a
//! plain array (any type, any CPU), or eight or sixteen f32 lanes in an AVX or AVX-512
//! register (lanes.rs `Y8`, `Z16`).
//!
//! Why the register type: with arrays, the compiler split some loads and stores into
//! 128-bit halves, and a 256-bit load of values just stored as two halves stalls (no store
//! forwarding). That stall was 13–46 % of the input and delta transforms' samples (perf,
//! Zen 4, 2026-12-04). Both compute the same operations in the same order (no fused
//! multiply-adds), so their results are bit-identical.

use crate::real::Real;
use std::ops::{Add, Mul, Neg, Sub};

pub(crate) trait Val<T: Real>: Copy + Add<Output = Self> + Sub<Output = Self> + Neg<Output = Self> + Mul<T, Output = Self> {
    fn zero() -> Self;
}

/// Values of a transform's operand that load from and store to a slice of T.
pub(crate) trait Lane<T: Real>: Val<T> {
    /// Consecutive values per lane group.
    const N: usize;
    fn load(s: &[T], at: usize) -> Self;
    fn store(self, d: &mut [T], at: usize);
}

impl<T: Real> Val<T> for T {
    #[inline(always)]
    fn zero() -> T {
        T::zero()
    }
}

impl<T: Real> Lane<T> for T {
    const N: usize = 1;
    #[inline(always)]
    fn load(s: &[T], at: usize) -> T {
        s[at]
    }
    #[inline(always)]
    fn store(self, d: &mut [T], at: usize) {
        d[at] = self;
    }
}

/// N lanes as an array, each operation a plain loop over them.
#[derive(Clone, Copy)]
pub(crate) struct L<T, const N: usize>([T; N]);

macro_rules! lane_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl<T: Real, const N: usize> $tr for L<T, N> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                let mut r = self.0;
                for i in 0..N {
                    r[i] = self.0[i] $op o.0[i];
                }
                L(r)
            }
        }
    };
}
lane_op!(Add, add, +);
lane_op!(Sub, sub, -);

impl<T: Real, const N: usize> Neg for L<T, N> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        let mut r = self.0;
        for v in r.iter_mut() {
            *v = -*v;
        }
        L(r)
    }
}

impl<T: Real, const N: usize> Mul<T> for L<T, N> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, k: T) -> Self {
        let mut r = self.0;
        for v in r.iter_mut() {
            *v *= k;
        }
        L(r)
    }
}

impl<T: Real, const N: usize> Val<T> for L<T, N> {
    #[inline(always)]
    fn zero() -> Self {
        L([T::zero(); N])
    }
}

impl<T: Real, const N: usize> Lane<T> for L<T, N> {
    const N: usize = N;
    #[inline(always)]
    fn load(s: &[T], at: usize) -> Self {
        L(*s[at..].first_chunk::<N>().expect("lanes inside their slice"))
    }
    #[inline(always)]
    fn store(self, d: &mut [T], at: usize) {
        *d[at..].first_chunk_mut::<N>().expect("lanes inside their slice") = self.0;
    }
}

/// AVX and AVX-512 registers (lanes.rs `Y8`, `Z16`) as the transforms' lanes for f32.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lane, Val};
    use crate::lanes::{Y8, Z16};

    macro_rules! wide_lane {
        ($name:ident) => {
            impl Val<f32> for $name {
                #[inline(always)]
                fn zero() -> $name {
                    $name::zero()
                }
            }

            impl Lane<f32> for $name {
                const N: usize = $name::N;
                #[inline(always)]
                fn load(s: &[f32], at: usize) -> $name {
                    $name::load(s, at)
                }
                #[inline(always)]
                fn store(self, d: &mut [f32], at: usize) {
                    $name::store(self, d, at)
                }
            }
        };
    }
    wide_lane!(Y8);
    wide_lane!(Z16);
}
