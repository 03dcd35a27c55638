//! Eight f32 lanes in the vector instructions this CPU has: AVX2 with FMA on x86-64 (found
//! at run time: wheels are built for baseline x86-64), NEON on aarch64 (always there). The
//! hand-written kernels (direct1.rs, the stream splits of planar.rs, direct.rs's dot) are
//! written once, over `Isa`; a value of `Isa` exists only where its instructions do, so
//! its methods are safe, and loads and stores take references to exactly eight floats, so
//! the callers' slicing is the bounds check.
//!
//! Both instruction sets compute the same things in the same order (fused multiply-adds,
//! one horizontal-sum tree), so the kernels' results are bit-identical across them.
//!
//! `Y8` and `Z16` below are AVX and AVX-512 registers with arithmetic operators, for the
//! Winograd transforms' formulas written over a generic number type.

/// The operations the kernels use, on `V`: eight f32 lanes.
pub trait Lanes: Copy {
    type V: Copy;
    fn zero(self) -> Self::V;
    fn splat(self, x: f32) -> Self::V;
    /// a·b + c, rounded once.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)): one tree for every instruction set.
    #[inline(always)]
    fn sum(self, v: Self::V) -> f32 {
        let mut l = [0f32; 8];
        self.store(v, &mut l);
        ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
    }
    fn load(self, s: &[f32; 8]) -> Self::V;
    fn store(self, v: Self::V, out: &mut [f32; 8]);
    /// The first s.len() < 8 lanes from s, the others zero.
    fn load_part(self, s: &[f32]) -> Self::V;
    /// Two interleaved streams of 8 values apart: (s[0], s[2], …), (s[1], s[3], …).
    fn split2(self, s: &[f32; 16]) -> [Self::V; 2];
    /// Three interleaved streams of 8 values apart.
    fn split3(self, s: &[f32; 24]) -> [Self::V; 3];
    /// The inverse of split2: out = a0 b0 a1 b1 … a7 b7.
    fn merge2(self, a: Self::V, b: Self::V, out: &mut [f32; 16]);
}

/// `s[at..at + N]` as an array reference (one bounds check).
#[inline(always)]
pub fn chunk<const N: usize>(s: &[f32], at: usize) -> &[f32; N] {
    s[at..].first_chunk::<N>().expect("a vector load inside its slice")
}

#[inline(always)]
pub fn chunk_mut<const N: usize>(s: &mut [f32], at: usize) -> &mut [f32; N] {
    s[at..].first_chunk_mut::<N>().expect("a vector store inside its slice")
}

/// `s[at..at + N]` as an array reference, unchecked: for loops whose bounds were checked
/// once, before the loop.
///
/// # Safety
/// at + N ≤ s.len().
#[inline(always)]
pub unsafe fn chunk_unchecked<const N: usize>(s: &[f32], at: usize) -> &[f32; N] {
    debug_assert!(at + N <= s.len());
    // SAFETY: the caller's: N floats from `at` lie inside `s`.
    unsafe { &*s.as_ptr().add(at).cast::<[f32; N]>() }
}

/// This CPU's vector instructions, if the kernels have a version for them.
#[inline(always)]
pub fn detect() -> Option<Isa> {
    Isa::detect()
}

#[cfg(target_arch = "x86_64")]
pub use x86::Avx2 as Isa;

#[cfg(target_arch = "aarch64")]
pub use arm::Neon as Isa;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub use none::NoLanes as Isa;

/// Declare `fn name(l: Isa, args) { body }` compiled with the instruction set enabled (a
/// `#[target_feature]` function on x86-64; NEON is the baseline of aarch64). The body must
/// call only `#[inline(always)]` helpers in its loops, and those must not form closures
/// around vector operations: a closure is compiled without the features of its caller.
macro_rules! lanes_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($l:ident: Isa $(, $arg:ident: $ty:ty)* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($l: $crate::lanes::Isa, $($arg: $ty),*) $(-> $ret)? {
            // the body itself in the function with the features, so that its closures
            // have them too (a closure does not inherit them from its caller)
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide($l: $crate::lanes::Isa, $($arg: $ty),*) $(-> $ret)? $body
                // SAFETY: a value of Isa (x86::Avx2) exists only on CPUs with AVX2 and FMA.
                unsafe { wide($l, $($arg),*) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            $body
        }
    };
}

pub(crate) use lanes_fn;

#[cfg(target_arch = "x86_64")]
pub(crate) use wide::{Y8, Z16};

/// Does this CPU have AVX-512F and DQ (the `Z16` lanes; DQ for the sign flip)?
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512dq") && Isa::detect().is_some()
}

