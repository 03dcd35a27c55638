//! The direct kernels' view of their input: *phase-planar* rows. For input row x and
//! channel c, the Y values of that row ordered by phase (y mod sy), then y / sy, so that
//! consecutive outputs along y read consecutive inputs for every tap, whatever the stride
//! and depth. For Z = 1 and sy = 1 that is the input itself; otherwise the rows are copied
//! into a small per-thread window just before they are used (`for_rows`).

use crate::im2col::ConvGeom;
use crate::real::Real;
use crate::scratch::with_window;
use crate::simd::simd_fn;

/// Does this layer need a planar copy of its input (or is the input already planar)?
pub fn needs_planar(g: &ConvGeom) -> bool {
    g.z > 1 || g.sy > 1
}

/// Number of input columns y with y mod sy = r.
#[inline(always)]
pub fn phase_len(g: &ConvGeom, r: usize) -> usize {
    if r < g.y {
        (g.y - r).div_ceil(g.sy)
    } else {
        0
    }
}

#[inline(always)]
pub fn phase_start(g: &ConvGeom, r: usize) -> usize {
    (0..r).map(|q| phase_len(g, q)).sum()
}

simd_fn! {
    /// Planar copy of one input row: dst[c·Y + start(y mod sy) + y / sy] = src[y·Z + c].
    /// The source is n = sy·Z interleaved streams, stream r·Z + c being phase r of channel
    /// c; for f32 with AVX2, 2 or 3 streams are split 8 groups at a time.
    pub fn to_planar_row<T: Real>(g: &ConvGeom, src: &[T], dst: &mut [T]) {
        let (yn, z) = (g.y, g.z);
        let n = g.sy * z;
        let mut j0 = 0; // groups already split by the vector code
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(src), Some(dst)) = ((n == 2 || n == 3) && yn >= g.sy && std::is_x86_feature_detected!("avx2"), T::as_f32_slice(src), T::as_f32_slice_mut(dst)) {
            // every stream has at least Y / sy values; split whole blocks of 8 of those
            j0 = yn / g.sy / 8 * 8;
            let mut outs = [std::ptr::null_mut::<f32>(); 3];
            for (s, o) in outs.iter_mut().enumerate().take(n) {
                *o = dst[(s % z) * yn + phase_start(g, s / z)..].as_mut_ptr();
            }
            // SAFETY: the CPU has AVX2; src holds n·j0 values and each stream's
            // destination at least j0.
            unsafe { split_streams_f32_avx2(src.as_ptr(), n, j0, outs) };
        }
        for s in 0..n {
            let (r, c) = (s / z, s % z);
            let d = &mut dst[c * yn + phase_start(g, r)..c * yn + phase_start(g, r) + phase_len(g, r)];
            for (j, v) in d.iter_mut().enumerate().skip(j0) {
                *v = src[j * n + s];
            }
        }
    }
}

simd_fn! {
    /// The inverse of `to_planar_row`: dst[y·Z + c] = src[c·Y + start(y mod sy) + y / sy]
    /// (the input gradient's way back to channels last). For f32 with AVX2, 2 streams
    /// are merged 8 groups at a time.
    pub fn from_planar_row<T: Real>(g: &ConvGeom, src: &[T], dst: &mut [T]) {
        let (yn, z) = (g.y, g.z);
        let n = g.sy * z;
        let mut j0 = 0;
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(src), Some(dst)) = (n == 2 && yn >= g.sy && std::is_x86_feature_detected!("avx2"), T::as_f32_slice(src), T::as_f32_slice_mut(dst)) {
            j0 = yn / g.sy / 8 * 8;
            let ins: [*const f32; 2] = std::array::from_fn(|s| src[(s % z) * yn + phase_start(g, s / z)..].as_ptr());
            // SAFETY: the CPU has AVX2; each stream holds at least j0 values and dst at
            // least 2·j0.
            unsafe { merge_streams2_f32_avx2(ins, j0, dst.as_mut_ptr()) };
        }
        for s in 0..n {
            let (r, c) = (s / z, s % z);
            let from = c * yn + phase_start(g, r);
            for (j, &v) in src[from..from + phase_len(g, r)].iter().enumerate().skip(j0) {
                dst[j * n + s] = v;
            }
        }
    }
}

/// Interleave two f32 streams, `groups` values each (a multiple of 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn merge_streams2_f32_avx2(ins: [*const f32; 2], groups: usize, dst: *mut f32) {
    use std::arch::x86_64::*;
    let mut j = 0;
    while j < groups {
        let (e, o) = (_mm256_loadu_ps(ins[0].add(j)), _mm256_loadu_ps(ins[1].add(j)));
        // per 128-bit lane: e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7
        let (lo, hi) = (_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o));
        _mm256_storeu_ps(dst.add(2 * j), _mm256_permute2f128_ps::<0x20>(lo, hi));
        _mm256_storeu_ps(dst.add(2 * j + 8), _mm256_permute2f128_ps::<0x31>(lo, hi));
        j += 8;
    }
}

