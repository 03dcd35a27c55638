//! Run-time choice of vector instructions for the core's own loops. The wheel is built
//! for baseline x86-64 (SSE2), so that it runs everywhere; a function declared with
//! `simd_fn!` is compiled three times, once more with AVX2 and FMA and once with AVX-512
//! (F and DQ) as well, and the widest version the CPU has runs. They compute the same
//! operations on each element (the compiler neither reassociates nor fuses them), so their
//! results are the same bits; AVX-512 took GELU's forward pass from 5.7 to 4.2 % of the
//! speed net's step (Xeon, 2026-12-04). (gemm chooses its own kernels the same way.)

/// Declare `fn name<T: Real>(args) { body }` in three versions, dispatched at run time.
/// The body must call only `#[inline(always)]` helpers in its hot loops, so that they are
/// compiled into the wider version too.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<T: Real>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name<T: Real>($($arg: $ty),*) {
            #[inline(always)]
            fn imp<T: Real>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide<T: Real>($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
                unsafe fn wider<T: Real>($($arg: $ty),*) {
                    imp($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    if $crate::lanes::has_avx512() {
                        // SAFETY: this CPU has the features `wider` was compiled for.
                        return unsafe { wider($($arg),*) };
                    }
                    // SAFETY: this CPU has the features `wide` was compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
    // the same with a second type parameter (a Winograd tiling), passed explicitly
    ($(#[$meta:meta])* $vis:vis fn $name:ident<T: Real, $w:ident: $wb:path>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name<T: Real, $w: $wb>($($arg: $ty),*) {
            #[inline(always)]
            fn imp<T: Real, $w: $wb>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide<T: Real, $w: $wb>($($arg: $ty),*) {
                    imp::<T, $w>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,avx512f,avx512dq")]
                unsafe fn wider<T: Real, $w: $wb>($($arg: $ty),*) {
                    imp::<T, $w>($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    if $crate::lanes::has_avx512() {
                        // SAFETY: this CPU has the features `wider` was compiled for.
                        return unsafe { wider::<T, $w>($($arg),*) };
                    }
                    // SAFETY: this CPU has the features `wide` was compiled for.
                    return unsafe { wide::<T, $w>($($arg),*) };
                }
            }
            imp::<T, $w>($($arg),*)
        }
    };
}

pub(crate) use simd_fn;