/// Eight f32 lanes in an AVX register (Y8) and sixteen in an AVX-512 one (Z16), with
/// arithmetic operators, for formulas written once over a generic number type (the
/// Winograd transforms, winograd_lanes.rs).
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{chunk, chunk_mut};
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Neg, Sub};

    macro_rules! wide_lanes {
        ($(#[$doc:meta])* $name:ident, $reg:ty, $n:literal, $zero:ident, $load:ident, $store:ident, $add:ident, $sub:ident, $xor:ident, $mul:ident, $set1:ident) => {
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub(crate) struct $name($reg);

            impl $name {
                pub(crate) const N: usize = $n;
                #[inline(always)]
                pub(crate) fn zero() -> $name {
                    // SAFETY: see the type.
                    $name(unsafe { $zero() })
                }
                #[inline(always)]
                pub(crate) fn load(s: &[f32], at: usize) -> $name {
                    // SAFETY: see the type; the pointer is to exactly N floats.
                    $name(unsafe { $load(chunk::<$n>(s, at).as_ptr()) })
                }
                #[inline(always)]
                pub(crate) fn store(self, d: &mut [f32], at: usize) {
                    // SAFETY: see the type; the pointer is to exactly N floats.
                    unsafe { $store(chunk_mut::<$n>(d, at).as_mut_ptr(), self.0) }
                }
            }

            impl Add for $name {
                type Output = $name;
                #[inline(always)]
                fn add(self, o: $name) -> $name {
                    // SAFETY: see the type.
                    $name(unsafe { $add(self.0, o.0) })
                }
            }

            impl Sub for $name {
                type Output = $name;
                #[inline(always)]
                fn sub(self, o: $name) -> $name {
                    // SAFETY: see the type.
                    $name(unsafe { $sub(self.0, o.0) })
                }
            }

            impl Neg for $name {
                type Output = $name;
                #[inline(always)]
                fn neg(self) -> $name {
                    // SAFETY: see the type. Flipping the sign bit is what scalar negation
                    // does, −0 included.
                    $name(unsafe { $xor(self.0, $set1(-0.0)) })
                }
            }

            impl Mul<f32> for $name {
                type Output = $name;
                #[inline(always)]
                fn mul(self, k: f32) -> $name {
                    // SAFETY: see the type.
                    $name(unsafe { $mul(self.0, $set1(k)) })
                }
            }
        };
    }

    wide_lanes!(
        /// Eight f32 lanes in an AVX register.
        ///
        /// Its operations are AVX instructions without a proof that the CPU has them: values
        /// of Y8 are made and used only in winograd.rs's `*_avx2` and `*_avx512` functions,
        /// which are compiled with AVX2 and called after `detect()` found it. That is the
        /// SAFETY of every block of `wide_lanes!`. Each operation rounds as the scalar one
        /// does (no fused multiply-adds), so formulas over Y8 give the bits they give over f32.
        Y8, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps, _mm256_sub_ps, _mm256_xor_ps, _mm256_mul_ps, _mm256_set1_ps
    );

    wide_lanes!(
        /// Sixteen f32 lanes in an AVX-512 register: as Y8, made and used only in
        /// winograd.rs's `*_avx512` functions, compiled with AVX-512F and DQ and called after
        /// `has_avx512()` found it.
        Z16, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps, _mm512_sub_ps, _mm512_xor_ps, _mm512_mul_ps, _mm512_set1_ps
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// Proof that this CPU has AVX2 and FMA (the only constructor checks).
    #[derive(Clone, Copy, Debug)]
    pub struct Avx2(());

    impl Avx2 {
        #[inline(always)]
        pub fn detect() -> Option<Avx2> {
            (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")).then_some(Avx2(()))
        }
    }

    // SAFETY (every block below): `self` proves the CPU has AVX2 and FMA; the pointers
    // come from references to exactly as many floats as the instruction reads or writes,
    // or, for the masked load, to the s.len() floats its mask selects.
    impl Lanes for Avx2 {
        type V = __m256;
        #[inline(always)]
        fn zero(self) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn load(self, s: &[f32; 8]) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_loadu_ps(s.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, v: __m256, out: &mut [f32; 8]) {
            // SAFETY: see the impl.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn load_part(self, s: &[f32]) -> __m256 {
            let k = s.len().min(8) as i32;
            // SAFETY: see the impl; lanes k.. are masked off and not read.
            unsafe {
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                _mm256_maskload_ps(s.as_ptr(), mask)
            }
        }
        #[inline(always)]
        fn split2(self, s: &[f32; 16]) -> [__m256; 2] {
            let (v0, v1) = (self.load(super::chunk(s, 0)), self.load(super::chunk(s, 8)));
            // SAFETY: see the impl.
            unsafe {
                // per 128-bit lane: evens (odds) of v0 then of v1; then restore the lane order
                let e = _mm256_castps_pd(_mm256_shuffle_ps::<0b10_00_10_00>(v0, v1));
                let o = _mm256_castps_pd(_mm256_shuffle_ps::<0b11_01_11_01>(v0, v1));
                [
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(e)),
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(o)),
                ]
            }
        }
        #[inline(always)]
        fn split3(self, s: &[f32; 24]) -> [__m256; 3] {
            // a = s0 t0 u0 s1 t1 u1 s2 t2, b = u2 s3 t3 u3 s4 t4 u4 s5, c = t5 u5 s6 t6 u6 s7 t7 u7:
            // two blends gather each stream's 8 values, one permutation orders them.
            let (a, b, c) = (self.load(super::chunk(s, 0)), self.load(super::chunk(s, 8)), self.load(super::chunk(s, 16)));
            // SAFETY: see the impl.
            unsafe {
                let s0 = _mm256_blend_ps::<0b0010_0100>(_mm256_blend_ps::<0b1001_0010>(a, b), c);
                let s1 = _mm256_blend_ps::<0b0100_1001>(_mm256_blend_ps::<0b0010_0100>(a, b), c);
                let s2 = _mm256_blend_ps::<0b1001_0010>(_mm256_blend_ps::<0b0100_1001>(a, b), c);
                [
                    _mm256_permutevar8x32_ps(s0, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5)),
                    _mm256_permutevar8x32_ps(s1, _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6)),
                    _mm256_permutevar8x32_ps(s2, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7)),
                ]
            }
        }
        #[inline(always)]
        fn merge2(self, a: __m256, b: __m256, out: &mut [f32; 16]) {
            // SAFETY: see the impl.
            let (lo, hi) = unsafe {
                // per 128-bit lane: a0 b0 a1 b1 | a4 b4 a5 b5 and a2 b2 a3 b3 | a6 b6 a7 b7
                let (lo, hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
                (_mm256_permute2f128_ps::<0x20>(lo, hi), _mm256_permute2f128_ps::<0x31>(lo, hi))
            };
            self.store(lo, super::chunk_mut(out, 0));
            self.store(hi, super::chunk_mut(out, 8));
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Lanes;
    use std::arch::aarch64::*;

    /// NEON, part of every aarch64 CPU; eight lanes as two 4-lane registers.
    #[derive(Clone, Copy, Debug)]
    pub struct Neon(());

    impl Neon {
        #[inline(always)]
        pub fn detect() -> Option<Neon> {
            Some(Neon(()))
        }
    }

    #[derive(Clone, Copy)]
    pub struct V([float32x4_t; 2]);

    // SAFETY (every block below): NEON is enabled on every aarch64 target; the pointers
    // come from references to exactly as many floats as the instruction reads or writes.
    impl Lanes for Neon {
        type V = V;
        #[inline(always)]
        fn zero(self) -> V {
            self.splat(0.0)
        }
        #[inline(always)]
        fn splat(self, x: f32) -> V {
            // SAFETY: see the impl.
            unsafe { V([vdupq_n_f32(x); 2]) }
        }
        #[inline(always)]
        fn fma(self, a: V, b: V, c: V) -> V {
            // SAFETY: see the impl.
            unsafe { V([vfmaq_f32(c.0[0], a.0[0], b.0[0]), vfmaq_f32(c.0[1], a.0[1], b.0[1])]) }
        }
        #[inline(always)]
        fn add(self, a: V, b: V) -> V {
            // SAFETY: see the impl.
            unsafe { V([vaddq_f32(a.0[0], b.0[0]), vaddq_f32(a.0[1], b.0[1])]) }
        }
        #[inline(always)]
        fn load(self, s: &[f32; 8]) -> V {
            // SAFETY: see the impl.
            unsafe { V([vld1q_f32(s.as_ptr()), vld1q_f32(s.as_ptr().add(4))]) }
        }
        #[inline(always)]
        fn store(self, v: V, out: &mut [f32; 8]) {
            // SAFETY: see the impl.
            unsafe {
                vst1q_f32(out.as_mut_ptr(), v.0[0]);
                vst1q_f32(out.as_mut_ptr().add(4), v.0[1]);
            }
        }
        #[inline(always)]
        fn load_part(self, s: &[f32]) -> V {
            let mut l = [0f32; 8];
            let k = s.len().min(8);
            l[..k].copy_from_slice(&s[..k]);
            self.load(&l)
        }
        #[inline(always)]
        fn split2(self, s: &[f32; 16]) -> [V; 2] {
            // SAFETY: see the impl (each vld2q reads 8 floats).
            unsafe {
                let (p, q) = (vld2q_f32(s.as_ptr()), vld2q_f32(s.as_ptr().add(8)));
                [V([p.0, q.0]), V([p.1, q.1])]
            }
        }
        #[inline(always)]
        fn split3(self, s: &[f32; 24]) -> [V; 3] {
            // SAFETY: see the impl (each vld3q reads 12 floats).
            unsafe {
                let (p, q) = (vld3q_f32(s.as_ptr()), vld3q_f32(s.as_ptr().add(12)));
                [V([p.0, q.0]), V([p.1, q.1]), V([p.2, q.2])]
            }
        }
        #[inline(always)]
        fn merge2(self, a: V, b: V, out: &mut [f32; 16]) {
            // SAFETY: see the impl (each vst2q writes 8 floats).
            unsafe {
                vst2q_f32(out.as_mut_ptr(), float32x4x2_t(a.0[0], b.0[0]));
                vst2q_f32(out.as_mut_ptr().add(8), float32x4x2_t(a.0[1], b.0[1]));
            }
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod none {
    use super::Lanes;

    /// No vector kernels on this architecture: no value of this type exists.
    #[derive(Clone, Copy, Debug)]
    pub enum NoLanes {}

    impl NoLanes {
        pub fn detect() -> Option<NoLanes> {
            None
        }
    }

    impl Lanes for NoLanes {
        type V = ();
        fn zero(self) {
            match self {}
        }
        fn splat(self, _: f32) {
            match self {}
        }
        fn fma(self, _: (), _: (), _: ()) {
            match self {}
        }
        fn add(self, _: (), _: ()) {
            match self {}
        }
        fn load(self, _: &[f32; 8]) {
            match self {}
        }
        fn store(self, _: (), _: &mut [f32; 8]) {
            match self {}
        }
        fn load_part(self, _: &[f32]) {
            match self {}
        }
        fn split2(self, _: &[f32; 16]) -> [(); 2] {
            match self {}
        }
        fn split3(self, _: &[f32; 24]) -> [(); 3] {
            match self {}
        }
        fn merge2(self, _: (), _: (), _: &mut [f32; 16]) {
            match self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation against its scalar meaning, on seeded values (poisoned outputs).
    #[test]
    fn lanes_match_their_scalar_meaning() {
        let Some(l) = detect() else { return };
        let xs: Vec<f32> = (0..24).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37).collect();
        let a: &[f32; 8] = chunk(&xs, 0);
        let b: &[f32; 8] = chunk(&xs, 8);
        let c: &[f32; 8] = chunk(&xs, 16);
        let mut out = [f32::NAN; 8];
        l.store(l.fma(l.load(a), l.load(b), l.load(c)), &mut out);
        for i in 0..8 {
            assert_eq!(out[i], a[i].mul_add(b[i], c[i]));
        }
        l.store(l.add(l.load(a), l.splat(2.5)), &mut out);
        for i in 0..8 {
            assert_eq!(out[i], a[i] + 2.5);
        }
        let s = l.sum(l.load(a));
        assert_eq!(s, ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7])));
        for k in 0..8 {
            l.store(l.load_part(&xs[3..3 + k]), &mut out);
            for i in 0..8 {
                assert_eq!(out[i], if i < k { xs[3 + i] } else { 0.0 }, "k {k} lane {i}");
            }
        }
        let [e, o] = l.split2(chunk(&xs, 1));
        let mut both = [[f32::NAN; 8]; 2];
        l.store(e, &mut both[0]);
        l.store(o, &mut both[1]);
        for i in 0..8 {
            assert_eq!((both[0][i], both[1][i]), (xs[1 + 2 * i], xs[2 + 2 * i]));
        }
        let mut merged = [f32::NAN; 16];
        l.merge2(e, o, &mut merged);
        assert_eq!(&merged, chunk::<16>(&xs, 1));
        let three = l.split3(chunk(&xs, 0));
        for (s, v) in three.into_iter().enumerate() {
            l.store(v, &mut out);
            for i in 0..8 {
                assert_eq!(out[i], xs[3 * i + s], "stream {s} lane {i}");
            }
        }
    }
}