/// Split `groups` groups of n ∈ {2, 3} interleaved f32 values into n streams.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn split_streams_f32_avx2(src: *const f32, n: usize, groups: usize, outs: [*mut f32; 3]) {
    use std::arch::x86_64::*;
    let mut j = 0;
    if n == 2 {
        while j < groups {
            let (v0, v1) = (_mm256_loadu_ps(src.add(2 * j)), _mm256_loadu_ps(src.add(2 * j + 8)));
            // per 128-bit lane: evens (odds) of v0 then of v1; then restore the lane order
            let e = _mm256_shuffle_ps::<0b10_00_10_00>(v0, v1);
            let o = _mm256_shuffle_ps::<0b11_01_11_01>(v0, v1);
            let fix = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
            _mm256_storeu_ps(outs[0].add(j), fix(e));
            _mm256_storeu_ps(outs[1].add(j), fix(o));
            j += 8;
        }
        return;
    }
    // n = 3: a = s0 t0 u0 s1 t1 u1 s2 t2, b = u2 s3 t3 u3 s4 t4 u4 s5, c = t5 u5 s6 t6 u6 s7 t7 u7;
    // two blends gather each stream's 8 values, one permutation orders them.
    let idx = [
        _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5),
        _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6),
        _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7),
    ];
    while j < groups {
        let p = src.add(3 * j);
        let (a, b, c) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)));
        let s0 = _mm256_blend_ps::<0b0010_0100>(_mm256_blend_ps::<0b1001_0010>(a, b), c);
        let s1 = _mm256_blend_ps::<0b0100_1001>(_mm256_blend_ps::<0b0010_0100>(a, b), c);
        let s2 = _mm256_blend_ps::<0b1001_0010>(_mm256_blend_ps::<0b0100_1001>(a, b), c);
        _mm256_storeu_ps(outs[0].add(j), _mm256_permutevar8x32_ps(s0, idx[0]));
        _mm256_storeu_ps(outs[1].add(j), _mm256_permutevar8x32_ps(s1, idx[1]));
        _mm256_storeu_ps(outs[2].add(j), _mm256_permutevar8x32_ps(s2, idx[2]));
        j += 8;
    }
}

/// Input rows x0.. of one sample in planar order: row ix, channel c is
/// `data[((ix − x0)·Z + c)·Y ..][..Y]`. For Z = 1 and sy = 1 the input itself, x0 = 0.
#[derive(Clone, Copy)]
pub struct Rows<'a, T> {
    pub data: &'a [T],
    pub x0: usize,
}

impl<'a, T> Rows<'a, T> {
    #[inline(always)]
    pub fn row(&self, g: &ConvGeom, c: usize, ix: usize) -> &'a [T] {
        let i = ((ix - self.x0) * g.z + c) * g.y;
        &self.data[i..i + g.y]
    }
}

/// The input rows [lo, hi) that output rows ox0..ox1 read.
fn input_rows(g: &ConvGeom, ox0: usize, ox1: usize) -> (usize, usize) {
    let lo = (ox0 * g.sx).saturating_sub(g.px).min(g.x);
    let hi = ((ox1 - 1) * g.sx + g.fx).saturating_sub(g.px).min(g.x);
    (lo, hi.max(lo))
}

/// Output rows per call of `for_rows`'s callback: long runs of rows share one tap set-up
/// (8 rows → 32: ~8 % on the glasses step), and their input rows still fit L2.
const ROW_CHUNK: usize = 32;

/// Run `f(rows, a, b)` for consecutive chunks [a, b) of the output rows ox0..ox1 of one
/// sample `x`, in order. Where the layout needs a planar copy, each input row is copied
/// into a per-thread window just before the first chunk that reads it: the copy is made
/// while the row is in cache and read back from cache, and no full-size copy of the
/// input is ever kept.
pub fn for_rows<T: Real>(g: &ConvGeom, x: &[T], ox0: usize, ox1: usize, mut f: impl FnMut(Rows<'_, T>, usize, usize)) {
    let chunks = (ox0..ox1).step_by(ROW_CHUNK).map(|a| (a, (a + ROW_CHUNK).min(ox1)));
    if !needs_planar(g) {
        for (a, b) in chunks {
            f(Rows { data: x, x0: 0 }, a, b);
        }
        return;
    }
    if ox0 >= ox1 {
        return;
    }
    let yz = g.y * g.z;
    let (lo, hi) = input_rows(g, ox0, ox1);
    with_window((hi - lo) * yz, |win: &mut [T]| {
        let mut done = lo;
        for (a, b) in chunks {
            let need = input_rows(g, a, b).1;
            while done < need {
                let at = (done - lo) * yz;
                to_planar_row(g, &x[done * yz..(done + 1) * yz], &mut win[at..at + yz]);
                done += 1;
            }
            f(Rows { data: &win[..], x0: lo }, a, b);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout (the vector splits for 2 and 3 streams included) against the index
    /// formula, with the destination poisoned.
    #[test]
    fn planar_rows_match_the_index_formula() {
        for (z, sy) in [(1, 2), (3, 1), (2, 1), (1, 3), (3, 2), (2, 2)] {
            for yn in [1, 2, 7, 16, 17, 40, 41, 50] {
                let fy = 1 + (yn - 1) % sy; // the stride must divide Y − field
                let g = ConvGeom::new([2, yn, z], [0, 0], [1, fy], [1, sy], 1).unwrap();
                let src: Vec<f32> = (0..yn * z).map(|i| i as f32 * 0.5 + 1.0).collect();
                let mut dst = vec![f32::NAN; yn * z];
                to_planar_row(&g, &src, &mut dst);
                for y in 0..yn {
                    for c in 0..z {
                        let at = c * yn + phase_start(&g, y % sy) + y / sy;
                        assert_eq!(dst[at], src[y * z + c], "z {z} sy {sy} Y {yn} y {y} c {c}");
                    }
                }
                let mut back = vec![f32::NAN; yn * z];
                from_planar_row(&g, &dst, &mut back);
                assert_eq!(back, src, "back: z {z} sy {sy} Y {yn}");
            }
        }
    }
}
